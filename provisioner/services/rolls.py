"""Rolls in the database, the rolls assigned to hosts, and what a lights-out frontend's
kickstart carries: its site.attrs, its rolls.xml and the URL it reaches this server by.

Reads use the light `Reader`; writes use the ORM on the caller's session. Roll files are
`provisioner.rolls`' business; the roll commands join the two.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from provisioner.db.reader import Reader
from provisioner.errors import NotFound, UsageError
from provisioner.rolls.meta import RollMeta, RollRef, check, format_rolls_xml

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from provisioner.config import Config
    from provisioner.hooks import Hooks
    from provisioner.services.hostargs import HostRow

ROLLS_PATH = "/install/rolls/"
#: The here-document delimiters of nodes/lights-out.xml; a value holding one as a whole line
#: would end the document early.
DELIMITERS = ("ROCKS_SITE_ATTRS_EOF", "ROCKS_ROLLS_XML_EOF")


@dataclass(frozen=True)
class RollRow:
    id: int
    name: str
    version: str
    arch: str
    os: str
    enabled: bool
    source: str | None

    @property
    def meta(self) -> RollMeta:
        return RollMeta(self.name, self.version, self.arch, self.os)

    @property
    def label(self) -> str:
        return f"{self.name} {self.version} {self.arch}"


_ROLL_SELECT = "SELECT id, name, version, arch, os, enabled, source FROM rolls"


def _row(r: tuple) -> RollRow:  # type: ignore[type-arg]
    return RollRow(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6])


def list_rolls(reader: Reader) -> list[RollRow]:
    return [_row(r) for r in reader.all(_ROLL_SELECT + " ORDER BY name, version, arch, id")]


def enabled_rolls(reader: Reader) -> list[RollRow]:
    return [r for r in list_rolls(reader) if r.enabled]


def find_rolls(
    reader: Reader, names: Sequence[str], version: str | None = None, arch: str | None = None
) -> list[RollRow]:
    """The rolls named (each name must match at least one), narrowed by version and arch."""
    if not names:
        raise UsageError("name at least one roll")
    rows = list_rolls(reader)
    out: list[RollRow] = []
    for name in names:
        found = [
            r
            for r in rows
            if r.name == name
            and (version is None or r.version == version)
            and (arch is None or r.arch == arch)
        ]
        if not found:
            which = " ".join(x for x in (name, version, arch) if x)
            raise NotFound(f"no roll '{which}' has been added (see 'rocks list roll')")
        out.extend(r for r in found if r not in out)
    return out


def record_roll(session: Session, meta: RollMeta, source: str, replace: bool) -> bool:
    """Add the roll's row (enabled), or update its source when replacing; True when new."""
    from sqlalchemy import select

    from provisioner.db.models import Roll
    from provisioner.errors import Conflict

    row = session.scalar(
        select(Roll).where(
            Roll.name == meta.name,
            Roll.version == meta.version,
            Roll.arch == meta.arch,
            Roll.os == meta.os,
        )
    )
    if row is not None:
        if not replace:
            raise Conflict(f"roll {meta.label} is already added (clean=yes replaces it)")
        row.source = source
        session.flush()
        return False
    session.add(
        Roll(
            name=meta.name,
            version=meta.version,
            arch=meta.arch,
            os=meta.os,
            enabled=True,
            source=source,
        )
    )
    session.flush()
    return True


def set_enabled(session: Session, rolls: Sequence[RollRow], enabled: bool) -> int:
    """Enable or disable rolls; returns how many changed."""
    from provisioner.db.models import Roll

    changed = 0
    for r in rolls:
        row = session.get(Roll, r.id)
        if row is not None and row.enabled != enabled:
            row.enabled = enabled
            changed += 1
    session.flush()
    return changed


def delete_rolls(session: Session, rolls: Sequence[RollRow]) -> None:
    from provisioner.db.models import Roll

    for r in rolls:
        row = session.get(Roll, r.id)
        if row is not None:
            session.delete(row)
    session.flush()


# -- host rolls ---------------------------------------------------------------------------------


class HostRoll(NamedTuple):
    name: str
    version: str
    arch: str
    os: str


def host_rolls(reader: Reader, host: HostRow) -> list[HostRoll]:
    """The rolls assigned to `host`, in the order assigned."""
    rows = reader.all(
        "SELECT name, version, arch, os FROM host_rolls WHERE host_id = :h ORDER BY id",
        h=host.id,
    )
    return [HostRoll(*r) for r in rows]


def set_host_roll(
    session: Session, host_id: int, name: str, version: str, arch: str, os: str = "linux"
) -> bool:
    """Assign a roll to a host; False when it already had it. The roll need not be on this
    server (a virtual frontend may be given rolls served from elsewhere)."""
    from sqlalchemy import select

    from provisioner.db.models import HostRoll

    check(RollMeta(name, version, arch, os), "host roll")
    exists = session.scalar(
        select(HostRoll.id).where(
            HostRoll.host_id == host_id,
            HostRoll.name == name,
            HostRoll.version == version,
            HostRoll.arch == arch,
            HostRoll.os == os,
        )
    )
    if exists is not None:
        return False
    session.add(HostRoll(host_id=host_id, name=name, version=version, arch=arch, os=os))
    session.flush()
    return True


def remove_host_rolls(
    session: Session,
    host_id: int,
    name: str | None = None,
    version: str | None = None,
    arch: str | None = None,
) -> int:
    from sqlalchemy import delete

    from provisioner.db.models import HostRoll

    stmt = delete(HostRoll).where(HostRoll.host_id == host_id)
    wanted = ((HostRoll.name, name), (HostRoll.version, version), (HostRoll.arch, arch))
    for column, value in wanted:
        if value is not None:
            stmt = stmt.where(column == value)
    count = session.execute(stmt).rowcount  # type: ignore[attr-defined]
    session.flush()
    return int(count or 0)


# -- lights-out ---------------------------------------------------------------------------------


def _on_private_network(reader: Reader, host_id: int) -> bool:
    # An address on the private network itself; a VLAN interface of a virtual cluster is on
    # that cluster's private network, not ours.
    return bool(
        reader.scalar(
            "SELECT 1 FROM interfaces i JOIN subnets s ON s.id = i.subnet_id "
            "WHERE i.host_id = :h AND s.name = 'private' AND i.ip IS NOT NULL "
            "AND (i.vlan IS NULL OR i.vlan = 0)",
            h=host_id,
        )
    )


def _public_name(reader: Reader, attrs: dict[str, str], hooks: Hooks | None) -> str | None:
    """This server's name on the public network, for a host that reaches it from there."""
    if attrs.get("Kickstart_PublicKickstartHost"):
        return attrs["Kickstart_PublicKickstartHost"]
    glob = dict(
        reader.all(
            "SELECT attr, value FROM global_attributes "
            "WHERE attr IN ('Kickstart_PublicHostname', 'Kickstart_PublicAddress')"
        )
    )
    if glob.get("Kickstart_PublicHostname"):
        return str(glob["Kickstart_PublicHostname"])
    # This server is the frontend that is not a VM (a roll's virtual frontend has the same
    # appliance): the rolls say which hosts they run as VMs.
    frontends = reader.all(
        "SELECT h.id, COALESCE(i.name, i.ip) FROM interfaces i "
        "JOIN subnets s ON s.id = i.subnet_id "
        "JOIN hosts h ON h.id = i.host_id JOIN memberships m ON m.id = h.membership_id "
        "JOIN appliances a ON a.id = m.appliance_id "
        "WHERE a.name = 'frontend' AND s.name = 'public' AND COALESCE(i.name, i.ip) IS NOT NULL "
        "ORDER BY h.id, i.id"
    )
    virtual = hooks.virtual_hosts(reader) if hooks is not None and frontends else set()
    name = next((n for host_id, n in frontends if host_id not in virtual), None)
    return str(name) if name else (glob.get("Kickstart_PublicAddress") or None)


def server_url(
    config: Config, reader: Reader, host: HostRow, attrs: dict[str, str], hooks: Hooks | None
) -> str:
    """`http://name[:port]`: how `host` reaches this server's HTTP service. On our private
    network that is the address boot configs use; from elsewhere (a virtual frontend on its
    own VLAN, a frontend on the public network) the host's Kickstart_PublicKickstartHost, else
    this server's public name or address."""
    from provisioner.services.urls import base_url

    if not _on_private_network(reader, host.id):
        name = _public_name(reader, attrs, hooks)
        if name:
            port = "" if config.http_port == 80 or ":" in name else f":{config.http_port}"
            return f"http://{name}{port}"
    return base_url(config, reader)


def rolls_xml(
    config: Config, reader: Reader, host: HostRow, attrs: dict[str, str], hooks: Hooks | None
) -> str:
    """`rocks report host roll`: the host's rolls with this server's rolls URL."""
    url = server_url(config, reader, host, attrs, hooks) + ROLLS_PATH
    refs = [RollRef(n, v, a, url) for n, v, a, _ in host_rolls(reader, host)]
    return format_rolls_xml(refs)


def site_attrs(attrs: dict[str, str]) -> str:
    """`rocks report host attr` of one host: Key:Value lines, sorted (the site.attrs format)."""
    return "".join(f"{k}:{attrs[k]}\n" for k in sorted(attrs))


def _networks(reader: Reader, host_id: int, attrs: dict[str, str]) -> dict[str, str]:
    """The frontend's kickstart network lines from its interfaces in the database: the
    private one by MAC when known (device names differ between installers), and the public
    one with its own address (never this server's Kickstart_PublicAddress)."""
    private = public = ""
    for device, mac, ip, subnet, netmask in reader.all(
        "SELECT i.device, i.mac, i.ip, s.name, s.netmask FROM interfaces i "
        "LEFT JOIN subnets s ON s.id = i.subnet_id WHERE i.host_id = :h ORDER BY i.id",
        h=host_id,
    ):
        if subnet == "private" and not private:
            private = mac or device
        elif subnet == "public" and ip and not public:
            opts = [f"--device={mac or device}", "--bootproto=static", f"--ip={ip}"]
            opts.append(f"--netmask={netmask}")
            if attrs.get("Kickstart_PublicGateway"):
                opts.append(f"--gateway={attrs['Kickstart_PublicGateway']}")
            if attrs.get("Kickstart_PublicDNSServers"):
                opts.append(f"--nameserver={attrs['Kickstart_PublicDNSServers']}")
            public = " ".join([*opts, "--activate"])
    return {
        "lights_out_private_device": private or attrs.get("Kickstart_PrivateInterface") or "eth0",
        "lights_out_public_network": public,
    }


def lights_out_values(
    config: Config, reader: Reader, host: HostRow, hooks: Hooks | None
) -> dict[str, str]:
    """What a frontend's kickstart gets besides its attributes (nodes/lights-out.xml,
    server.xml): `lights_out`, `site_attrs`, `rolls_xml`, `install_server` (this server as
    the host reaches it) and its network lines (`lights_out_private_device`,
    `lights_out_public_network`)."""
    from provisioner.graph.errors import GraphError
    from provisioner.services.attrs import host_attr_values

    attrs = host_attr_values(reader, host)
    out = {
        "lights_out": "yes",
        "site_attrs": site_attrs(attrs),
        "rolls_xml": rolls_xml(config, reader, host, attrs, hooks),
        "install_server": server_url(config, reader, host, attrs, hooks),
        **_networks(reader, host.id, attrs),
    }
    for delim in DELIMITERS:
        if re.search(rf"^{delim}$", out["site_attrs"], re.M):
            raise GraphError(f"an attribute of {host.name} has a line '{delim}'")
    return out
