"""The cluster at a glance, as the web dashboard shows it: every host, what it boots next and
its last install event."""

from __future__ import annotations

from typing import NamedTuple

from provisioner.db.reader import Reader


class HostOverview(NamedTuple):
    name: str
    appliance: str
    ip: str | None  # its first private address
    mac: str | None
    boot: str | None  # the boot state: install, os or run
    installaction: str | None
    runaction: str | None
    event: str | None  # its last install event, and when
    when: object


def cluster_name(reader: Reader) -> str | None:
    return reader.scalar("SELECT value FROM global_attributes WHERE attr = 'Info_ClusterName'")


def hosts(reader: Reader) -> list[HostOverview]:
    """Frontends first, then by appliance, rack, rank and name."""
    rows = reader.all(
        "SELECT h.name, a.name, i.ip, i.mac, h.boot_action, h.installaction, h.runaction, "
        "e.event, e.created "
        "FROM hosts h JOIN memberships m ON m.id = h.membership_id "
        "JOIN appliances a ON a.id = m.appliance_id "
        "LEFT JOIN interfaces i ON i.id = (SELECT min(x.id) FROM interfaces x "
        "  JOIN subnets s ON s.id = x.subnet_id WHERE x.host_id = h.id AND s.name = 'private') "
        "LEFT JOIN install_events e ON e.id = (SELECT max(y.id) FROM install_events y "
        "  WHERE y.host_id = h.id) "
        "ORDER BY a.name != 'frontend', a.name, h.rack, h.rank, h.name"
    )
    return [HostOverview(*r) for r in rows]
