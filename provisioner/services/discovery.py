"""Node discovery (Rocks' insert-ethers), driven by DHCP leases instead of syslog scraping.

While discovery is on, an unknown MAC that DHCP saw becomes `<appliance>-<rack>-<rank>` with
the next free rank and the next free private IP counting down from the top of the network, and
boot action install. Discoveries are serialised on the discovery row (BEGIN IMMEDIATE on SQLite,
SELECT ... FOR UPDATE on PostgreSQL), so concurrent leases never share a name or an address.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from provisioner.db.models import Discovery, Host, InstallEvent, Interface, Membership, Subnet
from provisioner.db.reader import Reader
from provisioner.errors import UsageError
from provisioner.services.boot import set_state
from provisioner.services.hostargs import is_mac, normalize_mac
from provisioner.services.networks import network_of

if TYPE_CHECKING:
    from provisioner.hooks import Hooks


@dataclass(frozen=True)
class DiscoveryState:
    enabled: bool
    appliance: str
    rack: int
    rank: int | None
    started: Any


def state(reader: Reader) -> DiscoveryState | None:
    row = reader.one(
        "SELECT d.enabled, a.name, d.rack, d.rank, d.started FROM discovery d "
        "JOIN appliances a ON a.id = d.appliance_id ORDER BY d.id DESC"
    )
    return DiscoveryState(bool(row[0]), row[1], row[2], row[3], row[4]) if row else None


def is_on(reader: Reader) -> bool:
    """Whether unknown machines are being discovered now (they then boot to install)."""
    return (
        reader.one("SELECT d.appliance_id FROM discovery d WHERE d.enabled = :t", t=True)
        is not None
    )


def enable(session: Session, appliance: str, rack: int = 0, rank: int | None = None) -> Discovery:
    from provisioner.services.appliances import get_appliance

    app = get_appliance(session, appliance)
    if not app.node:
        raise UsageError(f"appliance '{app.name}' is not installed by this server (no root node)")
    if rack < 0 or (rank is not None and rank < 0):
        raise UsageError("rack and rank must be at least 0")
    for row in session.scalars(select(Discovery)):
        session.delete(row)
    row = Discovery(enabled=True, appliance_id=app.id, rack=rack, rank=rank)
    session.add(row)
    session.flush()
    return row


def disable(session: Session) -> bool:
    rows = list(session.scalars(select(Discovery).where(Discovery.enabled.is_(True))))
    for row in rows:
        row.enabled = False
    session.flush()
    return bool(rows)


def _pool(subnet: Subnet, session: Session) -> tuple[int, int]:
    from provisioner.db.models import GlobalAttribute
    from provisioner.dhcp.common import discovery_pool

    frontend = session.scalar(
        select(GlobalAttribute.value).where(GlobalAttribute.attr == "Kickstart_PrivateAddress")
    )
    start, end = discovery_pool(network_of(subnet.subnet, subnet.netmask), frontend)  # type: ignore[arg-type]
    return int(ipaddress.IPv4Address(start)), int(ipaddress.IPv4Address(end))


def next_address(session: Session, subnet: Subnet) -> str:
    """The next free private address counting down, never inside the discovery pool."""
    from provisioner.errors import Conflict

    net = network_of(subnet.subnet, subnet.netmask)
    used = {
        ip
        for ip in session.scalars(select(Interface.ip).where(Interface.subnet_id == subnet.id))
        if ip
    }
    low, high = _pool(subnet, session)
    for value in range(int(net.broadcast_address) - 1, int(net.network_address), -1):
        if low <= value <= high:
            continue
        candidate = str(ipaddress.ip_address(value))
        if candidate not in used:
            return candidate
    raise Conflict(f"network '{subnet.name}' has no free address left")


def discover(session: Session, hooks: Hooks, mac: str) -> Host | None:
    """Register an unknown MAC if discovery is on; None if it is off or the MAC is known."""
    from provisioner.services.hosts import add_host, next_rank

    if not is_mac(mac):
        raise UsageError(f"bad MAC address '{mac}'")
    mac = normalize_mac(mac)
    # Lock the discovery row first: every discovery queues here.
    current = session.scalars(
        select(Discovery)
        .where(Discovery.enabled.is_(True))
        .order_by(Discovery.id.desc())
        .with_for_update()
    ).first()
    if current is None:
        return None
    if session.scalar(select(Interface.id).where(func.lower(Interface.mac) == mac)) is not None:
        return None
    membership = session.scalars(
        select(Membership)
        .where(Membership.appliance_id == current.appliance_id)
        .order_by(Membership.id)
    ).first()
    assert membership is not None
    appliance = membership.appliance.name
    rank = max(current.rank or 0, next_rank(session, membership.id, current.rack))
    while session.scalar(select(Host.id).where(Host.name == f"{appliance}-{current.rack}-{rank}")):
        rank += 1
    subnet = session.scalar(select(Subnet).where(Subnet.name == "private"))
    if subnet is None:
        raise UsageError("there is no 'private' network to give discovered hosts an address")
    name = f"{appliance}-{current.rack}-{rank}"
    host = add_host(session, hooks, name, membership=membership.name, rack=current.rack, rank=rank)
    session.add(
        Interface(
            host_id=host.id,
            device="eth0",
            mac=mac,
            ip=next_address(session, subnet),
            subnet_id=subnet.id,
            name=name,
        )
    )
    set_state(session, host, "install")
    current.rank = rank + 1
    session.add(InstallEvent(host_id=host.id, event="discovered", detail=json.dumps({"mac": mac})))
    session.flush()
    return host


def publish(reader: Reader, conf_dir: Path, mac: str) -> None:
    """A newly discovered host's fixed address for dnsmasq, at once (it rereads the hosts
    directory): the node's next DHCP request gets the address its host now has."""
    from provisioner.dhcp.dnsmasq import write_host_files

    write_host_files(reader, conf_dir, only={mac})


class Discovered(NamedTuple):
    name: str
    mac: str | None
    ip: str | None
    when: Any  # when it was discovered
    last_event: str | None


def recent(reader: Reader, limit: int = 1000) -> list[Discovered]:
    """Hosts discovered in the current session with their latest install event."""
    rows = reader.all(
        "SELECT h.name, i.mac, i.ip, e.created, "
        "(SELECT x.event FROM install_events x WHERE x.host_id = h.id ORDER BY x.id DESC LIMIT 1) "
        "FROM install_events e JOIN hosts h ON h.id = e.host_id "
        "LEFT JOIN interfaces i ON i.host_id = h.id AND i.device = 'eth0' "
        "WHERE e.event = 'discovered' AND e.created >= "
        "(SELECT max(started) FROM discovery) ORDER BY e.id LIMIT :n",
        n=limit,
    )
    return [Discovered(*r) for r in rows]
