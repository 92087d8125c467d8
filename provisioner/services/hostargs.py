"""Host arguments, as Rocks users type them: a name, an IP, a MAC, an appliance name (all its
hosts), `rackN` (the non-frontend hosts of rack N), a glob (`compute-0-*`, or Rocks' `%`), an
FQDN in a zone we serve, an interface name (or its first label) or an alias. No words means
every host. The first rule that matches wins, in that order."""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Sequence
from typing import NamedTuple

from provisioner.db.reader import Reader
from provisioner.errors import NotFound

HOST_SELECT = (
    "SELECT h.id, h.name, m.name, a.name, h.rack, h.rank, h.cpus, h.os, h.arch, "
    "h.installaction, h.runaction, h.boot_action, h.comment, a.id, m.id "
    "FROM hosts h JOIN memberships m ON m.id = h.membership_id "
    "JOIN appliances a ON a.id = m.appliance_id"
)
_RACK = re.compile(r"^rack(\d+)$", re.IGNORECASE)
_MAC = re.compile(r"^([0-9a-f]{2}[:-]){5}[0-9a-f]{2}$", re.IGNORECASE)


class HostRow(NamedTuple):
    """A host as the readers see it. A NamedTuple, not a frozen dataclass: built for every
    kickstart of a storm, and a frozen dataclass costs ten times as much to make."""

    id: int
    name: str
    membership: str
    appliance: str
    rack: int
    rank: int
    cpus: int
    os: str
    arch: str
    installaction: str | None
    runaction: str | None
    boot_action: str | None
    comment: str | None
    appliance_id: int
    membership_id: int

    @property
    def sort_key(self) -> tuple[bool, str, int, int, str]:
        # The frontend first, then hosts grouped by appliance, in rack and rank order.
        return (self.appliance != "frontend", self.appliance, self.rack, self.rank, self.name)


def _rows(reader: Reader, where: str = "", **params: object) -> list[HostRow]:
    sql = HOST_SELECT + (f" WHERE {where}" if where else "")
    return [HostRow(*r) for r in reader.all(sql, **params)]


def all_hosts(reader: Reader) -> list[HostRow]:
    return sorted(_rows(reader), key=lambda h: h.sort_key)


def normalize_mac(text: str) -> str:
    return text.strip().lower().replace("-", ":")


def is_mac(text: str) -> bool:
    return bool(_MAC.match(text.strip()))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _match_word(reader: Reader, word: str) -> list[HostRow]:
    low = word.strip().lower()
    if any(c in low for c in "*?[%"):
        pattern = low.replace("%", "*")
        names = [
            n
            for n in reader.column("SELECT name FROM hosts")
            if fnmatch.fnmatchcase(n.lower(), pattern)
        ]
        if not names:
            return []
        clause, params = reader.in_clause("n", names)
        return _rows(reader, f"h.name IN {clause}", **params)
    # Names are stored lower-case, so the unique index answers this.
    rows = _rows(reader, "h.name = :name", name=low)
    if rows:
        return rows
    rows = _rows(reader, "lower(a.name) = :name", name=low)
    if rows:
        return rows
    if reader.scalar("SELECT 1 FROM appliances WHERE lower(name) = :name", name=low):
        return []  # an appliance without hosts is a valid, empty selection
    m = _RACK.match(low)
    if m:
        return _rows(reader, "h.rack = :rack AND a.name != 'frontend'", rack=int(m.group(1)))
    if _is_ip(low):
        return _rows(reader, "h.id IN (SELECT host_id FROM interfaces WHERE ip = :ip)", ip=low)
    if is_mac(low):
        return _rows(
            reader,
            "h.id IN (SELECT host_id FROM interfaces WHERE lower(mac) = :mac)",
            mac=normalize_mac(low),
        )
    # An interface's DNS name, or its first label ("vi-1" for "vi-1.rocksclusters.org"), or
    # an alias: what `gethostbyname` would have found for Rocks.
    rows = _rows(
        reader,
        "h.id IN (SELECT host_id FROM interfaces WHERE lower(name) = :n OR lower(name) LIKE :p "
        "UNION SELECT host_id FROM aliases WHERE name = :n)",
        n=low,
        p=low + ".%",
    )
    if rows:
        return rows
    if "." in low:
        short, _, zone = low.partition(".")
        zones = {z.lower() for z in reader.column("SELECT dnszone FROM subnets") if z}
        if zone in zones:
            return _match_word(reader, short)
    return []


def resolve_hosts(reader: Reader, words: Sequence[str]) -> list[HostRow]:
    """The hosts the words name, each once, in `HostRow.sort_key` order. Unknown words are an
    error."""
    if not words:
        return all_hosts(reader)
    found: dict[int, HostRow] = {}
    for word in words:
        rows = _match_word(reader, word)
        if not rows and not _names_empty_group(reader, word):
            raise NotFound(f"unknown host '{word}'")
        for row in rows:
            found.setdefault(row.id, row)
    return sorted(found.values(), key=lambda h: h.sort_key)


def _names_empty_group(reader: Reader, word: str) -> bool:
    """Appliances and racks with no hosts yet are valid selections, not unknown hosts."""
    low = word.strip().lower()
    if _RACK.match(low):
        return True
    return bool(reader.scalar("SELECT 1 FROM appliances WHERE lower(name) = :n", n=low))


def resolve_host(reader: Reader, word: str) -> HostRow:
    """Exactly one host: for commands whose argument is a single machine."""
    rows = _match_word(reader, word)
    if not rows:
        raise NotFound(f"unknown host '{word}'")
    if len(rows) > 1:
        raise NotFound(f"'{word}' names {len(rows)} hosts; give one host")
    return rows[0]


def host_by_id(reader: Reader, host_id: int) -> HostRow:
    rows = _rows(reader, "h.id = :id", id=host_id)
    if not rows:
        raise NotFound(f"no host with id {host_id}")
    return rows[0]


def hosts_by_ids(reader: Reader, ids: Sequence[int]) -> dict[int, HostRow]:
    """The hosts with these ids, by id, in one query (an id without a host is left out)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    clause, params = reader.in_clause("i", wanted)
    return {row.id: row for row in _rows(reader, f"h.id IN {clause}", **params)}
