"""add/list/remove network and `set network <field>`."""

from __future__ import annotations

from typing import Any, ClassVar

from provisioner.cli.command import Arg, Command, Param
from provisioner.cli.context import Context

_NETWORK = Arg("network", "Network name, e.g. private.")


class AddNetwork(Command):
    """Add a network (Rocks: subnet) that interfaces can be on."""

    name = "add network"
    writes = True
    args = (_NETWORK,)
    params = (
        Param("subnet", "Network address, e.g. 10.2.0.0.", required=True, positional=True),
        Param("netmask", "Netmask, e.g. 255.255.0.0.", required=True, positional=True),
        Param("mtu", "MTU.", "int", 1500),
        Param("dnszone", "DNS zone of the network (default: its name)."),
        Param("servedns", "Serve DNS for this network.", "bool", False),
    )
    examples = (
        (
            "rocks add network ib 192.168.0.0 255.255.255.0 dnszone=ib servedns=yes",
            "An InfiniBand network.",
        ),
    )

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.networks import add_network

        add_network(
            ctx.session,
            args[0],
            params["subnet"],
            params["netmask"],
            mtu=params["mtu"],
            dnszone=params["dnszone"],
            servedns=params["servedns"],
        )


class ListNetwork(Command):
    """List the networks."""

    name = "list network"
    table = True
    args = (Arg("network", "Network names; none means all.", optional=True, repeat=True),)
    examples = (("rocks list network", "All networks."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.errors import NotFound
        from provisioner.services.networks import list_networks

        rows = list_networks(ctx.reader)
        if args:
            wanted = {a.lower() for a in args}
            unknown = wanted - {r[1].lower() for r in rows}
            if unknown:
                raise NotFound(f"unknown network '{sorted(unknown)[0]}'")
            rows = [r for r in rows if r[1].lower() in wanted]
        out = ctx.table(["network", "subnet", "netmask", "mtu", "dnszone", "servedns"])
        for _id, name, subnet, netmask, mtu, zone, serve in rows:
            out.row(name, subnet, netmask, mtu, zone, bool(serve))


class RemoveNetwork(Command):
    """Remove a network no interface uses."""

    name = "remove network"
    writes = True
    args = (_NETWORK,)
    examples = (("rocks remove network ib", "Remove the ib network."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.networks import remove_network

        remove_network(ctx.session, args[0])


class _SetNetworkField(Command):
    field: ClassVar[str] = ""
    writes = True
    args = (_NETWORK,)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.networks import set_network

        set_network(ctx.session, args[0], **{self.field: params[self.params[0].name]})


class SetNetworkSubnet(_SetNetworkField):
    """Set the network address of a network."""

    name = "set network subnet"
    field = "subnet"
    params = (Param("subnet", "Network address.", required=True, positional=True),)
    examples = (("rocks set network subnet private 10.2.0.0", "Move the private network."),)


class SetNetworkNetmask(_SetNetworkField):
    """Set the netmask of a network."""

    name = "set network netmask"
    field = "netmask"
    params = (Param("netmask", "Netmask.", required=True, positional=True),)
    examples = (("rocks set network netmask private 255.255.0.0", "A /16."),)


class SetNetworkMtu(_SetNetworkField):
    """Set the MTU of a network."""

    name = "set network mtu"
    field = "mtu"
    params = (Param("mtu", "MTU.", "int", required=True, positional=True),)
    examples = (("rocks set network mtu private 9000", "Jumbo frames."),)


class SetNetworkZone(_SetNetworkField):
    """Set the DNS zone of a network."""

    name = "set network zone"
    field = "dnszone"
    params = (Param("zone", "DNS zone.", required=True, positional=True),)
    examples = (("rocks set network zone private local", "Names end in .local."),)


class SetNetworkServedns(_SetNetworkField):
    """Set whether this server answers DNS for a network."""

    name = "set network servedns"
    field = "servedns"
    params = (Param("servedns", "yes or no.", "bool", required=True, positional=True),)
    examples = (("rocks set network servedns private yes", "Serve DNS for private."),)
