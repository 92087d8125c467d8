"""Ordered node files -> a compiled kickstart (`Template`) or the expanded XML.

Section order: a comment block (the host, the traversal order and the file each node came
from), the main section with `%include /tmp/partition-info`, `%packages --ignoremissing`,
the partition helper's %pre, the nodes' %pre sections, the %pre that writes
/tmp/partition-info, then the nodes' %post sections. Every section ends with `%end`.

Tag-level `arch`/`os`/`release`/`cond` are evaluated here, on the server, with the values the
compilation was asked for (the caller keys its cache on the values of exactly the attributes
those conditions read). Main-section commands that may appear once keep the last node's line,
so a later node (a site's extension) overrides an earlier one; repeatable ones (network,
part...) accumulate. Rocks-era commands modern installers reject are dropped with a comment,
and Rocks' /opt/rocks/bin/python interpreter becomes /usr/bin/python3.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from provisioner.graph.errors import GraphError, where
from provisioner.graph.model import NodeFile
from provisioner.graph.xmlload import Ref, Tag, split
from provisioner.kickstart.template import Block, Part, Slot, Template

if TYPE_CHECKING:
    from lxml import etree

# Per-host values the renderer adds under names no attribute can have.
BOOTFLAGS = "\x00bootflags"
PARTITION_JSON = "\x00partition-json"

PYTHON = "/usr/bin/python3"
LEGACY_INTERPRETERS = {
    "/opt/rocks/bin/python": PYTHON,
    "/opt/rocks/bin/python2": PYTHON,
    "/usr/bin/python": PYTHON,
    "/usr/bin/python2": PYTHON,
    "python": PYTHON,
    "python2": PYTHON,
    "python3": PYTHON,
}
PRE_LOG = "/tmp/ks-pre.log"
POST_LOG = "/var/log/rocks-install.log"
POST_LOG_NOCHROOT = "/mnt/sysimage/var/log/rocks-install.log"
PARTITION_INCLUDE = "%include /tmp/partition-info"

RENAMED_COMMANDS = {"lilo": "bootloader"}
# Rocks 5 (RHEL 5) commands that current anaconda refuses.
DROPPED_COMMANDS = frozenset(
    {"install", "interactive", "langsupport", "mouse", "lilocheck", "upgrade", "auth", "key"}
)
# Commands a kickstart may carry many times; any other keeps the last node's line.
REPEATABLE_COMMANDS = frozenset(
    {
        "network",
        "part",
        "partition",
        "raid",
        "logvol",
        "volgroup",
        "btrfs",
        "user",
        "group",
        "sshkey",
        "repo",
        "driverdisk",
        "iscsi",
        "zfcp",
        "fcoe",
        "snapshot",
        "device",
        "module",
        "%include",
        "%ksappend",
    }
)
IGNORED_TAGS = frozenset(
    {"description", "copyright", "changelog", "attributes", "debug", "var", "si_copyright"}
)
_COMMAND = re.compile(r"^[a-z][a-z0-9_\-]*$")
_OWNER = re.compile(r"^[A-Za-z0-9_.\-]+([:.][A-Za-z0-9_.\-]+)?$")
_PERMS = re.compile(r"^([0-7]{3,4}|[ugoa]*[+\-=][rwxXst]*(,[ugoa]*[+\-=][rwxXst]*)*)$")


@dataclass(frozen=True)
class NodeEntry:
    """A node in kickstart order, with its files (base or replacement, then extensions)."""

    name: str
    files: tuple[NodeFile, ...]


@dataclass(frozen=True)
class Info:
    """What the comment block says about the generation."""

    graph: str
    root: str
    version: str


EvalRunner = Callable[[str, str, Mapping[str, str], str, str], str]


@functools.cache
def helper_source() -> str:
    return (Path(__file__).parent / "partition_helper.py").read_text()


def display_path(nf: NodeFile) -> str:
    # nodes/x.xml inside the roll's (or the site's) directory
    return f"{nf.roll}:{nf.path.parent.name}/{nf.path.name}"


def format_append(flags: str) -> str:
    flags = " ".join(flags.split())
    if not flags:
        return ""
    return ' --append="' + flags.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _strip_parts(parts: list[Part]) -> list[Part]:
    """Drop leading blank lines and trailing whitespace of a script body (keeping the first
    line's own indentation, which Python cares about)."""
    out = list(parts)
    while out and isinstance(out[0], str):
        s = re.sub(r"^(?:[ \t\r]*\n)+", "", out[0])
        if s.strip() or (s and len(out) > 1):
            out[0] = s
            break
        out.pop(0)
    while out and isinstance(out[-1], str):
        s = out[-1].rstrip()
        if s:
            out[-1] = s
            break
        out.pop()
    return out


class KickstartBuilder:
    """One compilation: the nodes, the values conditions see, and options."""

    def __init__(
        self,
        nodes: Sequence[NodeEntry],
        values: Mapping[str, str],
        info: Info,
        eval_runner: EvalRunner | None = None,
    ) -> None:
        self.nodes = nodes
        self.values = values
        self.info = info
        self.eval_runner = eval_runner
        self.local: dict[str, list[Part]] = {}
        self.main: dict[str, list[list[Part]]] = {}
        self.notes: list[str] = []
        self.packages_on: dict[str, list[Part]] = {}
        self.packages_off: dict[str, list[Part]] = {}
        self.dynamic_packages: list[tuple[bool, bool, list[Part]]] = []
        self.pre: list[list[Part]] = []
        self.post: list[list[Part]] = []

    # -- text -------------------------------------------------------------------------------

    def _refs(self, text: str, nf: NodeFile) -> list[Part]:
        out: list[Part] = []
        for piece in split(text, nf.refs):
            if isinstance(piece, Ref):
                if piece.name in self.local:
                    out.extend(self.local[piece.name])
                else:
                    out.append(Slot(piece.name, where(nf.path, piece.line)))
            else:
                out.append(piece)
        return out

    def _on(self, tag: Tag, nf: NodeFile) -> bool:
        cond = nf.cond(tag)
        return cond is None or cond(self.values)

    def _define(self, tag: Tag, nf: NodeFile) -> None:
        name = (tag.attrs.get("name") or "").strip()
        if not name:
            raise GraphError(f"{where(nf.path, tag.line)}: <var> without name=")
        if "val" in tag.attrs:
            self.local[name] = self._refs(tag.attrs["val"], nf)
        elif "ref" in tag.attrs:
            ref = tag.attrs["ref"].strip()
            self.local[name] = list(self.local.get(ref) or [Slot(ref, where(nf.path, tag.line))])

    def _content(self, tag: Tag, nf: NodeFile, script: bool, python: bool = False) -> list[Part]:
        text = tag.text
        if python and not tag.children:
            text = textwrap.dedent(text)
        parts = self._refs(text, nf)
        for child in tag.children:
            if child.name == "var":
                self._define(child, nf)
            elif not self._on(child, nf):
                pass
            elif child.name == "eval":
                parts.extend(self._eval(child, nf))
            elif child.name == "file" and script:
                if python:
                    raise GraphError(
                        f"{where(nf.path, child.line)}: <file> needs a shell script section, "
                        "not a Python one"
                    )
                last = parts[-1] if parts else "\n"
                if not (isinstance(last, str) and last.endswith("\n")):
                    parts.append("\n")
                parts.extend(self._file(child, nf))
            elif script:
                parts.append(
                    f"\n# skipped <{child.name}> ({where(nf.path, child.line)}): not supported\n"
                )
            parts.extend(self._refs(child.tail, nf))
        return parts

    # -- tags -------------------------------------------------------------------------------

    def _eval(self, tag: Tag, nf: NodeFile) -> list[Part]:
        place = where(nf.path, tag.line)
        if self.eval_runner is None:
            raise GraphError(
                f"{place}: <eval> runs code on this server and is disabled "
                "(set eval_enabled = true in the configuration to allow it)"
            )
        shell = tag.attrs.get("shell", "sh").strip() or "sh"
        mode = tag.attrs.get("mode", "quote").strip() or "quote"
        body = Template(self._content(tag, nf, script=False))
        runner = self.eval_runner

        def run(values: Mapping[str, str]) -> str:
            return runner(shell, body.render(values), values, mode, place)

        return [Block(run)]

    def _file(self, tag: Tag, nf: NodeFile) -> list[Part]:
        place = where(nf.path, tag.line)
        name_parts = self._refs(tag.attrs.get("name", ""), nf)
        if not name_parts:
            raise GraphError(f"{place}: <file> without name=")
        if isinstance(name_parts[0], str) and not name_parts[0].startswith("/"):
            raise GraphError(f"{place}: <file name=...> must be an absolute path")
        if len(name_parts) == 1 and isinstance(name_parts[0], str):
            qname: list[Part] = [shlex.quote(name_parts[0])]
        else:
            qname = ['"', *name_parts, '"']
        mode = tag.attrs.get("mode", "create").strip()
        if mode not in ("create", "append"):
            raise GraphError(f"{place}: <file mode=...> is create or append, not '{mode}'")
        redirect = ">>" if mode == "append" else ">"
        expanded = tag.attrs.get("vars", "literal").strip() == "expanded"
        owner = tag.attrs.get("owner", "").strip()
        perms = tag.attrs.get("perms", "").strip()
        if owner and not _OWNER.match(owner):
            raise GraphError(f"{place}: bad owner '{owner}'")
        if perms and not _PERMS.match(perms):
            raise GraphError(f"{place}: bad perms '{perms}'")
        body = self._content(tag, nf, script=False)
        if body and isinstance(body[0], str) and body[0].startswith("\n"):
            body[0] = body[0][1:]
        out: list[Part] = ['mkdir -p "$(dirname ', *qname, ')"\n']
        expr = tag.attrs.get("expr", "").strip()
        if expr:
            out += [*self._refs(expr, nf), f" {redirect} ", *qname, "\n"]
            redirect = ">>"
        literal = "".join(p for p in body if isinstance(p, str))
        if any(not isinstance(p, str) or p.strip() for p in body):
            delim = "ROCKS_EOF"
            n = 0
            while re.search(rf"^{delim}$", literal, re.M):
                n += 1
                delim = f"ROCKS_EOF_{n}"
            quoted = delim if expanded else f"'{delim}'"
            out += [f"cat {redirect} ", *qname, f" << {quoted}\n", *body]
            last = body[-1]
            if not (isinstance(last, str) and last.endswith("\n")):
                out.append("\n")
            out.append(f"{delim}\n")
        elif not expr:
            out += ["touch ", *qname, "\n"] if mode == "append" else [": > ", *qname, "\n"]
        if owner:
            if ":" not in owner:
                owner = owner.replace(".", ":", 1)
            out += [f"chown {owner} ", *qname, "\n"]
        if perms:
            out += [f"chmod {perms} ", *qname, "\n"]
        return out

    def _main(self, main: Tag, nf: NodeFile) -> None:
        for child in main.children:
            if child.name == "var":
                self._define(child, nf)
                continue
            if not self._on(child, nf):
                continue
            cmd = RENAMED_COMMANDS.get(child.name, child.name)
            place = where(nf.path, child.line)
            if cmd in DROPPED_COMMANDS:
                self.notes.append(f"# dropped '{child.name}' ({place}): not a current command\n")
                continue
            if not _COMMAND.match(cmd):
                raise GraphError(f"{place}: <{child.name}> is not a kickstart command")
            parts = [
                p.replace("\n", " ") if isinstance(p, str) else p
                for p in self._content(child, nf, script=False)
            ]
            if parts and isinstance(parts[0], str):
                parts[0] = parts[0].lstrip()
            if parts and isinstance(parts[-1], str):
                parts[-1] = parts[-1].rstrip()
            parts = [p for p in parts if p != ""]
            text = "".join(p for p in parts if isinstance(p, str))
            if cmd == "include" or text.startswith("%include"):
                # Partitioning is always included; other includes are not ours to fetch.
                if PARTITION_INCLUDE not in text:
                    self.notes.append(f"# dropped an include ({place}): not supported\n")
                continue
            line: list[Part] = [cmd, *([" ", *parts] if parts else [])]
            if cmd in REPEATABLE_COMMANDS:
                self.main.setdefault(cmd, []).append(line)
            else:
                self.main.pop(cmd, None)  # the later node's line wins, in its place
                self.main[cmd] = [line]

    def _package(self, tag: Tag, nf: NodeFile) -> None:
        parts = self._content(tag, nf, script=False)
        meta = tag.attrs.get("type", "").strip() == "meta"
        off = tag.attrs.get("disable", "").strip().lower() in ("1", "yes", "true", "on")
        if any(not isinstance(p, str) for p in parts):
            self.dynamic_packages.append((meta, off, parts))
            return
        for name in "".join(parts).split():  # type: ignore[arg-type]
            key = ("@" + name) if meta and not name.startswith("@") else name
            (self.packages_off if off else self.packages_on)[key] = [key]

    def _script(self, kind: str, tag: Tag, nf: NodeFile) -> list[Part]:
        place = where(nf.path, tag.line)
        try:
            tokens = shlex.split(tag.attrs.get("arg", ""))
        except ValueError as exc:
            raise GraphError(f"{place}: bad arg= ({exc})") from None
        interp = tag.attrs.get("interpreter", "").strip() or None
        opts: list[str] = []
        has_log = False
        i = 0
        while i < len(tokens):
            tok = tokens[i]
            if tok == "--interpreter" and i + 1 < len(tokens):
                interp = tokens[i + 1]
                i += 2
                continue
            if tok.startswith("--interpreter="):
                interp = tok.split("=", 1)[1]
            elif not tok.startswith("-") or "\n" in tok:
                raise GraphError(f"{place}: arg= takes %{kind} options, not '{tok}'")
            else:
                has_log = has_log or tok.startswith(("--log", "--logfile"))
                opts.append(tok)
            i += 1
        for text in (interp or "", *opts):
            if "\ue000" in text:
                raise GraphError(f"{place}: attribute references are not allowed in arg=")
        if interp:
            interp = LEGACY_INTERPRETERS.get(interp, interp)
        if not has_log:
            if kind == "pre":
                opts.append(f"--log={PRE_LOG}")
            else:
                opts.append(f"--log={POST_LOG_NOCHROOT if '--nochroot' in opts else POST_LOG}")
        if interp:
            opts.append(f"--interpreter={interp}")
        python = bool(interp) and Path(interp).name.startswith("python")
        body = _strip_parts(self._content(tag, nf, script=True, python=python))
        head = f"\n# {display_path(nf)} line {tag.line}\n%{kind} {' '.join(opts)}\n"
        return [head, *body, "\n%end\n"]

    def _top_file(self, tag: Tag, nf: NodeFile) -> list[Part]:
        body = self._file(tag, nf)
        head = f"\n# {display_path(nf)} line {tag.line}\n%post --log={POST_LOG}\n"
        return [head, *body, "%end\n"]

    # -- the whole ----------------------------------------------------------------------------

    def build(self) -> Template:
        for entry in self.nodes:
            for nf in entry.files:
                for tag in nf.root.children:
                    self._top(tag, nf)
        return Template(self._assemble())

    def _top(self, tag: Tag, nf: NodeFile) -> None:
        if tag.name == "var":
            self._define(tag, nf)
            return
        if tag.name in IGNORED_TAGS or not self._on(tag, nf):
            return
        if tag.name == "main":
            self._main(tag, nf)
        elif tag.name == "package":
            self._package(tag, nf)
        elif tag.name in ("pre", "post"):
            (self.pre if tag.name == "pre" else self.post).append(self._script(tag.name, tag, nf))
        elif tag.name == "file":
            self.post.append(self._top_file(tag, nf))
        elif tag.name == "eval":
            raise GraphError(
                f"{where(nf.path, tag.line)}: <eval> is only supported inside a section "
                "(pre, post, file, main)"
            )
        else:
            self.notes.append(
                f"# skipped <{tag.name}> ({where(nf.path, tag.line)}): not supported\n"
            )

    def _assemble(self) -> list[Part]:
        out: list[Part] = [
            "#\n# Kickstart for ",
            Slot("hostname", "the host"),
            f" (graph {self.info.graph}, root node {self.info.root})\n",
            f"# generated by provisioner {self.info.version} for kickstart syntax ",
            Slot("Kickstart_SyntaxVersion", "the host"),
            "\n#\n# Node Traversal Order\n#\n",
        ]
        width = max((len(e.name) for e in self.nodes), default=0)
        for entry in self.nodes:
            for nf in entry.files:
                out.append(f"# {entry.name:<{width}}  {display_path(nf)}\n")
        out.append("#\n\n")
        out.extend(self.notes)

        if "bootloader" not in self.main:
            self.main["bootloader"] = [["bootloader --location=mbr"]]
        for cmd, lines in self.main.items():
            for line in lines:
                out.extend(line)
                if cmd == "bootloader":
                    out.append(Block(lambda v: format_append(v.get(BOOTFLAGS, ""))))
                out.append("\n")
        out.append(PARTITION_INCLUDE + "\n")

        out.append("\n%packages --ignoremissing\n")
        if self.dynamic_packages:
            on, off = dict(self.packages_on), dict(self.packages_off)
            dyn = list(self.dynamic_packages)
            out.append(Block(lambda v: _package_lines(on, off, dyn, v)))
        else:
            out.append(_package_lines(self.packages_on, self.packages_off, [], {}))
        out.append("%end\n")

        out.extend(_helper_pre())
        for section in self.pre:
            out.extend(section)
        out.extend(_do_partition_pre())
        for section in self.post:
            out.extend(section)
        return out


def _package_lines(
    on: Mapping[str, object],
    off: Mapping[str, object],
    dynamic: Sequence[tuple[bool, bool, list[Part]]],
    values: Mapping[str, str],
) -> str:
    enabled, disabled = set(on), set(off)
    for meta, is_off, parts in dynamic:
        for name in Template(parts).render(values).split():
            key = ("@" + name) if meta and not name.startswith("@") else name
            (disabled if is_off else enabled).add(key)
    # A package one node enables and another disables is installed: the on-list wins.
    lines = sorted(enabled) + ["-" + p for p in sorted(disabled - enabled)]
    return "".join(line + "\n" for line in lines)


def _helper_pre() -> list[Part]:
    return [
        "\n# Partition helper: module rocks_partition for the %pre programs below, and what\n"
        "# the server knows of this host's disks (written by provisioner, not a node file).\n"
        f"%pre --log={PRE_LOG}\n"
        'T="${ROCKS_PARTITION_TMP:-/tmp}"\n'
        'mkdir -p "$T"\n'
        "cat > \"$T/rocks_partition.py\" << 'ROCKS_PARTITION_EOF'\n",
        helper_source(),
        "ROCKS_PARTITION_EOF\ncat > \"$T/rocks_partition.json\" << 'ROCKS_PARTITION_EOF'\n",
        Slot(PARTITION_JSON, "the partition helper"),
        "\nROCKS_PARTITION_EOF\n"
        'if [ -z "$ROCKS_PARTITION_ROOT" ]; then\n'
        f'  (cd "$T" && {PYTHON} -c \'import rocks_partition, sysconfig; '
        'rocks_partition.install_copy(sysconfig.get_paths()["purelib"])\') '
        "2>/dev/null || true\n"
        "fi\n"
        "%end\n",
    ]


def _do_partition_pre() -> list[Part]:
    return [
        "\n# Partitioning: /tmp/partition-info from /tmp/user_partition_info (rocks_partition)\n"
        f"%pre --log={PRE_LOG} --interpreter={PYTHON}\n"
        "import os\n"
        "import sys\n"
        'sys.path.insert(0, os.environ.get("ROCKS_PARTITION_TMP") or "/tmp")\n'
        "import rocks_partition\n"
        "rocks_partition.do_partition()\n"
        "%end\n"
    ]


_SORTED_JSON = json.JSONEncoder(sort_keys=True)


def partition_json(host: str, appliance: str, rows: Sequence[Mapping[str, str]]) -> str:
    """The per-host data the helper reads from /tmp/rocks_partition.json (one line)."""
    # One encoder for every call: json.dumps(sort_keys=True) builds a new one each time.
    return _SORTED_JSON.encode(
        {
            "host": host,
            "appliance": appliance,
            "frontend": appliance == "frontend",
            "partitions": [dict(r) for r in rows],
        }
    )


# -- the expanded XML (`rocks list host xml`) -------------------------------------------------


def expanded_xml(
    nodes: Sequence[NodeEntry], values: Mapping[str, str], info: Info, host: str
) -> str:
    """The traversed node files as one `<kickstart>` document: references replaced by values
    (escaped by the serializer), tags whose conditions fail left out with a comment, every
    top-level tag annotated with the file and roll it came from."""
    from lxml import etree

    root = etree.Element("kickstart")
    root.set("host", host)
    root.set("graph", info.graph)
    root.set("root", info.root)
    root.text = "\n"
    for entry in nodes:
        for nf in entry.files:
            comment = etree.Comment(f" {entry.name}: {display_path(nf)} ")
            comment.tail = "\n"
            root.append(comment)
            for tag in nf.root.children:
                if tag.name in ("description", "copyright", "changelog"):
                    continue
                _xml_tag(root, tag, nf, values, top=True)
    root[-1].tail = "\n" if len(root) else None
    return etree.tostring(root, encoding="unicode", xml_declaration=False) + "\n"


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _subst(text: str, nf: NodeFile, values: Mapping[str, str]) -> str:
    out = []
    for piece in split(text, nf.refs):
        if isinstance(piece, Ref):
            place = where(nf.path, piece.line)
            value = Slot(piece.name, place).value(values)
            if _NOT_XML.search(value):
                raise GraphError(
                    f"{place}: the value of '{piece.name}' has control characters XML cannot hold"
                )
            out.append(value)
        else:
            out.append(piece)
    return "".join(out)


def _xml_tag(
    parent: etree._Element, tag: Tag, nf: NodeFile, values: Mapping[str, str], top: bool
) -> None:
    from lxml import etree

    cond = nf.cond(tag)
    if cond is not None and not cond(values):
        comment = etree.Comment(f" <{tag.name}> line {tag.line}: condition false ")
        comment.tail = _subst(tag.tail, nf, values)
        parent.append(comment)
        return
    el = etree.SubElement(parent, tag.name)
    for key, value in tag.attrs.items():
        el.set(key, _subst(value, nf, values))
    if top:
        el.set("file", display_path(nf))
        el.set("line", str(tag.line))
    el.text = _subst(tag.text, nf, values)
    for child in tag.children:
        _xml_tag(el, child, nf, values, top=False)
    el.tail = _subst(tag.tail, nf, values)
