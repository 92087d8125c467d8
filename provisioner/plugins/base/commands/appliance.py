"""Memberships and appliances."""

from __future__ import annotations

from typing import Any

from provisioner.cli.command import Arg, Command, Param
from provisioner.cli.context import Context

_APPLIANCE = Arg("appliance", "Appliance name, e.g. compute.")


class ListMembership(Command):
    """List the memberships and the appliance each one belongs to."""

    name = "list membership"
    table = True
    examples = (("rocks list membership", "All memberships."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.appliances import list_memberships

        out = ctx.table(["membership", "appliance"])
        for membership, appliance, _dist, _public in list_memberships(ctx.reader):
            out.row(membership, appliance)


class ListAppliance(Command):
    """List the appliances with their membership, graph and root node."""

    name = "list appliance"
    table = True
    args = (Arg("appliance", "Appliance names; none means all.", optional=True, repeat=True),)
    examples = (("rocks list appliance", "All appliances."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.errors import NotFound
        from provisioner.services.appliances import list_appliances

        rows = list_appliances(ctx.reader)
        if args:
            wanted = {a.lower() for a in args}
            missing = wanted - {r[1] for r in rows}
            if missing:
                raise NotFound(f"unknown appliance '{sorted(missing)[0]}'")
            rows = [r for r in rows if r[1] in wanted]
        out = ctx.table(["appliance", "membership", "graph", "node", "roll"])
        for _id, name, graph, node, roll, membership in rows:
            out.row(name, membership, graph, node, roll)


class AddAppliance(Command):
    """Add an appliance, with its membership.

    An appliance with a root node (node=) is installed by this server from the node graph;
    one without is only named (switches, power units).
    """

    name = "add appliance"
    writes = True
    args = (_APPLIANCE,)
    params = (
        Param("membership", "Membership name (default: the appliance name, capitalised)."),
        Param("node", "Root node of its graph traversal, e.g. compute."),
        Param("graph", "Graph name.", default="default"),
        Param("public", "Offered to node discovery.", "bool", True),
    )
    examples = (
        ("rocks add appliance login membership=Login node=login", "A login node appliance."),
    )

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.appliances import add_appliance

        add_appliance(
            ctx.session,
            args[0],
            membership=params["membership"],
            node=params["node"] or "",
            graph=params["graph"],
            public=params["public"],
            roll="site",
        )


class RemoveAppliance(Command):
    """Remove an appliance that no host uses, with its memberships and attributes."""

    name = "remove appliance"
    writes = True
    args = (_APPLIANCE,)
    examples = (("rocks remove appliance login", "Remove the login appliance."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.appliances import remove_appliance

        remove_appliance(ctx.session, args[0])
