"""add/list/remove host and the `set host <field>` commands."""

from __future__ import annotations

from typing import Any, ClassVar

from provisioner.cli.command import Command, Param
from provisioner.cli.context import Context
from provisioner.plugins.base.commands._common import HOSTS, HOSTS_OPTIONAL


class AddHost(Command):
    """Add a host to the cluster database.

    A name of the form <appliance>-<rack>-<rank> gives the membership, rack and rank when they
    are not set; otherwise the rank defaults to one more than the highest of that membership in
    that rack. Add its interfaces with 'rocks add host interface'.
    """

    name = "add host"
    writes = True
    args = ()
    params = (
        Param("host", "Name of the new host.", required=True, positional=True),
        Param("membership", "Membership or appliance name (Compute, compute, nas...)."),
        Param("appliance", "Appliance name; the same as membership=<appliance>."),
        Param("rack", "Rack number.", "int"),
        Param("rank", "Rank in the rack.", "int"),
        Param("cpus", "Number of CPUs.", "int", 1),
        Param("os", "Operating system.", default="linux"),
        Param("arch", "Architecture.", default="x86_64"),
        Param("comment", "Free text shown by 'rocks list host'."),
    )
    examples = (
        ("rocks add host compute-0-0", "Add a compute host in rack 0, rank 0."),
        ("rocks add host mynas membership=nas rack=1 rank=0", "Add a NAS appliance."),
    )

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.hosts import add_host

        add_host(
            ctx.session,
            ctx.hooks,
            params["host"],
            membership=params["membership"] or params["appliance"],
            rack=params["rack"],
            rank=params["rank"],
            cpus=params["cpus"],
            os=params["os"],
            arch=params["arch"],
            comment=params["comment"],
        )


class ListHost(Command):
    """List hosts with their membership, CPUs, rack, rank and boot actions."""

    name = "list host"
    table = True
    args = (HOSTS_OPTIONAL,)
    examples = (
        ("rocks list host", "All hosts."),
        ("rocks list host compute output-format=json", "Compute hosts, as JSON."),
    )

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        out = ctx.table(
            ["host", "membership", "cpus", "rack", "rank", "runaction", "installaction", "comment"]
        )
        for h in ctx.hosts(args):
            out.row(
                h.name,
                h.membership,
                h.cpus,
                h.rack,
                h.rank,
                h.runaction,
                h.installaction,
                h.comment,
            )


class RemoveHost(Command):
    """Remove hosts and everything stored for them (interfaces, attributes, partitions...)."""

    name = "remove host"
    writes = True
    args = (HOSTS,)
    examples = (("rocks remove host compute-0-0", "Remove one host."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.hosts import remove_host

        for h in ctx.hosts(args, at_least_one=True):
            remove_host(ctx.session, ctx.hooks, h.id)


class _SetHostField(Command):
    """Base of `rocks set host <field> <host>... <value>`."""

    field: ClassVar[str] = ""
    writes = True
    args = (HOSTS,)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.hosts import set_host

        value = params[self.params[0].name]
        for h in ctx.hosts(args, at_least_one=True):
            set_host(ctx.session, ctx.hooks, h.id, **{self.field: value})


class SetHostRack(_SetHostField):
    """Set the rack number of hosts."""

    name = "set host rack"
    field = "rack"
    params = (Param("rack", "Rack number.", "int", required=True, positional=True),)
    examples = (("rocks set host rack compute-0-0 1", "Move compute-0-0 to rack 1."),)


class SetHostRank(_SetHostField):
    """Set the rank (position in its rack) of hosts."""

    name = "set host rank"
    field = "rank"
    params = (Param("rank", "Rank number.", "int", required=True, positional=True),)
    examples = (("rocks set host rank compute-0-0 4", "compute-0-0 becomes rank 4."),)


class SetHostCpus(_SetHostField):
    """Set the number of CPUs of hosts."""

    name = "set host cpus"
    field = "cpus"
    params = (Param("cpus", "Number of CPUs.", "int", required=True, positional=True),)
    examples = (("rocks set host cpus compute-0-0 8", "compute-0-0 has 8 CPUs."),)


class SetHostMembership(_SetHostField):
    """Set the membership of hosts (which also sets their appliance)."""

    name = "set host membership"
    field = "membership"
    params = (
        Param("membership", "Membership name, e.g. Compute.", required=True, positional=True),
    )
    examples = (('rocks set host membership compute-0-0 "NAS Appliance"', "Make it a NAS."),)


class SetHostAppliance(_SetHostField):
    """Set the appliance of hosts (they get that appliance's first membership)."""

    name = "set host appliance"
    field = "membership"
    params = (Param("appliance", "Appliance name, e.g. compute.", required=True, positional=True),)
    examples = (("rocks set host appliance compute-0-0 nas", "Make it a NAS."),)


class SetHostOs(_SetHostField):
    """Set the operating system of hosts."""

    name = "set host os"
    field = "os"
    params = (Param("os", "Operating system, e.g. linux.", required=True, positional=True),)
    examples = (("rocks set host os compute-0-0 linux", "compute-0-0 runs Linux."),)


class SetHostArch(_SetHostField):
    """Set the architecture of hosts (the installer also reports it)."""

    name = "set host arch"
    field = "arch"
    params = (Param("arch", "Architecture, e.g. x86_64.", required=True, positional=True),)
    examples = (("rocks set host arch compute-0-0 x86_64", "compute-0-0 is 64-bit."),)


class SetHostName(_SetHostField):
    """Rename a host."""

    name = "set host name"
    field = "name"
    params = (Param("name", "The new name.", required=True, positional=True),)
    examples = (("rocks set host name compute-0-0 node1", "Rename compute-0-0 to node1."),)


class SetHostComment(_SetHostField):
    """Set the free-text comment of hosts."""

    name = "set host comment"
    field = "comment"
    params = (Param("comment", "The comment; empty to clear.", required=True, positional=True),)
    examples = (('rocks set host comment compute-0-0 "new disk"', "Note a repair."),)
