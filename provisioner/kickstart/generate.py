"""Ordered node files -> a compiled kickstart (`Template`): `KickstartBuilder`.

Section order: a comment block (the host, the traversal order and the file each node came
from), the main section with `%include /tmp/partition-info`, `%packages --ignoremissing`,
the partition helper's %pre, the nodes' %pre sections, the %pre that writes
/tmp/partition-info, then the nodes' %post sections. Every section ends with `%end`.

Tag-level `arch`/`os`/`release`/`cond` are evaluated here, on the server, with the values the
compilation was asked for (the caller keys its cache on the values of exactly the attributes
those conditions read). Main-section commands that may appear once keep the last node's line,
so a later node (a site's extension) overrides an earlier one; repeatable ones (network,
part...) accumulate. Rocks-era commands modern installers reject are dropped with a comment,
and Rocks' /opt/rocks/bin/python interpreter becomes /usr/bin/python3 (`syntax`). The
partitioning sections come from `partitioning`; the expanded XML of the same nodes from
`expanded`.
"""

from __future__ import annotations

import re
import shlex
import textwrap
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from provisioner.graph.errors import GraphError, where
from provisioner.graph.model import NodeFile
from provisioner.graph.xmlload import Ref, Tag, split
from provisioner.kickstart.nodes import Info, NodeEntry, display_path
from provisioner.kickstart.partitioning import (
    PARTITION_INCLUDE,
    do_partition_pre,
    helper_pre,
)
from provisioner.kickstart.syntax import (
    COMMAND_NAME,
    DROPPED_COMMANDS,
    LEGACY_INTERPRETERS,
    POST_LOG,
    POST_LOG_NOCHROOT,
    PRE_LOG,
    RENAMED_COMMANDS,
    REPEATABLE_COMMANDS,
    format_append,
)
from provisioner.kickstart.template import Block, Part, Slot, Template

# The per-host value the renderer adds under a name no attribute can have.
BOOTFLAGS = "\x00bootflags"

IGNORED_TAGS = frozenset(
    {"description", "copyright", "changelog", "attributes", "debug", "var", "si_copyright"}
)
_OWNER = re.compile(r"^[A-Za-z0-9_.\-]+([:.][A-Za-z0-9_.\-]+)?$")
_PERMS = re.compile(r"^([0-7]{3,4}|[ugoa]*[+\-=][rwxXst]*(,[ugoa]*[+\-=][rwxXst]*)*)$")


EvalRunner = Callable[[str, str, Mapping[str, str], str, str], str]


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
            if not COMMAND_NAME.match(cmd):
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

        out.extend(helper_pre())
        for section in self.pre:
            out.extend(section)
        out.extend(do_partition_pre())
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
