"""`rocks list help`: every command with its summary."""

from __future__ import annotations

from typing import Any

from provisioner.cli.command import Command, Param
from provisioner.cli.context import Context


class ListHelp(Command):
    """List every command with a one-line summary."""

    name = "list help"
    transactional = False
    params = (Param("subdir", "Only commands under this prefix, e.g. list/host."),)
    examples = (("rocks list help subdir=set/host", "The 'set host' commands."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.cli.help import listing

        prefix = (params["subdir"] or "").replace("/", " ").split()
        refs = ctx.app.registry.below(prefix)
        if refs:
            ctx.write(listing(ctx.app.registry, refs))
