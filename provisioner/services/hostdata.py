"""What rendering a host's kickstart reads from the database (provisioner/kickstart/renderer.py
renders; this finds): the host's own facts in one query, its reported partitions, and the
cluster-wide levels (global, OS, appliance attributes; appliances; memberships; enabled rolls)
that the renderer caches per database generation.

The host's query is one statement on purpose: it runs for every kickstart of a storm."""

from __future__ import annotations

from dataclasses import dataclass, field

from provisioner.db.reader import Reader
from provisioner.services.partitions import COLUMNS as PARTITION_COLUMNS

DEFAULT_DISTRIBUTION = "rocks-dist"

_HOST_SQL = (
    "SELECT 'h', attr, value FROM host_attributes WHERE host_id = :h "
    "UNION ALL SELECT 'i', i.device, i.ip FROM interfaces i JOIN subnets s "
    "ON s.id = i.subnet_id WHERE i.host_id = :h AND s.name = 'private' "
    "AND i.ip IS NOT NULL AND i.vlan IS NULL "
    "UNION ALL SELECT CASE WHEN host_id IS NULL THEN 'd' ELSE 'b' END, '', flags "
    "FROM bootflags WHERE host_id = :h OR host_id IS NULL "
    "UNION ALL SELECT 'g', key, CAST(value AS TEXT) FROM meta WHERE key = 'generation' "
    # Whether there are partitions to read: a host's first install has none, so that query is
    # saved for every node of a storm.
    "UNION ALL SELECT 'p', '', CAST(COUNT(*) AS TEXT) FROM partitions WHERE host_id = :h"
)
_PARTITION_SQL = (
    f"SELECT {', '.join(PARTITION_COLUMNS)} FROM partitions WHERE host_id = :h ORDER BY device"
)


@dataclass
class HostFacts:
    """One host's own rows, and the database generation they were read at."""

    attrs: dict[str, str] = field(default_factory=dict)  # its host-level attributes
    private_addrs: list[tuple[str, str]] = field(default_factory=list)  # (device, ip)
    flags: str | None = None  # its own boot flags; None: the default's
    default_flags: str = ""
    generation: int = 0
    partitions: int = 0  # how many partitions it has reported


def host_facts(reader: Reader, host_id: int) -> HostFacts:
    facts = HostFacts()
    for kind, key, value in reader.all(_HOST_SQL, h=host_id):
        if kind == "h":
            facts.attrs[key] = value
        elif kind == "i":
            facts.private_addrs.append((key, value))
        elif kind == "b":
            facts.flags = value or ""
        elif kind == "d":
            facts.default_flags = value or ""
        elif kind == "p":
            facts.partitions = int(value or 0)
        else:
            facts.generation = int(value or 0)
    return facts


def partition_rows(reader: Reader, host_id: int) -> list[dict[str, str]]:
    """The partitions the host reported, by device, every column a string."""
    return [
        dict(zip(PARTITION_COLUMNS, (str(c or "") for c in r), strict=True))
        for r in reader.all(_PARTITION_SQL, h=host_id)
    ]


@dataclass(frozen=True)
class RollKey:
    name: str
    version: str
    arch: str


def enabled_roll_keys(reader: Reader) -> tuple[RollKey, ...]:
    """The enabled roll media (name, version, arch), whose nodes/ and graphs/ are searched."""
    return tuple(
        RollKey(*r)
        for r in reader.all(
            "SELECT name, version, arch FROM rolls WHERE enabled = :t ORDER BY name, version, arch",
            t=True,
        )
    )


class Levels:
    """Global, OS and appliance attributes and appliance facts at one database generation."""

    def __init__(self, generation: int, reader: Reader) -> None:
        self.generation = generation
        self.g: dict[str, str] = reader.pairs("SELECT attr, value FROM global_attributes")
        self.o: dict[str, dict[str, str]] = {}
        for os_name, attr, value in reader.all("SELECT os, attr, value FROM os_attributes"):
            self.o.setdefault(os_name, {})[attr] = value
        self.a: dict[int, dict[str, str]] = {}
        for app, attr, value in reader.all(
            "SELECT appliance_id, attr, value FROM appliance_attributes"
        ):
            self.a.setdefault(app, {})[attr] = value
        # appliance id -> (graph, root node)
        self.appliances: dict[int, tuple[str, str]] = {
            r[0]: (r[1] or "default", r[2] or "")
            for r in reader.all("SELECT id, graph, node FROM appliances")
        }
        self.distribution: dict[int, str] = {
            r[0]: r[1] or DEFAULT_DISTRIBUTION
            for r in reader.all("SELECT id, distribution FROM memberships")
        }
        self.rolls = enabled_roll_keys(reader)
