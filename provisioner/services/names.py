"""What the cluster's DNS view (provisioner/dns/zones.py) reads: the networks DNS serves, every
addressed interface, the aliases and which host is the frontend."""

from __future__ import annotations

from typing import NamedTuple

from provisioner.db.reader import Reader


class DnsNetwork(NamedTuple):
    id: int
    name: str
    subnet: str
    netmask: str
    dnszone: str | None


class DnsInterface(NamedTuple):
    id: int
    host_id: int
    host: str
    name: str | None  # the interface's own name, if it has one
    ip: str
    subnet_id: int
    device: str | None


def served_networks(reader: Reader) -> list[DnsNetwork]:
    return [
        DnsNetwork(*r)
        for r in reader.all(
            "SELECT id, name, subnet, netmask, dnszone FROM subnets WHERE servedns ORDER BY id"
        )
    ]


def addressed_interfaces(reader: Reader) -> list[DnsInterface]:
    return [
        DnsInterface(*r)
        for r in reader.all(
            "SELECT i.id, i.host_id, h.name, i.name, i.ip, i.subnet_id, i.device "
            "FROM interfaces i JOIN hosts h ON h.id = i.host_id "
            "WHERE i.ip IS NOT NULL AND i.subnet_id IS NOT NULL ORDER BY i.id"
        )
    ]


def all_aliases(reader: Reader) -> list[tuple[int, str]]:
    """(host id, alias) of every alias, oldest first."""
    return [(r[0], r[1]) for r in reader.all("SELECT host_id, name FROM aliases ORDER BY id")]


def frontend_ids(reader: Reader) -> set[int]:
    """The frontend: the host named by Kickstart_PrivateHostname, else frontend appliances."""
    name = reader.scalar(
        "SELECT value FROM global_attributes WHERE attr = 'Kickstart_PrivateHostname'"
    )
    if name:
        ids = reader.column("SELECT id FROM hosts WHERE name = :name", name=name)
        if ids:
            return set(ids)
    return set(
        reader.column(
            "SELECT h.id FROM hosts h JOIN memberships m ON m.id = h.membership_id "
            "JOIN appliances a ON a.id = m.appliance_id WHERE a.name = 'frontend'"
        )
    )
