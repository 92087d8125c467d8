"""Host aliases: more DNS names (CNAMEs) for a host."""

from __future__ import annotations

from typing import Any

from provisioner.cli.command import Command, Param
from provisioner.cli.context import Context
from provisioner.plugins.base.commands._common import HOSTS_OPTIONAL, ONE_HOST

_ALIAS = Param("alias", "The alias, a host-like name.", required=True, positional=True)


class AddHostAlias(Command):
    """Give a host another DNS name, answered as a CNAME in its network's zone."""

    name = "add host alias"
    writes = True
    args = (ONE_HOST,)
    params = (_ALIAS,)
    examples = (("rocks add host alias nas-0-0 storage", "storage.local is nas-0-0.local."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.networks import add_alias

        add_alias(ctx.session, ctx.host(args[0]).id, params["alias"])


class ListHostAlias(Command):
    """List host aliases."""

    name = "list host alias"
    table = True
    args = (HOSTS_OPTIONAL,)
    examples = (("rocks list host alias", "Every alias."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        hosts = ctx.hosts(args)
        by_id = {h.id: h.name for h in hosts}
        from provisioner.services.networks import aliases_of

        out = ctx.table(["host", "alias"])
        for host_id, alias in aliases_of(ctx.reader, list(by_id)):
            out.row(by_id[host_id], alias)


class RemoveHostAlias(Command):
    """Remove a host alias."""

    name = "remove host alias"
    writes = True
    args = (ONE_HOST,)
    params = (_ALIAS,)
    examples = (("rocks remove host alias nas-0-0 storage", "Drop the alias."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.networks import remove_alias

        remove_alias(ctx.session, ctx.host(args[0]).id, params["alias"])
