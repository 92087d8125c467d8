"""add/list/remove host interface and `set host interface <field>`."""

from __future__ import annotations

from typing import Any, ClassVar

from provisioner.cli.command import Command, Param
from provisioner.cli.context import Context
from provisioner.plugins.base.commands._common import HOSTS_OPTIONAL, ONE_HOST

_IFACE = Param("iface", "Interface device name, e.g. eth0.", required=True, positional=True)


class AddHostInterface(Command):
    """Add a network interface to a host."""

    name = "add host interface"
    writes = True
    args = (ONE_HOST,)
    params = (
        _IFACE,
        Param("mac", "MAC address.", positional=True),
        Param("ip", "IP address, inside the network given by subnet=."),
        Param("subnet", "Network name (see 'rocks list network')."),
        Param("module", "Kernel driver module."),
        Param("name", "DNS name of this interface (default: the host name on its primary one)."),
        Param("vlan", "VLAN id, 0 to 4094.", "int"),
    )
    examples = (
        (
            "rocks add host interface compute-0-0 eth0 00:11:22:33:44:55 "
            "ip=10.1.255.254 subnet=private",
            "The private interface of compute-0-0.",
        ),
    )

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.networks import add_interface

        host = ctx.host(args[0])
        add_interface(
            ctx.session,
            host.id,
            params["iface"],
            mac=params["mac"],
            ip=params["ip"],
            subnet=params["subnet"],
            vlan=params["vlan"],
            module=params["module"],
            name=params["name"] or (host.name if params["subnet"] == "private" else None),
        )


class ListHostInterface(Command):
    """List the network interfaces of hosts."""

    name = "list host interface"
    table = True
    args = (HOSTS_OPTIONAL,)
    examples = (("rocks list host interface compute-0-0", "Interfaces of compute-0-0."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        hosts = ctx.hosts(args)
        by_id = {h.id: h for h in hosts}
        from provisioner.services.networks import interfaces_of

        rows = interfaces_of(ctx.reader, list(by_id))
        order = {h.id: n for n, h in enumerate(hosts)}
        rows.sort(key=lambda r: order[r[0]])
        out = ctx.table(
            ["host", "subnet", "iface", "mac", "ip", "netmask", "module", "name", "vlan", "options"]
        )
        for host_id, *values in rows:
            out.row(by_id[host_id].name, *values)


class RemoveHostInterface(Command):
    """Remove a network interface from a host."""

    name = "remove host interface"
    writes = True
    args = (ONE_HOST,)
    params = (_IFACE,)
    examples = (("rocks remove host interface compute-0-0 eth1", "Remove eth1."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.networks import remove_interface

        remove_interface(ctx.session, ctx.host(args[0]).id, params["iface"])


class _SetInterfaceField(Command):
    field: ClassVar[str] = ""
    writes = True
    args = (ONE_HOST,)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.networks import set_interface

        host = ctx.host(args[0])
        set_interface(ctx.session, host.id, params["iface"], **{self.field: params[self.field]})


def _value(name: str, doc: str, type_: str = "string") -> Param:
    return Param(name, doc + " 'none' clears it.", type_, required=True, positional=True)


class SetHostInterfaceIp(_SetInterfaceField):
    """Set the IP address of a host interface."""

    name = "set host interface ip"
    field = "ip"
    params = (_IFACE, _value("ip", "The IP address."))
    examples = (("rocks set host interface ip compute-0-0 eth0 10.1.255.200", "New private IP."),)


class SetHostInterfaceMac(_SetInterfaceField):
    """Set the MAC address of a host interface (after a NIC or board swap)."""

    name = "set host interface mac"
    field = "mac"
    params = (_IFACE, _value("mac", "The MAC address."))
    examples = (("rocks set host interface mac compute-0-0 eth0 00:11:22:33:44:66", "New NIC."),)


class SetHostInterfaceSubnet(_SetInterfaceField):
    """Set the network of a host interface."""

    name = "set host interface subnet"
    field = "subnet"
    params = (_IFACE, _value("subnet", "The network name."))
    examples = (("rocks set host interface subnet compute-0-0 eth1 public", "eth1 is public."),)


class SetHostInterfaceModule(_SetInterfaceField):
    """Set the kernel driver module of a host interface."""

    name = "set host interface module"
    field = "module"
    params = (_IFACE, _value("module", "The module name."))
    examples = (("rocks set host interface module compute-0-0 eth0 e1000", "Driver e1000."),)


class SetHostInterfaceName(_SetInterfaceField):
    """Set the DNS name of a host interface."""

    name = "set host interface name"
    field = "name"
    params = (_IFACE, _value("name", "The DNS name."))
    examples = (("rocks set host interface name compute-0-0 eth1 c0-ib", "Name eth1."),)


class SetHostInterfaceVlan(_SetInterfaceField):
    """Set the VLAN id of a host interface."""

    name = "set host interface vlan"
    field = "vlan"
    params = (_IFACE, _value("vlan", "The VLAN id."))
    examples = (("rocks set host interface vlan vm-container-0-0 vlan2 2", "VLAN 2."),)


class SetHostInterfaceIface(_SetInterfaceField):
    """Rename a host interface's device."""

    name = "set host interface iface"
    field = "iface"
    params = (
        Param("mac", "MAC address of the interface to rename.", required=True),
        Param("iface", "The new device name.", required=True, positional=True),
    )
    examples = (("rocks set host interface iface compute-0-0 mac=00:11:22:33:44:55 eth2", "eth2."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.errors import NotFound
        from provisioner.services.hostargs import normalize_mac
        from provisioner.services.networks import device_with_mac, set_interface

        host = ctx.host(args[0])
        device = device_with_mac(ctx.reader, host.id, normalize_mac(params["mac"]))
        if device is None:
            raise NotFound(f"{host.name} has no interface with MAC {params['mac']}")
        set_interface(ctx.session, host.id, device, iface=params["iface"])
