"""Which host a request from the network is: the policy behind "a kickstart only for the host
that asks from its own address".

A request from an address no host owns may name itself by the MACs anaconda sends (`kssendmac`:
X-RHN-Provisioning-MAC-N), but only from the private network and only for a host that has no
private address of its own yet; naming another host than the one the address belongs to is
refused (403), with nothing of the kickstart in the answer. The web layer (web/install.py,
web/boot.py, web/discovery.py) calls this and never queries hosts itself.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from provisioner.db.reader import Reader
from provisioner.services.hostargs import HOST_SELECT, HostRow, is_mac, normalize_mac


def normalize_ip(ip: str) -> str:
    if ip.count(".") == 3 and ":" not in ip:
        return ip  # the common case, without parsing
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


# From the interface to its host: a join is half the work of `h.id IN (subquery)` for SQLite,
# and this runs for every kickstart of a storm.
_HOST_BY_IP = (
    HOST_SELECT.replace("FROM hosts h ", "FROM interfaces i JOIN hosts h ON h.id = i.host_id ", 1)
    + " WHERE i.ip = :ip AND (i.vlan IS NULL OR i.vlan = 0) LIMIT 1"
)


def host_by_ip(reader: Reader, ip: str) -> HostRow | None:
    rows = reader.all(_HOST_BY_IP, ip=ip)
    return HostRow(*rows[0]) if rows else None


def hosts_by_macs(reader: Reader, macs: list[str]) -> list[HostRow]:
    if not macs:
        return []
    clause, params = reader.in_clause("m", macs)
    rows = reader.all(
        f"{HOST_SELECT} WHERE h.id IN "
        f"(SELECT host_id FROM interfaces WHERE lower(mac) IN {clause})",
        **params,
    )
    return [HostRow(*r) for r in rows]


def _private_ip(reader: Reader, host_id: int) -> str | None:
    return reader.scalar(
        "SELECT i.ip FROM interfaces i JOIN subnets s ON s.id = i.subnet_id "
        "WHERE i.host_id = :h AND s.name = 'private' AND i.ip IS NOT NULL",
        h=host_id,
    )


def _in_private_network(reader: Reader, ip: str) -> bool:
    row = reader.one("SELECT subnet, netmask FROM subnets WHERE name = 'private'")
    if row is None:
        return False
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(f"{row[0]}/{row[1]}", strict=False)
    except ValueError:
        return False


class Refused(Exception):
    """A kickstart request that gets a one-line refusal instead of a kickstart."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def macs_in(values: Iterable[str]) -> list[str]:
    """The MAC of each `<dev> <mac> [...]` header value."""
    macs = []
    for value in values:
        for word in str(value).split():
            if is_mac(word):
                macs.append(normalize_mac(word))
                break
    return macs


def identify(reader: Reader, ip: str, macs: list[str], named: str | None) -> HostRow:
    """The host a kickstart request is for; Refused (403/404) with a one-line reason."""
    owner = host_by_ip(reader, ip)
    if owner is not None:
        if named and named.lower() != owner.name:
            raise Refused(403, f"{ip} belongs to {owner.name}: it cannot ask for another host")
        for other in hosts_by_macs(reader, macs):
            if other.id != owner.id:
                raise Refused(
                    403, f"{ip} belongs to {owner.name}, not to the host of the MACs sent"
                )
        return owner
    if named:
        raise Refused(403, f"no host has address {ip}: a kickstart is only served to its own host")
    candidates = hosts_by_macs(reader, macs)
    if not candidates:
        reason = f"no host has address {ip}" + (f" or MAC {', '.join(macs)}" if macs else "")
        raise Refused(404, reason)
    if len(candidates) > 1:
        raise Refused(403, f"the MACs sent belong to {len(candidates)} hosts")
    host = candidates[0]
    own = _private_ip(reader, host.id)
    if own is not None or not _in_private_network(reader, ip):
        # Its kickstart would go to whoever claims its MAC: only from its own address.
        raise Refused(
            403, f"{host.name} must ask from its own address {own or '(private network)'}"
        )
    return host


def host_by_boot_address(reader: Reader, mac: str | None, ip: str | None) -> HostRow | None:
    """The host a boot-config request is for: by the MAC the firmware sent, else by the
    address it asks from (any interface of the host, VLANs included)."""
    for where, value in (("lower(mac) = :v", mac and mac.lower()), ("ip = :v", ip)):
        if not value:
            continue
        rows = reader.all(
            f"{HOST_SELECT} WHERE h.id IN (SELECT host_id FROM interfaces WHERE {where})",
            v=value,
        )
        if rows:
            return HostRow(*rows[0])
    return None
