"""Networks and host interfaces: validation, uniqueness of MACs and IPs, and IP allocation."""

from __future__ import annotations

import ipaddress
from typing import Any, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from provisioner.db.models import Alias, Interface, Subnet
from provisioner.db.reader import Reader
from provisioner.errors import Conflict, NotFound, UsageError
from provisioner.services.hostargs import is_mac, normalize_mac

SUBNET_COLUMNS = "id, name, subnet, netmask, mtu, dnszone, servedns"


def network_of(subnet: str, netmask: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        if ":" in netmask:
            # IPv6 masks are stored like IPv4 ones (ffff:ffff:ffff:ffff::); ipaddress wants a
            # prefix length for them.
            bits = bin(int(ipaddress.IPv6Address(netmask))).count("1")
            return ipaddress.ip_network(f"{subnet}/{bits}", strict=False)
        return ipaddress.ip_network(f"{subnet}/{netmask}", strict=False)
    except ValueError as exc:
        raise UsageError(f"bad network {subnet}/{netmask}: {exc}") from None


class NetworkRow(NamedTuple):
    id: int
    name: str
    subnet: str
    netmask: str
    mtu: int | None
    dnszone: str | None
    servedns: bool


class InterfaceRow(NamedTuple):
    host_id: int
    subnet: str | None
    device: str
    mac: str | None
    ip: str | None
    netmask: str | None
    module: str | None
    name: str | None
    vlan: int | None
    options: str | None


def list_networks(reader: Reader) -> list[NetworkRow]:
    return [NetworkRow(*r) for r in reader.all(f"SELECT {SUBNET_COLUMNS} FROM subnets ORDER BY id")]


def get_network(session: Session, name: str) -> Subnet:
    net = session.scalar(select(Subnet).where(func.lower(Subnet.name) == name.lower()))
    if net is None:
        raise NotFound(f"unknown network '{name}'")
    return net


def add_network(
    session: Session,
    name: str,
    subnet: str,
    netmask: str,
    mtu: int = 1500,
    dnszone: str | None = None,
    servedns: bool = False,
) -> Subnet:
    net = network_of(subnet, netmask)
    if session.scalar(select(Subnet.id).where(func.lower(Subnet.name) == name.lower())):
        raise Conflict(f"network '{name}' already exists")
    if not 68 <= mtu <= 65535:
        raise UsageError(f"bad mtu {mtu}")
    row = Subnet(
        name=name,
        subnet=str(net.network_address),
        netmask=str(net.netmask),
        mtu=mtu,
        dnszone=dnszone if dnszone is not None else name,
        servedns=servedns,
    )
    session.add(row)
    session.flush()
    return row


def set_network(session: Session, name: str, **changes: Any) -> Subnet:
    row = get_network(session, name)
    for key, value in changes.items():
        if key in ("subnet", "netmask"):
            subnet = value if key == "subnet" else row.subnet
            netmask = value if key == "netmask" else row.netmask
            net = network_of(subnet, netmask)
            row.subnet, row.netmask = str(net.network_address), str(net.netmask)
        elif key in ("mtu", "dnszone", "servedns"):
            setattr(row, key, value)
        else:
            raise UsageError(f"'{key}' is not a property of a network")
    session.flush()
    return row


def remove_network(session: Session, name: str) -> None:
    row = get_network(session, name)
    used = session.scalar(select(func.count()).where(Interface.subnet_id == row.id)) or 0
    if used:
        raise Conflict(f"network '{row.name}' is used by {used} interface(s); remove them first")
    session.delete(row)
    session.flush()


# -- interfaces ---------------------------------------------------------------------------------


def _check_ip(session: Session, ip: str, subnet: Subnet | None, exclude: int | None) -> str:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        raise UsageError(f"bad IP address '{ip}'") from None
    if subnet is not None:
        net = network_of(subnet.subnet, subnet.netmask)
        if addr not in net:
            raise UsageError(f"IP {ip} is not in network '{subnet.name}' ({net})")
    q = select(Interface.id).where(Interface.ip == str(addr))
    if subnet is not None:
        q = q.where(Interface.subnet_id == subnet.id)
    if exclude is not None:
        q = q.where(Interface.id != exclude)
    if session.scalar(q) is not None:
        raise Conflict(f"IP {addr} is already used by another interface")
    return str(addr)


def _check_mac(session: Session, mac: str, exclude: int | None) -> str:
    if not is_mac(mac):
        raise UsageError(f"bad MAC address '{mac}'")
    mac = normalize_mac(mac)
    q = select(Interface.id).where(func.lower(Interface.mac) == mac)
    if exclude is not None:
        q = q.where(Interface.id != exclude)
    if session.scalar(q) is not None:
        raise Conflict(f"MAC {mac} is already used by another interface")
    return mac


def get_interface(session: Session, host_id: int, device: str) -> Interface:
    row = session.scalar(
        select(Interface).where(Interface.host_id == host_id, Interface.device == device)
    )
    if row is None:
        raise NotFound(f"no interface '{device}'")
    return row


def add_interface(
    session: Session,
    host_id: int,
    device: str,
    mac: str | None = None,
    ip: str | None = None,
    subnet: str | None = None,
    vlan: int | None = None,
    module: str | None = None,
    name: str | None = None,
) -> Interface:
    if not device or any(c.isspace() for c in device):
        raise UsageError(f"bad interface name '{device}'")
    existing = session.scalar(
        select(Interface.id).where(Interface.host_id == host_id, Interface.device == device)
    )
    if existing is not None:
        raise Conflict(f"interface '{device}' already exists")
    net = get_network(session, subnet) if subnet else None
    row = Interface(
        host_id=host_id,
        device=device,
        mac=_check_mac(session, mac, None) if mac else None,
        ip=_check_ip(session, ip, net, None) if ip else None,
        subnet_id=net.id if net else None,
        vlan=vlan,
        module=module,
        name=name,
    )
    if vlan is not None and not 0 <= vlan <= 4094:
        raise UsageError(f"bad vlan {vlan}: 0 to 4094")
    session.add(row)
    session.flush()
    return row


def set_interface(session: Session, host_id: int, device: str, **changes: Any) -> Interface:
    row = get_interface(session, host_id, device)
    for key, value in changes.items():
        if value in ("", None) or (isinstance(value, str) and value.lower() == "none"):
            value = None
        if key == "mac":
            row.mac = _check_mac(session, value, row.id) if value else None
        elif key == "ip":
            net = session.get(Subnet, row.subnet_id) if row.subnet_id else None
            row.ip = _check_ip(session, value, net, row.id) if value else None
        elif key == "subnet":
            net = get_network(session, value) if value else None
            if row.ip:
                _check_ip(session, row.ip, net, row.id)
            row.subnet_id = net.id if net else None
        elif key == "iface":
            if not value:
                raise UsageError("an interface needs a name")
            if session.scalar(
                select(Interface.id).where(Interface.host_id == host_id, Interface.device == value)
            ):
                raise Conflict(f"interface '{value}' already exists")
            row.device = value
        elif key == "vlan":
            row.vlan = int(value) if value is not None else None
        elif key in ("module", "name", "options"):
            setattr(row, key, value)
        else:
            raise UsageError(f"'{key}' is not a property of an interface")
    session.flush()
    return row


def remove_interface(session: Session, host_id: int, device: str) -> None:
    session.delete(get_interface(session, host_id, device))
    session.flush()


def next_free_ip(session: Session, subnet: Subnet, skip: set[str] | None = None) -> str:
    """The highest free address of the network, counting down (Rocks' insert-ethers rule).

    The network and broadcast addresses are never given out; `skip` holds addresses already
    promised in the same transaction.
    """
    net = network_of(subnet.subnet, subnet.netmask)
    used = set(session.scalars(select(Interface.ip).where(Interface.ip.is_not(None))))
    used |= skip or set()
    top = int(net.broadcast_address) - 1
    bottom = int(net.network_address) + 1
    for value in range(top, bottom - 1, -1):
        candidate = str(ipaddress.ip_address(value))
        if candidate not in used:
            return candidate
    raise Conflict(f"network '{subnet.name}' has no free address left")


# -- aliases ------------------------------------------------------------------------------------


def subnet_id(reader: Reader, name: str) -> int | None:
    """The id of the network named `name` (private, public, ...), or None."""
    return reader.scalar("SELECT id FROM subnets WHERE name = :n", n=name)


def aliases_of(reader: Reader, host_ids: list[int]) -> list[tuple[int, str]]:
    """(host id, alias) of these hosts, by alias."""
    clause, params = reader.in_clause("h", host_ids)
    return [
        (r[0], r[1])
        for r in reader.all(
            f"SELECT host_id, name FROM aliases WHERE host_id IN {clause} ORDER BY name", **params
        )
    ]


def interfaces_of(reader: Reader, host_ids: list[int]) -> list[InterfaceRow]:
    """These hosts' interfaces, by device."""
    clause, params = reader.in_clause("h", host_ids)
    rows = reader.all(
        "SELECT i.host_id, s.name, i.device, i.mac, i.ip, s.netmask, i.module, i.name, i.vlan, "
        "i.options FROM interfaces i LEFT JOIN subnets s ON s.id = i.subnet_id "
        f"WHERE i.host_id IN {clause} ORDER BY i.device",
        **params,
    )
    return [InterfaceRow(*r) for r in rows]


def device_with_mac(reader: Reader, host_id: int, mac: str) -> str | None:
    """The host's interface that has this (normalised) MAC."""
    return reader.scalar(
        "SELECT device FROM interfaces WHERE host_id = :h AND lower(mac) = :m", h=host_id, m=mac
    )


def add_alias(session: Session, host_id: int, name: str) -> Alias:
    from provisioner.db.models import Host
    from provisioner.services.hosts import check_host_name

    name = check_host_name(session, name)
    if session.scalar(select(Host.id).where(Host.name == name)) is not None:
        raise Conflict(f"'{name}' is the name of a host")
    if session.scalar(select(Alias.id).where(Alias.name == name)) is not None:
        raise Conflict(f"alias '{name}' already exists")
    row = Alias(host_id=host_id, name=name)
    session.add(row)
    session.flush()
    return row


def remove_alias(session: Session, host_id: int, name: str) -> None:
    row = session.scalar(select(Alias).where(Alias.host_id == host_id, Alias.name == name.lower()))
    if row is None:
        raise NotFound(f"no alias '{name}' for this host")
    session.delete(row)
    session.flush()
