"""Hardened loading of node and graph XML files into a small immutable tree.

Rocks fed every node file a DTD of `<!ENTITY attr "value">` lines so that `&Attr;` expanded
during parsing. We never let a file declare or resolve entities: a DOCTYPE or ENTITY (or any
other markup declaration) is refused before lxml sees the text, and lxml runs with entity
resolution, DTD loading and network access off. `&Name;` references (other than the five XML
predefined entities and numeric character references), outside comments and CDATA, are first
rewritten into private-use markers (U+E000 index U+E001) that survive parsing in text and
attribute values; each marker indexes a `Ref` with the attribute name and the line it was on.
Legacy `<var name="X"/>` elements become markers too. The kickstart layer substitutes the
host's values for the markers, escaped for where they land.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lxml import etree

from provisioner.graph.errors import GraphError, where

MARK_OPEN = "\ue000"
MARK_CLOSE = "\ue001"
MARKER = re.compile("\ue000(\\d+)\ue001")
MAX_BYTES = 4 * 1024 * 1024
PREDEFINED = frozenset({"amp", "lt", "gt", "quot", "apos"})

# Comments, CDATA and processing instructions are skipped whole: a reference or a declaration
# inside them is text, not markup.
_SCAN = re.compile(
    r"<!--.*?-->|<!\[CDATA\[.*?\]\]>|<\?.*?\?>"
    r"|(?P<decl><!(?:DOCTYPE|ENTITY|ELEMENT|ATTLIST|NOTATION)\b)"
    r"|&(?P<ref>[A-Za-z_][A-Za-z0-9_.\-:]*);",
    re.S,
)
_XMLDECL = re.compile(r"^\s*<\?xml[^>]*\?>")
_ENCODING = re.compile(rb"^\s*<\?xml[^>]*encoding=[\"']([A-Za-z0-9._\-]+)[\"']")


@dataclass(frozen=True)
class Ref:
    """One attribute reference in a file: `&name;` or `<var name="name"/>` at `line`."""

    name: str
    line: int


@dataclass(eq=False)
class Tag:
    """An element: text, attribute values and tails may hold markers (see `Ref`)."""

    name: str
    attrs: dict[str, str]
    text: str
    children: list[Tag]
    tail: str
    line: int

    def iter(self, name: str | None = None) -> Iterator[Tag]:
        if name is None or self.name == name:
            yield self
        for child in self.children:
            yield from child.iter(name)


@dataclass(eq=False)
class XmlFile:
    path: Path
    root: Tag
    refs: list[Ref] = field(default_factory=list)


_local = threading.local()


def _parser() -> etree.XMLParser:
    # One parser per thread: lxml advises against sharing parsers between threads.
    parser = getattr(_local, "parser", None)
    if parser is None:
        from lxml import etree

        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
            collect_ids=False,
        )
        _local.parser = parser
    return parser


def _decode(data: bytes, path: Path) -> str:
    enc = "utf-8"
    m = _ENCODING.match(data)
    if m:
        enc = m.group(1).decode("ascii")
    try:
        return data.decode(enc)
    except (LookupError, UnicodeDecodeError) as exc:
        raise GraphError(f"{path}: cannot decode as {enc}: {exc}") from None


def load(path: Path) -> XmlFile:
    """Read and parse one file; every failure is a GraphError naming the file."""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise GraphError(f"{path}: cannot read: {exc.strerror}") from None
    if len(data) > MAX_BYTES:
        raise GraphError(f"{path}: larger than {MAX_BYTES // (1024 * 1024)} MB")
    return parse_text(_decode(data, path), path)


def parse_text(text: str, path: Path) -> XmlFile:
    refs: list[Ref] = []
    if MARK_OPEN in text or MARK_CLOSE in text:
        raise GraphError(f"{path}: contains reserved characters U+E000/U+E001")

    line = 1
    pos = 0

    def replace(m: re.Match[str]) -> str:
        nonlocal line, pos
        line += text.count("\n", pos, m.start())
        pos = m.start()
        if m.group("decl"):
            raise GraphError(
                f"{where(path, line)}: DOCTYPE and ENTITY declarations are not allowed in "
                "node and graph files (entities, DTDs and network access are off)"
            )
        name = m.group("ref")
        if name is None or name in PREDEFINED:
            return m.group(0)
        refs.append(Ref(name, line))
        return f"{MARK_OPEN}{len(refs) - 1}{MARK_CLOSE}"

    body = _SCAN.sub(replace, text)
    # lxml refuses str input with an encoding declaration; keep the line count the same.
    body = _XMLDECL.sub(lambda m: "\n" * m.group(0).count("\n"), body, count=1)

    from lxml import etree

    try:
        root = etree.fromstring(body, _parser())
    except etree.XMLSyntaxError as exc:
        msg = str(exc.msg or exc).splitlines()[0]
        msg = re.sub(r",? line \d+, column \d+$", "", msg)
        raise GraphError(f"{where(path, exc.lineno)}: not well-formed XML: {msg}") from None
    if root.getroottree().docinfo.doctype:
        raise GraphError(f"{path}: DOCTYPE declarations are not allowed")
    return XmlFile(path, _convert(root, refs, path), refs)


def _convert(el: etree._Element, refs: list[Ref], path: Path) -> Tag:
    from lxml import etree

    children: list[Tag] = []
    text = el.text or ""
    for child in el:
        if not isinstance(child.tag, str):  # entities left unresolved, comments: none here
            if isinstance(child, etree._Entity):
                raise GraphError(f"{where(path, child.sourceline)}: unresolved entity {child}")
            continue
        if child.tag == "var" and child.get("val") is None and child.get("ref") is None:
            # Legacy `<var name="X"/>`: the same as `&X;` at that spot.
            name = (child.get("name") or "").strip()
            if not name:
                raise GraphError(f"{where(path, child.sourceline)}: <var> without name=")
            refs.append(Ref(name, child.sourceline or 0))
            mark = f"{MARK_OPEN}{len(refs) - 1}{MARK_CLOSE}" + (child.tail or "")
            if children:
                children[-1].tail += mark
            else:
                text += mark
            continue
        children.append(_convert(child, refs, path))
    return Tag(
        name=str(el.tag),
        attrs={str(k): str(v) for k, v in el.attrib.items()},
        text=text,
        children=children,
        tail=el.tail or "",
        line=el.sourceline or 0,
    )


def has_marker(text: str) -> bool:
    return MARK_OPEN in text


def split(text: str, refs: list[Ref]) -> list[str | Ref]:
    """Text as literal strings and `Ref`s, in order."""
    if MARK_OPEN not in text:
        return [text] if text else []
    out: list[str | Ref] = []
    pos = 0
    for m in MARKER.finditer(text):
        if m.start() > pos:
            out.append(text[pos : m.start()])
        out.append(refs[int(m.group(1))])
        pos = m.end()
    if pos < len(text):
        out.append(text[pos:])
    return out
