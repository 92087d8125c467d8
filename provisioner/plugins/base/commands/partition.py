"""The partitions hosts reported after install."""

from __future__ import annotations

from typing import Any

from provisioner.cli.command import Command, Param
from provisioner.cli.context import Context
from provisioner.plugins.base.commands._common import HOSTS, HOSTS_OPTIONAL


class ListHostPartition(Command):
    """List the partitions hosts reported after their last install."""

    name = "list host partition"
    table = True
    args = (HOSTS_OPTIONAL,)
    examples = (("rocks list host partition compute-0-0", "Its disks as installed."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.partitions import list_partitions

        hosts = ctx.hosts(args)
        names = {h.id: h.name for h in hosts}
        order = {h.id: n for n, h in enumerate(hosts)}
        rows = sorted(list_partitions(ctx.reader, list(names)), key=lambda r: (order[r[0]], r[1]))
        out = ctx.table(
            ["host", "device", "mountpoint", "start", "size", "id", "type", "flags", "formatflags"]
        )
        for host_id, *values in rows:
            out.row(names[host_id], *values)


class RemoveHostPartition(Command):
    """Forget hosts' partitions, so their next install partitions afresh.

    A disk that still carries /.rocks-release is reconnected anyway: remove that file too (or
    use 'rocks force-default' in the host's partitioning) to reformat it.
    """

    name = "remove host partition"
    writes = True
    args = (HOSTS,)
    params = (Param("partition", "Only this mountpoint, e.g. /state/partition1."),)
    examples = (("rocks remove host partition compute-0-0", "Repartition on next install."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.partitions import remove_partitions

        for h in ctx.hosts(args, at_least_one=True):
            remove_partitions(ctx.session, h.id, params["partition"])
