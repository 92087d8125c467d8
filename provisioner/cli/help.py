"""Help text generated from command declarations: usage, arguments, parameters, examples."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from provisioner.cli.command import Command
from provisioner.cli.registry import Registry
from provisioner.errors import UsageError
from provisioner.specs import CommandRef

WIDTH = 79


def command_help(cls: type[Command]) -> str:
    out = [f"usage: {cls.usage()}", "", _wrap(cls.summary(), 0)]
    if cls.description():
        out += ["", *(_wrap(par, 0) for par in cls.description().split("\n\n"))]
    if cls.args:
        out += ["", "arguments:"]
        out += [_item(a.usage().strip("[]{}"), a.doc) for a in cls.args]
    params = cls.all_params()
    if params:
        out += ["", "parameters:"]
        for p in params:
            doc = p.doc
            if p.positional:
                doc += " (may also be given as a trailing word)"
            if p.default not in (None, "", ()) and not p.required:
                shown = "yes" if p.default is True else "no" if p.default is False else p.default
                doc += f" [default: {shown}]"
            out.append(_item(p.usage().strip("[]"), doc))
    if cls.examples:
        out += ["", "examples:"]
        for cmd, what in cls.examples:
            out.append(f"  $ {cmd}")
            out.append(_wrap(what, 6))
    return "\n".join(out) + "\n"


def listing(registry: Registry, refs: Sequence[CommandRef]) -> str:
    width = max(len(r.name) for r in refs) + 7
    lines = []
    for ref in refs:
        summary = registry.load(ref).summary()
        lines.append(f"rocks {ref.name}".ljust(width) + " " + summary)
    return "\n".join(lines) + "\n"


def help_text(registry: Registry, words: list[str]) -> str:
    """`rocks help [command or prefix]`."""
    if words:
        found = registry.lookup(words)
        if found is not None and not found[1]:
            return command_help(registry.load(found[0]))
        below = registry.below(words)
        if below:
            return listing(registry, below)
        raise UsageError(f"no command matches 'rocks {' '.join(words)}'")
    verbs = sorted({r.words[0] for r in registry.refs.values()})
    return (
        "usage: rocks <verb> <object>... [argument...] [key=value...]\n\n"
        "verbs: " + ", ".join(verbs) + "\n\n"
        "'rocks <verb>' lists the commands of a verb; 'rocks <command> help' shows a command's\n"
        "usage. Hosts are named by name, IP, MAC, appliance (all its hosts), rackN or glob.\n"
    )


def _wrap(text: str, indent: int) -> str:
    return textwrap.fill(
        " ".join(text.split()),
        WIDTH,
        initial_indent=" " * indent,
        subsequent_indent=" " * indent,
    )


def _item(name: str, doc: str) -> str:
    head = f"  {name}"
    body = textwrap.wrap(" ".join(doc.split()), WIDTH - 28) or [""]
    if len(head) > 26:
        return head + "\n" + "\n".join(" " * 28 + b for b in body)
    first = head.ljust(28) + body[0]
    return "\n".join([first, *(" " * 28 + b for b in body[1:])])
