"""A roll's metadata file and rolls.xml, read and written.

The metadata file sits at the top of a roll, named `roll-<name>.xml`, in Rocks' syntax:

    <roll name="hpc">
      <info version="1.0" release="1" arch="x86_64" os="linux"/>
      <description>MPI and batch tools</description>
    </roll>

`name`, `version` and `arch` are required; `os` defaults to linux, `release` and the
description are optional; other elements (Rocks' `<iso>`, `<rpm>`, `<color>`...) are ignored.
rolls.xml is what Rocks' installer recorded and a lights-out frontend reads (reference §2.5).
Both are parsed with entities, DTDs and network access off.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from xml.sax.saxutils import quoteattr

from provisioner.errors import UsageError

if TYPE_CHECKING:
    from provisioner.graph.xmlload import Tag

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+\-]{0,63}$")
VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+~\-]{0,63}$")
ARCH = re.compile(r"^[a-z0-9_]{1,31}$")
OS = re.compile(r"^[a-z0-9_]{1,31}$")
META_GLOB = "roll-*.xml"


class BadRoll(UsageError):
    """A roll is refused: the message is one line saying why."""


@dataclass(frozen=True)
class RollMeta:
    name: str
    version: str
    arch: str
    os: str = "linux"
    release: str = ""
    description: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.name, self.version, self.arch)

    @property
    def label(self) -> str:
        return f"{self.name} {self.version} {self.arch}"

    @property
    def relpath(self) -> str:
        """Where the roll lives under the install tree's `rolls/`."""
        return f"{self.name}/{self.version}/{self.arch}"

    @property
    def filename(self) -> str:
        return f"roll-{self.name}.xml"


def check(meta: RollMeta, where: str) -> RollMeta:
    """The metadata, or BadRoll naming the first field that cannot be a path component."""
    for field, value, pattern in (
        ("name", meta.name, NAME),
        ("version", meta.version, VERSION),
        ("arch", meta.arch, ARCH),
        ("os", meta.os, OS),
    ):
        if not pattern.match(value) or value in (".", ".."):
            raise BadRoll(f"{where}: bad roll {field} {value!r}")
    return meta


def _parse(text: str, path: Path, what: str) -> Tag:
    from provisioner.graph.errors import GraphError
    from provisioner.graph.xmlload import parse_text

    try:
        xml = parse_text(text, path)
    except GraphError as exc:
        raise BadRoll(str(exc)) from None  # it names the file and line
    if xml.refs:
        raise BadRoll(f"{what}: {path.name} may not contain entity references")
    return xml.root


def read_meta(path: Path) -> RollMeta:
    """Parse `roll-<name>.xml`; the file name must agree with the roll's name."""
    try:
        data = path.read_bytes()[: 1 << 20]
    except OSError as exc:
        raise BadRoll(f"cannot read {path}: {exc.strerror}") from None
    text = data.decode("utf-8", errors="replace")
    return parse_meta(text, path)


def parse_meta(text: str, path: Path) -> RollMeta:
    root = _parse(text, path, str(path))
    if root.name != "roll":
        raise BadRoll(f"{path}: the root element must be <roll>")
    attrs = root.attrs
    info = next((c for c in root.children if c.name == "info"), None)
    if info is None:
        raise BadRoll(f"{path}: no <info version=... arch=.../> element")
    missing = [k for k in ("version", "arch") if not info.attrs.get(k, "").strip()]
    if not attrs.get("name", "").strip():
        missing.insert(0, "name")
    if missing:
        raise BadRoll(f"{path}: missing {', '.join(missing)}")
    desc = next((c for c in root.children if c.name == "description"), None)
    meta = RollMeta(
        name=attrs["name"].strip(),
        version=info.attrs["version"].strip(),
        arch=info.attrs["arch"].strip(),
        os=(info.attrs.get("os") or "linux").strip(),
        release=(info.attrs.get("release") or "").strip(),
        description=" ".join((desc.text if desc is not None else "").split()),
    )
    check(meta, str(path))
    if path.name != meta.filename:
        raise BadRoll(f"{path}: names roll '{meta.name}', so it must be called {meta.filename}")
    return meta


def format_meta(meta: RollMeta) -> str:
    release = f" release={quoteattr(meta.release)}" if meta.release else ""
    lines = [
        '<?xml version="1.0" standalone="no"?>',
        f"<roll name={quoteattr(meta.name)}>",
        f"  <info version={quoteattr(meta.version)}{release} arch={quoteattr(meta.arch)} "
        f"os={quoteattr(meta.os)}/>",
    ]
    if meta.description:
        lines.append(f"  <description>{_text(meta.description)}</description>")
    lines.append("</roll>")
    return "\n".join(lines) + "\n"


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# -- rolls.xml ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RollRef:
    """One `<roll>` of rolls.xml: a roll by name, version and arch, and where to fetch it."""

    name: str
    version: str
    arch: str
    url: str = ""
    diskid: str = ""

    @property
    def relpath(self) -> str:
        return f"{self.name}/{self.version}/{self.arch}"


def format_rolls_xml(rolls: list[RollRef]) -> str:
    """rolls.xml exactly as Rocks wrote it (and as seed 002 shows `rocks report host roll`)."""
    out = ["<rolls>"]
    for r in rolls:
        out += [
            "<roll",
            f"  name={quoteattr(r.name)}",
            f"  version={quoteattr(r.version)}",
            f"  arch={quoteattr(r.arch)}",
            f"  url={quoteattr(r.url)}",
            f"  diskid={quoteattr(r.diskid)}",
            "/>",
        ]
    out.append("</rolls>")
    return "\n".join(out) + "\n"


def parse_rolls_xml(text: str, path: Path) -> list[RollRef]:
    root = _parse(text, path, str(path))
    if root.name != "rolls":
        raise BadRoll(f"{path}: the root element must be <rolls>")
    out = []
    for tag in root.children:
        if tag.name != "roll":
            continue
        ref = RollRef(
            name=tag.attrs.get("name", "").strip(),
            version=tag.attrs.get("version", "").strip(),
            arch=tag.attrs.get("arch", "").strip(),
            url=tag.attrs.get("url", "").strip(),
            diskid=tag.attrs.get("diskid", "").strip(),
        )
        check(RollMeta(ref.name, ref.version, ref.arch), f"{path}:{tag.line}")
        out.append(ref)
    return out
