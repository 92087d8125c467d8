"""The DNS view of the cluster database: zones and their records, built in one pass of reads.

For each network with `servedns` (Rocks' `rocks sync dns`, reference §4.3, without the zone
files): a forward zone `<dnszone>` with SOA and `NS ns.<zone>` at the apex (`ns.<zone>` is the
frontend's address on that network), an A (AAAA) record per interface with an address on the
network, named `interfaces.name` or else the host's name, and a CNAME per host alias in the zone
of the host's private network (else of its first served network); and the reverse zone(s) of
the network with a PTR per address. `build_view(reader)` is pure reading: the resolver decides
when to call it (the database's `generation` changed) and how to answer from the result.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dnslib import AAAA, CNAME, NS, PTR, QTYPE, RR, SOA, A

if TYPE_CHECKING:
    from provisioner.db.reader import Reader
from provisioner.services import names

log = logging.getLogger("provisioner.dns")

_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")


@dataclass
class Zone:
    """One zone we are authoritative for: its apex name (lower case, trailing dot) and SOA."""

    name: str
    soa: RR
    ns: list[RR]


@dataclass
class ZoneView:
    """Everything the resolver answers from: zones by apex, RR sets by owner name and type,
    and the names that exist only as ancestors of others (NODATA there, not NXDOMAIN)."""

    generation: int
    zones: dict[str, Zone] = field(default_factory=dict)
    records: dict[str, dict[int, list[RR]]] = field(default_factory=dict)
    nonterminals: set[str] = field(default_factory=set)
    glue: dict[str, list[RR]] = field(default_factory=dict)
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def zone_of(self, name: str) -> Zone | None:
        """The zone holding `name` (lower case, trailing dot): the longest apex suffix."""
        while True:
            zone = self.zones.get(name)
            if zone is not None:
                return zone
            if name == ".":
                return None
            name = name.split(".", 1)[1] or "."


def fqdn(name: str, zone: str) -> str | None:
    """`name` made absolute in `zone` (both without trailing dot), or None if not a valid
    host name. A name that already ends with the zone is not doubled."""
    name = name.strip().lower().rstrip(".")
    if name == zone or name.endswith("." + zone):
        name = name[: -len(zone) - 1] if name != zone else ""
    full = f"{name}.{zone}." if name else f"{zone}."
    labels = full[:-1].split(".")
    if not name or len(full) > 254 or not all(_LABEL.match(label) for label in labels):
        return None
    return full


def reverse_zones(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> list[str]:
    """The in-addr.arpa (ip6.arpa) zones covering a network, at label boundaries: a /16 is one
    zone, a /20 is sixteen /24 zones, a /26 lives in its /24."""
    step = 8 if net.version == 4 else 4
    bits = min(-(-net.prefixlen // step) * step, net.max_prefixlen - step)
    bits = max(bits, step)
    subnets = [net] if net.prefixlen >= bits else list(net.subnets(new_prefix=bits))
    out = []
    for sub in subnets:
        labels = sub.network_address.reverse_pointer.split(".")
        # reverse_pointer names the whole address; keep the labels the prefix fixes.
        keep = bits // step
        suffix = 2  # in-addr.arpa / ip6.arpa
        out.append(".".join(labels[len(labels) - suffix - keep :]) + ".")
    return sorted(set(out))


def build_view(reader: Reader, ttl: int = 60) -> ZoneView:
    generation = reader.generation()
    view = ZoneView(generation)
    networks = names.served_networks(reader)
    if not networks:
        return view
    interfaces = names.addressed_interfaces(reader)
    aliases = names.all_aliases(reader)
    frontends = names.frontend_ids(reader)

    records: dict[str, dict[int, list[RR]]] = defaultdict(lambda: defaultdict(list))
    serial = generation % (1 << 32)
    net_zone: dict[int, str] = {}
    nets: dict[int, ipaddress.IPv4Network | ipaddress.IPv6Network] = {}
    reverse_of: dict[str, str] = {}
    for net_id, net_name, subnet, netmask, dnszone in networks:
        zone = (dnszone or "").strip().lower().rstrip(".")
        try:
            net = _network(subnet, netmask)
        except ValueError:
            view.skipped.append(f"network {net_name}: bad address {subnet}/{netmask}")
            continue
        if not zone or fqdn("ns", zone) is None:
            view.skipped.append(f"network {net_name}: bad DNS zone '{dnszone}'")
            continue
        net_zone[net_id], nets[net_id] = zone, net
        view.networks.append(net)
        for rz in reverse_zones(net):
            reverse_of.setdefault(rz, zone)

    def apex(name: str, ns_zone: str) -> None:
        if name in view.zones:
            return
        ns_name = f"ns.{ns_zone}."
        soa = RR(
            name,
            QTYPE.SOA,
            ttl=ttl,
            rdata=SOA(ns_name, f"hostmaster.{ns_zone}.", (serial, 3600, 600, 86400, ttl)),
        )
        ns = [RR(name, QTYPE.NS, ttl=ttl, rdata=NS(ns_name))]
        view.zones[name] = Zone(name, soa, ns)
        records[name][QTYPE.SOA].append(soa)
        records[name][QTYPE.NS].extend(ns)

    for zone in net_zone.values():
        apex(f"{zone}.", zone)
    for rz, zone in reverse_of.items():
        apex(rz, zone)

    names_of_host: dict[int, list[tuple[int, str, str]]] = defaultdict(list)
    for _iface, host_id, host, iface_name, ip, subnet_id, device in interfaces:
        zone = net_zone.get(subnet_id)
        if zone is None:
            continue
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            view.skipped.append(f"{host} {device}: bad address {ip}")
            continue
        name = fqdn(iface_name or host, zone)
        if name is None:
            view.skipped.append(f"{host} {device}: '{iface_name or host}' is not a DNS name")
            continue
        kind, rdata = (
            (QTYPE.A, A(str(addr))) if addr.version == 4 else (QTYPE.AAAA, AAAA(str(addr)))
        )
        records[name][kind].append(RR(name, kind, ttl=ttl, rdata=rdata))
        ptr_name = addr.reverse_pointer + "."
        if _in_zones(ptr_name, reverse_of):
            records[ptr_name][QTYPE.PTR].append(RR(ptr_name, QTYPE.PTR, ttl=ttl, rdata=PTR(name)))
        names_of_host[host_id].append((subnet_id, zone, name))
        if host_id in frontends:
            ns_name = f"ns.{zone}."
            glue = RR(ns_name, kind, ttl=ttl, rdata=rdata)
            if not any(g.rdata == rdata for g in view.glue.get(ns_name, [])):
                view.glue.setdefault(ns_name, []).append(glue)

    for ns_name, glue in view.glue.items():
        for rr in glue:
            records[ns_name][rr.rtype].append(rr)

    private = {row[0] for row in networks if row[1] == "private"}
    for host_id, alias in aliases:
        targets = names_of_host.get(host_id)
        if not targets:
            continue
        subnet_id, zone, target = next((t for t in targets if t[0] in private), targets[0])
        name = fqdn(alias, zone)
        if name is None:
            view.skipped.append(f"alias '{alias}' is not a DNS name")
            continue
        if name in records:
            view.skipped.append(f"alias {name} clashes with a name that has records")
            continue
        records[name][QTYPE.CNAME].append(RR(name, QTYPE.CNAME, ttl=ttl, rdata=CNAME(target)))

    view.records = {name: dict(sets) for name, sets in records.items()}
    for name in view.records:
        zone = view.zone_of(name)
        if zone is None:
            continue
        parent = name
        while parent != zone.name:
            parent = parent.split(".", 1)[1]
            if parent not in view.records:
                view.nonterminals.add(parent)
    for reason in view.skipped:
        log.debug("DNS: skipped %s", reason)
    return view


def _network(subnet: str, netmask: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """ipaddress takes IPv4 netmasks in either form but IPv6 ones only as a prefix length;
    the networks table stores `ffff:ffff:ffff:ffff::`."""
    if ":" in netmask:
        bits = bin(int(ipaddress.IPv6Address(netmask))).count("1")
        return ipaddress.ip_network(f"{subnet}/{bits}", strict=False)
    return ipaddress.ip_network(f"{subnet}/{netmask}", strict=False)


def _in_zones(name: str, zones: dict[str, str]) -> bool:
    while name not in zones:
        if "." not in name[:-1]:
            return False
        name = name.split(".", 1)[1]
    return True
