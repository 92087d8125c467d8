"""Adding, changing and removing hosts, with the plugin notifications that go with it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, null, select
from sqlalchemy.orm import Session

from provisioner.db.models import Appliance, Host, Membership
from provisioner.errors import Conflict, NotFound, UsageError

if TYPE_CHECKING:
    from provisioner.hooks import Hooks

_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_NODE_NAME = re.compile(r"^(?P<base>.+)-(?P<rack>\d+)-(?P<rank>\d+)$")
_RACK = re.compile(r"^rack\d+$")
_MAC_OR_IP = re.compile(r"^([0-9a-f]{2}[:-]){5}[0-9a-f]{2}$|^[0-9.]+$|^[0-9a-f:]*:[0-9a-f:]*$")
SETTABLE = ("rack", "rank", "cpus", "os", "arch", "comment", "installaction", "runaction")


def check_host_name(session: Session, name: str, appliance_id: int | None = None) -> str:
    low = _valid_name(name)
    same = session.scalar(select(Appliance.id).where(func.lower(Appliance.name) == low))
    _not_another_appliance(name, same, appliance_id)
    return low


def _valid_name(name: str) -> str:
    low = name.strip().lower()
    if not _NAME.match(low):
        raise UsageError(
            f"bad host name '{name}': use letters, digits and '-', at most 63, "
            "not starting or ending with '-'"
        )
    # A host named like a rack, an IP or a MAC could never be selected by name; one named like
    # another appliance would hide that appliance's hosts ("frontend" for the frontend is fine).
    if _RACK.match(low) or _MAC_OR_IP.match(low):
        raise UsageError(f"bad host name '{name}': it reads as a rack, IP or MAC address")
    return low


def _not_another_appliance(name: str, same: int | None, appliance_id: int | None) -> None:
    """`same`: the appliance named like the host, if any."""
    if same is not None and same != appliance_id:
        raise Conflict(f"bad host name '{name}': it is the name of another appliance")


def find_membership(session: Session, word: str) -> Membership:
    """A membership by its name ("Compute", any case) or by its appliance's name ("compute")."""
    low = word.strip().lower()
    m = session.scalar(select(Membership).where(func.lower(Membership.name) == low))
    if m is None:
        m = session.scalars(
            select(Membership)
            .join(Appliance)
            .where(func.lower(Appliance.name) == low)
            .order_by(Membership.id)
        ).first()
    if m is None:
        raise NotFound(f"unknown membership or appliance '{word}'")
    return m


def split_node_name(name: str) -> tuple[str, int, int] | None:
    """`compute-0-3` -> ("compute", 0, 3)."""
    m = _NODE_NAME.match(name)
    if not m:
        return None
    return m.group("base"), int(m.group("rack")), int(m.group("rank"))


def next_rank(session: Session, membership_id: int, rack: int) -> int:
    """Rocks' rule: one more than the highest rank of that membership in that rack."""
    top = session.scalar(
        select(func.max(Host.rank)).where(Host.membership_id == membership_id, Host.rack == rack)
    )
    return 0 if top is None else top + 1


@dataclass
class NewHost:
    """A host for `add_hosts`: `add_host`'s parameters. `membership` is a membership or
    appliance name as users type it, or the row itself; None takes it from the name
    (compute-0-3). An install or run action of None is stored as none (NULL)."""

    name: str
    membership: str | Membership | None = None
    rack: int | None = None
    rank: int | None = None
    cpus: int = 1
    os: str = "linux"
    arch: str = "x86_64"
    comment: str | None = None
    installaction: str | None = "install"
    runaction: str | None = "os"
    boot_action: str | None = None


def add_host(
    session: Session,
    hooks: Hooks,
    name: str,
    membership: str | None = None,
    rack: int | None = None,
    rank: int | None = None,
    cpus: int = 1,
    os: str = "linux",
    arch: str = "x86_64",
    comment: str | None = None,
) -> Host:
    new = NewHost(name, membership, rack, rank, cpus, os, arch, comment)
    return add_hosts(session, hooks, [new])[0]


def add_hosts(
    session: Session, hooks: Hooks, new: Sequence[NewHost], notify: bool = True
) -> list[Host]:
    """Hosts checked one after the other as `add_host` checks one, inserted in one flush. The
    lookups are made once for the batch, so `rocks add cluster` adds hundreds quickly.
    `notify=False` leaves `host_added` to the caller, which sends it once the rows that belong
    to the new hosts (interfaces, VM rows) are in."""
    appliances = {n.lower(): i for i, n in session.execute(select(Appliance.id, Appliance.name))}
    wanted = sorted({h.name.strip().lower() for h in new})
    taken: set[str] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        taken.update(session.scalars(select(Host.name).where(Host.name.in_(chunk))))
    memberships: dict[str, Membership] = {}
    tops: dict[tuple[int, int], int] = {}  # the highest rank given in this batch
    hosts = []
    for h in new:
        parsed = split_node_name(h.name.strip().lower())
        membership = h.membership
        if membership is None:
            if parsed is None:
                raise UsageError(f"missing parameter: membership (cannot tell it from '{h.name}')")
            membership = parsed[0]
        if isinstance(membership, Membership):
            m = membership
        else:
            key = membership.strip().lower()
            if key not in memberships:
                memberships[key] = find_membership(session, membership)
            m = memberships[key]
        name = _valid_name(h.name)
        _not_another_appliance(h.name, appliances.get(name), m.appliance_id)
        rack, rank = h.rack, h.rank
        if parsed is not None:
            rack = parsed[1] if rack is None else rack
            rank = parsed[2] if rank is None else rank
        rack = 0 if rack is None else rack
        if rank is None:
            rank = next_rank(session, m.id, rack)
            if (m.id, rack) in tops:
                rank = max(rank, tops[m.id, rack] + 1)
        tops[m.id, rack] = max(rank, tops.get((m.id, rack), rank))
        if h.cpus < 1:
            raise UsageError("cpus must be at least 1")
        if name in taken:
            raise Conflict(f"host '{name}' already exists")
        taken.add(name)
        hosts.append(
            Host(
                name=name,
                membership_id=m.id,
                rack=rack,
                rank=rank,
                cpus=h.cpus,
                os=h.os,
                arch=h.arch,
                comment=h.comment,
                # null(): a plain None would let the columns' defaults fill them in
                installaction=null() if h.installaction is None else h.installaction,
                runaction=null() if h.runaction is None else h.runaction,
                boot_action=h.boot_action,
            )
        )
    session.add_all(hosts)
    session.flush()
    if notify:
        for host in hosts:
            hooks.host_added(session, host)
    return hosts


def get_host(session: Session, host_id: int) -> Host:
    host = session.get(Host, host_id)
    if host is None:
        raise NotFound(f"no host with id {host_id}")
    return host


def remove_host(session: Session, hooks: Hooks, host_id: int) -> str:
    host = get_host(session, host_id)
    hooks.host_removing(session, host)
    name = host.name
    session.delete(host)
    session.flush()
    return name


def set_host(session: Session, hooks: Hooks, host_id: int, **changes: Any) -> Host:
    """Change columns of a host (see SETTABLE, plus membership and name)."""
    host = get_host(session, host_id)
    done: dict[str, object] = {}
    for key, value in changes.items():
        if key == "membership":
            m = find_membership(session, str(value))
            if host.membership_id != m.id:
                host.membership_id = m.id
                done[key] = m.name
        elif key == "name":
            new = check_host_name(session, str(value), host.membership.appliance_id)
            if new != host.name:
                if session.scalar(select(Host.id).where(Host.name == new)) is not None:
                    raise Conflict(f"host '{new}' already exists")
                host.name = new
                done[key] = new
        elif key in SETTABLE:
            if key == "comment" and not value:
                value = None
            if key in ("rack", "rank", "cpus"):
                value = int(value)
                if value < (1 if key == "cpus" else 0):
                    raise UsageError(f"{key} must be at least {1 if key == 'cpus' else 0}")
            if getattr(host, key) != value:
                setattr(host, key, value)
                done[key] = value
        else:
            raise UsageError(f"'{key}' is not a property of a host")
    if done:
        session.flush()
        hooks.host_changed(session, host, done)
    return host
