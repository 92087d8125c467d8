"""What the DHCP renderers (provisioner/dhcp/) read from the database: the private network and
the fixed address of every known interface."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from provisioner.db.reader import Reader


@dataclass(frozen=True)
class Lease:
    host: str
    appliance_id: int
    device: str
    mac: str
    ip: str | None
    subnet: str
    zone: str


@dataclass(frozen=True)
class Network:
    name: str
    subnet: str
    netmask: str
    zone: str

    @property
    def net(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"{self.subnet}/{self.netmask}", strict=False)


def private_network(reader: Reader) -> Network:
    row = reader.one("SELECT name, subnet, netmask, dnszone FROM subnets WHERE name = 'private'")
    if row is None:
        from provisioner.errors import NotFound

        raise NotFound("there is no 'private' network")
    return Network(*row)


def leases(reader: Reader, macs: set[str] | None = None) -> list[Lease]:
    """Every interface with a MAC on a network, physical (no VLAN), in host order; or only
    those with `macs` (lower-case)."""
    where, params = "", {}
    if macs is not None:
        clause, params = reader.in_clause("m", sorted(macs))
        where = f"AND lower(i.mac) IN {clause} "
    rows = reader.all(
        "SELECT h.name, m.appliance_id, i.device, i.mac, i.ip, s.name, s.dnszone "
        "FROM interfaces i JOIN hosts h ON h.id = i.host_id "
        "JOIN memberships m ON m.id = h.membership_id "
        "LEFT JOIN subnets s ON s.id = i.subnet_id "
        f"WHERE i.mac IS NOT NULL AND (i.vlan IS NULL OR i.vlan = 0) {where}"
        "ORDER BY h.rack, h.rank, h.name, i.device",
        **params,
    )
    return [Lease(*r) for r in rows]
