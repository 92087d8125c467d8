"""Attributes: resolution for a host and changes at each level.

Levels, lowest first: I (intrinsic: hostname, rack, rank, appliance, membership), G (global),
O (per OS), A (per appliance), H (per host; `os` and `arch` are the host's own columns). A
later level overrides an earlier one; `rocks list host attr` shows which level won as SOURCE.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, NamedTuple

from provisioner.db.reader import Reader
from provisioner.errors import NotFound, UsageError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from provisioner.services.hostargs import HostRow

LEVELS = "IGOAH"
HOST_COLUMNS = ("os", "arch")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,127}$")


class AttrValue(NamedTuple):
    value: str
    source: str


def check_name(attr: str) -> str:
    # Names become `&name;` references in node files, so they must be XML names.
    if not _NAME.match(attr):
        raise UsageError(
            f"bad attribute name '{attr}': use letters, digits, '_', '.', '-', "
            "starting with a letter or '_'"
        )
    return attr


def intrinsic(host: HostRow) -> dict[str, str]:
    return {
        "hostname": host.name,
        "rack": str(host.rack),
        "rank": str(host.rank),
        "appliance": host.appliance,
        "membership": host.membership,
    }


def global_attrs(reader: Reader) -> dict[str, str]:
    return reader.pairs("SELECT attr, value FROM global_attributes")


def global_value(reader: Reader, attr: str) -> str | None:
    """One global attribute's value, or None."""
    return reader.scalar("SELECT value FROM global_attributes WHERE attr = :a", a=attr)


def appliance_values(reader: Reader, attr: str) -> dict[int, str]:
    """One attribute's value for each appliance that sets it, by appliance id."""
    return reader.pairs(
        "SELECT appliance_id, value FROM appliance_attributes WHERE attr = :a", a=attr
    )


class ScopedAttr(NamedTuple):
    """An attribute of an OS or an appliance: (the OS or appliance name, attr, value)."""

    scope: str
    attr: str
    value: str


def os_attrs(reader: Reader, os: str | None = None) -> list[ScopedAttr]:
    if os is None:
        rows = reader.all("SELECT os, attr, value FROM os_attributes ORDER BY os, attr")
    else:
        rows = reader.all(
            "SELECT os, attr, value FROM os_attributes WHERE os = :os ORDER BY attr", os=os
        )
    return [ScopedAttr(*r) for r in rows]


def appliance_attrs(reader: Reader, appliance_id: int | None = None) -> list[ScopedAttr]:
    sql = (
        "SELECT a.name, x.attr, x.value FROM appliance_attributes x "
        "JOIN appliances a ON a.id = x.appliance_id"
    )
    if appliance_id is None:
        rows = reader.all(sql + " ORDER BY a.name, x.attr")
    else:
        rows = reader.all(sql + " WHERE a.id = :id ORDER BY x.attr", id=appliance_id)
    return [ScopedAttr(*r) for r in rows]


def host_only_attrs(reader: Reader, host_id: int) -> dict[str, str]:
    return reader.pairs("SELECT attr, value FROM host_attributes WHERE host_id = :id", id=host_id)


def levels(
    host: HostRow,
    g: Mapping[str, str],
    o: Mapping[str, str],
    a: Mapping[str, str],
    h: Mapping[str, str],
) -> tuple[tuple[str, Mapping[str, str]], ...]:
    """One host's attribute levels, lowest first: intrinsic < global < OS < appliance < host
    (Rocks' I<G<O<A<H; a host's os and arch are host-level, below its own attributes). The one
    place the order is written: `resolve` (which says where each value came from) and
    `flat_values` (the kickstart renderer's hot path) both follow it."""
    return (
        ("I", intrinsic(host)),
        ("G", g),
        ("O", o),
        ("A", a),
        ("H", {"os": host.os, "arch": host.arch}),
        ("H", h),
    )


def resolve(
    host: HostRow,
    g: Mapping[str, str],
    o: Mapping[str, str],
    a: Mapping[str, str],
    h: Mapping[str, str],
) -> dict[str, AttrValue]:
    """Merge the levels for one host; the fetching is the caller's (and may be cached)."""
    out: dict[str, AttrValue] = {}
    for letter, level in levels(host, g, o, a, h):
        out.update((k, AttrValue(v, letter)) for k, v in level.items())
    return out


def flat_values(
    host: HostRow,
    g: Mapping[str, str],
    o: Mapping[str, str],
    a: Mapping[str, str],
    h: Mapping[str, str],
) -> dict[str, str]:
    """`resolve` without the sources: the values alone."""
    out: dict[str, str] = {}
    for _letter, level in levels(host, g, o, a, h):
        out.update(level)
    return out


def host_attrs(reader: Reader, host: HostRow) -> dict[str, AttrValue]:
    """Every attribute of `host` with the level it came from."""
    o = {attr: value for _, attr, value in os_attrs(reader, host.os)}
    a = {attr: value for _, attr, value in appliance_attrs(reader, host.appliance_id)}
    return resolve(host, global_attrs(reader), o, a, host_only_attrs(reader, host.id))


def host_attr_values(reader: Reader, host: HostRow) -> dict[str, str]:
    return {k: v.value for k, v in host_attrs(reader, host).items()}


class LazyAttrs(Mapping[str, str]):
    """A host's attributes, fetched on first use: hooks get the mapping, and a hook that never
    looks at it (the base kickstart renderer has its own cache) costs no query."""

    def __init__(self, reader: Reader, host: HostRow) -> None:
        self._reader = reader
        self._host = host
        self._values: dict[str, str] | None = None

    def _load(self) -> dict[str, str]:
        if self._values is None:
            self._values = host_attr_values(self._reader, self._host)
        return self._values

    def __getitem__(self, key: str) -> str:
        return self._load()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())


# -- changes ------------------------------------------------------------------------------------


def set_global(session: Session, attr: str, value: str) -> None:
    from provisioner.db.models import GlobalAttribute
    from provisioner.services.dbutil import upsert

    upsert(session, GlobalAttribute, {"attr": check_name(attr)}, {"value": value})


def set_os(session: Session, os: str, attr: str, value: str) -> None:
    from provisioner.db.models import OSAttribute
    from provisioner.services.dbutil import upsert

    upsert(session, OSAttribute, {"os": os, "attr": check_name(attr)}, {"value": value})


def set_appliance(session: Session, appliance_id: int, attr: str, value: str) -> None:
    from provisioner.db.models import ApplianceAttribute
    from provisioner.services.dbutil import upsert

    upsert(
        session,
        ApplianceAttribute,
        {"appliance_id": appliance_id, "attr": check_name(attr)},
        {"value": value},
    )


def set_host(session: Session, host_id: int, attr: str, value: str) -> None:
    from provisioner.db.models import Host, HostAttribute
    from provisioner.services.dbutil import upsert

    check_name(attr)
    if attr in HOST_COLUMNS:
        # `os` and `arch` are the host's own columns (the installer reports arch), not rows.
        host = session.get(Host, host_id)
        assert host is not None
        setattr(host, attr, value)
        return
    upsert(session, HostAttribute, {"host_id": host_id, "attr": attr}, {"value": value})


def remove(session: Session, scope: str, attr: str, target: int | str | None = None) -> int:
    """Remove an attribute at one level; returns how many rows went (0 or 1)."""
    from sqlalchemy import delete

    from provisioner.db.models import (
        ApplianceAttribute,
        GlobalAttribute,
        HostAttribute,
        OSAttribute,
    )

    if scope == "host" and attr in HOST_COLUMNS:
        raise UsageError(f"'{attr}' is a property of the host: set it, it cannot be removed")
    stmt = {
        "global": delete(GlobalAttribute).where(GlobalAttribute.attr == attr),
        "os": delete(OSAttribute).where(OSAttribute.os == target, OSAttribute.attr == attr),
        "appliance": delete(ApplianceAttribute).where(
            ApplianceAttribute.appliance_id == target, ApplianceAttribute.attr == attr
        ),
        "host": delete(HostAttribute).where(
            HostAttribute.host_id == target, HostAttribute.attr == attr
        ),
    }[scope]
    return int(session.execute(stmt).rowcount or 0)


def require_removed(count: int, attr: str, where: str) -> None:
    if count == 0:
        raise NotFound(f"attribute '{attr}' is not set {where}")
