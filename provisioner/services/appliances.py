"""Appliances and their memberships."""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from provisioner.db.models import Appliance, Host, Membership
from provisioner.db.reader import Reader
from provisioner.errors import Conflict, NotFound, UsageError


class MembershipRow(NamedTuple):
    name: str
    appliance: str
    distribution: str | None
    public: bool


class ApplianceRow(NamedTuple):
    id: int
    name: str
    graph: str | None
    node: str | None
    roll: str | None
    membership: str | None  # its first membership, by name


def list_memberships(reader: Reader) -> list[MembershipRow]:
    rows = reader.all(
        "SELECT m.name, a.name, m.distribution, m.public FROM memberships m "
        "JOIN appliances a ON a.id = m.appliance_id ORDER BY m.id"
    )
    return [MembershipRow(*r) for r in rows]


def list_appliances(reader: Reader) -> list[ApplianceRow]:
    rows = reader.all(
        "SELECT a.id, a.name, a.graph, a.node, a.roll, "
        "(SELECT min(m.name) FROM memberships m WHERE m.appliance_id = a.id) "
        "FROM appliances a ORDER BY a.id"
    )
    return [ApplianceRow(*r) for r in rows]


def appliance_id(reader: Reader, name: str) -> int:
    found = reader.scalar("SELECT id FROM appliances WHERE lower(name) = :n", n=name.lower())
    if found is None:
        raise NotFound(f"unknown appliance '{name}'")
    return int(found)


def get_appliance(session: Session, name: str) -> Appliance:
    row = session.scalar(select(Appliance).where(func.lower(Appliance.name) == name.lower()))
    if row is None:
        raise NotFound(f"unknown appliance '{name}'")
    return row


def add_appliance(
    session: Session,
    name: str,
    membership: str | None = None,
    node: str = "",
    graph: str = "default",
    public: bool = False,
    roll: str = "base",
) -> Appliance:
    name = name.strip().lower()
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise UsageError(f"bad appliance name '{name}'")
    if session.scalar(select(Appliance.id).where(func.lower(Appliance.name) == name)):
        raise Conflict(f"appliance '{name}' already exists")
    membership = membership or name.replace("-", " ").title()
    if session.scalar(
        select(Membership.id).where(func.lower(Membership.name) == membership.lower())
    ):
        raise Conflict(f"membership '{membership}' already exists")
    app = Appliance(name=name, node=node, graph=graph, roll=roll)
    session.add(app)
    session.flush()
    session.add(Membership(name=membership, appliance_id=app.id, public=public))
    session.flush()
    return app


def remove_appliance(session: Session, name: str) -> None:
    app = get_appliance(session, name)
    used = session.scalar(
        select(func.count())
        .select_from(Host)
        .join(Membership)
        .where(Membership.appliance_id == app.id)
    )
    if used:
        raise Conflict(f"appliance '{app.name}' has {used} host(s); remove or change them first")
    for m in list(app.memberships):
        session.delete(m)
    session.delete(app)
    session.flush()
