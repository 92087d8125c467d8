"""`rocks init frontend`: the defaults a new cluster database starts with.

Everything is insert-if-missing, so running it again never loses data; only attributes given
explicitly (on the command line or in a site.attrs file) overwrite what is stored.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from provisioner import __version__
from provisioner.db.models import (
    Appliance,
    ApplianceAttribute,
    BootAction,
    GlobalAttribute,
    Host,
    Interface,
    Membership,
    Subnet,
)
from provisioner.errors import UsageError
from provisioner.services import attrs as attr_service
from provisioner.services.networks import network_of

if TYPE_CHECKING:
    from provisioner.hooks import Hooks

# Rocks' database-data.xml never stores these from site.attrs: they describe one host. A
# site.attrs made by `rocks report host attr` also carries appliance-level values and this
# cluster's VM settings; stored globally on a new frontend, its VMs would reuse our MACs.
NOT_GLOBAL = frozenset(
    {"hostname", "rack", "rank", "os", "arch", "appliance", "membership"}
    | {"kickstartable", "managed", "exec_host", "dhcp_filename", "dhcp_nextserver", "xen"}
    | {"vm_mac_base_addr", "vm_mac_base_addr_mask", "vm_uri", "vm_driver", "vm_bridge"}
    | {"vm_disk_dir", "vm_nic_model"}
)


@dataclass
class InitReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)


def read_site_attrs(path: Path) -> dict[str, str]:
    """`Key:Value` lines, split on the first colon (the site.attrs format)."""
    out: dict[str, str] = {}
    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, colon, value = line.partition(":")
        if not colon or not key.strip():
            raise UsageError(f"{path}:{n}: not a 'Key:Value' line")
        out[key.strip()] = value.rstrip("\n")
    return out


def detect_public() -> dict[str, str]:
    """The address, netmask and gateway of the interface holding the default route, from the
    kernel's tables (no packet is sent). Empty when there is no default route."""
    try:
        lines = Path("/proc/net/route").read_text().splitlines()[1:]
    except OSError:
        return {}
    for line in lines:
        fields = line.split()
        if len(fields) > 2 and fields[1] == "00000000":
            iface, gateway = fields[0], socket.inet_ntoa(struct.pack("<L", int(fields[2], 16)))
            break
    else:
        return {}
    try:
        import fcntl

        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            packed = struct.pack("256s", iface.encode()[:15])
            addr = socket.inet_ntoa(fcntl.ioctl(s.fileno(), 0x8915, packed)[20:24])
            mask = socket.inet_ntoa(fcntl.ioctl(s.fileno(), 0x891B, packed)[20:24])
        finally:
            s.close()
    except OSError:
        return {}
    return {"address": addr, "netmask": mask, "gateway": gateway, "interface": iface}


def _defaults_from_networks(given: Mapping[str, str]) -> dict[str, str]:
    """Derived Kickstart_* values (network, broadcast, CIDR, DNS...) from what was given."""
    out: dict[str, str] = {}
    priv_addr = given.get("Kickstart_PrivateAddress", "10.1.1.1")
    priv = network_of(
        given.get("Kickstart_PrivateNetwork", priv_addr),
        given.get("Kickstart_PrivateNetmask", "255.255.0.0"),
    )
    out.update(
        Kickstart_PrivateAddress=priv_addr,
        Kickstart_PrivateNetwork=str(priv.network_address),
        Kickstart_PrivateNetmask=str(priv.netmask),
        Kickstart_PrivateNetmaskCIDR=str(priv.prefixlen),
        Kickstart_PrivateBroadcast=str(priv.broadcast_address),
        Kickstart_PrivateGateway=priv_addr,
        Kickstart_PrivateDNSServers=priv_addr,
        Kickstart_PrivateKickstartHost=priv_addr,
        Kickstart_PrivateNTPHost=priv_addr,
        Kickstart_PrivateSyslogHost=priv_addr,
        Kickstart_PrivateHostname=socket.gethostname().split(".")[0].lower() or "frontend",
    )
    pub_addr = given.get("Kickstart_PublicAddress")
    pub_mask = given.get("Kickstart_PublicNetmask")
    if not pub_addr:
        found = detect_public()
        pub_addr = found.get("address")
        pub_mask = pub_mask or found.get("netmask")
        if found.get("gateway"):
            out["Kickstart_PublicGateway"] = found["gateway"]
    if pub_addr:
        pub = network_of(
            given.get("Kickstart_PublicNetwork", pub_addr), pub_mask or "255.255.255.0"
        )
        out.update(
            Kickstart_PublicAddress=pub_addr,
            Kickstart_PublicNetwork=str(pub.network_address),
            Kickstart_PublicNetmask=str(pub.netmask),
            Kickstart_PublicNetmaskCIDR=str(pub.prefixlen),
            Kickstart_PublicBroadcast=str(pub.broadcast_address),
        )
    return out


def init_frontend(session: Session, hooks: Hooks, given: Mapping[str, str]) -> InitReport:
    report = InitReport()
    for key in given:
        attr_service.check_name(key)
    _appliances(session, hooks, report)
    _bootactions(session, hooks, report)

    stored = dict(session.execute(select(GlobalAttribute.attr, GlobalAttribute.value)).all())
    derived = _defaults_from_networks({**stored, **given})
    defaults = {s.name: s.default for s in hooks.register_attributes() if s.default is not None}
    defaults.update(derived)
    defaults["rocks_version"] = __version__
    for key, value in defaults.items():
        if key not in stored and key not in given:
            attr_service.set_global(session, key, value)
            report.created.append(f"attribute {key}")
    for key, value in given.items():
        if key in NOT_GLOBAL:
            continue
        if stored.get(key) != value:
            attr_service.set_global(session, key, value)
            report.updated.append(f"attribute {key}")
    session.flush()
    values = dict(session.execute(select(GlobalAttribute.attr, GlobalAttribute.value)).all())
    _networks(session, values, report)
    _frontend_host(session, hooks, values, given, report)
    return report


def _appliances(session: Session, hooks: Hooks, report: InitReport) -> None:
    for spec in hooks.register_appliances():
        app = session.scalar(select(Appliance).where(Appliance.name == spec.name))
        if app is None:
            app = Appliance(name=spec.name, node=spec.node, graph=spec.graph)
            session.add(app)
            session.flush()
            report.created.append(f"appliance {spec.name}")
        if session.scalar(select(Membership.id).where(Membership.name == spec.membership)) is None:
            session.add(Membership(name=spec.membership, appliance_id=app.id, public=spec.public))
            report.created.append(f"membership {spec.membership}")
        have = set(
            session.scalars(
                select(ApplianceAttribute.attr).where(ApplianceAttribute.appliance_id == app.id)
            )
        )
        for key, value in spec.attrs.items():
            if key not in have:
                session.add(ApplianceAttribute(appliance_id=app.id, attr=key, value=value))
    session.flush()


def _bootactions(session: Session, hooks: Hooks, report: InitReport) -> None:
    have = set(session.scalars(select(BootAction.action).where(BootAction.host_id.is_(None))))
    for spec in hooks.register_bootactions():
        if spec.action not in have:
            session.add(
                BootAction(
                    action=spec.action,
                    kernel=spec.kernel or None,
                    ramdisk=spec.ramdisk or None,
                    args=spec.args or None,
                )
            )
            have.add(spec.action)
            report.created.append(f"bootaction {spec.action}")
    session.flush()


def _networks(session: Session, values: Mapping[str, str], report: InitReport) -> None:
    wanted = [
        (
            "private",
            "Kickstart_PrivateNetwork",
            "Kickstart_PrivateNetmask",
            "Kickstart_PrivateDNSDomain",
            True,
        ),
        (
            "public",
            "Kickstart_PublicNetwork",
            "Kickstart_PublicNetmask",
            "Kickstart_PublicDNSDomain",
            False,
        ),
    ]
    for name, net_key, mask_key, zone_key, serve in wanted:
        if session.scalar(select(Subnet.id).where(Subnet.name == name)) is not None:
            continue
        subnet, netmask = values.get(net_key), values.get(mask_key)
        if not subnet or not netmask:
            # No public address known: keep a placeholder from the documentation range.
            subnet, netmask = "192.0.2.0", "255.255.255.0"
        net = network_of(subnet, netmask)
        session.add(
            Subnet(
                name=name,
                subnet=str(net.network_address),
                netmask=str(net.netmask),
                mtu=1500,
                dnszone=values.get(zone_key) or ("local" if serve else ""),
                servedns=serve,
            )
        )
        report.created.append(f"network {name}")
    session.flush()


def _frontend_host(
    session: Session,
    hooks: Hooks,
    values: Mapping[str, str],
    given: Mapping[str, str],
    report: InitReport,
) -> None:
    from provisioner.services.hosts import add_host

    exists = session.scalar(
        select(Host.id).join(Membership).join(Appliance).where(Appliance.name == "frontend")
    )
    if exists is not None:
        return
    name = (values.get("Kickstart_PrivateHostname") or "frontend").split(".")[0].lower()
    host = add_host(
        session, hooks, name, membership="frontend", rack=0, rank=0, os=given.get("os", "linux")
    )
    host.installaction = None
    host.runaction = None
    private = session.scalar(select(Subnet).where(Subnet.name == "private"))
    public = session.scalar(select(Subnet).where(Subnet.name == "public"))
    assert private is not None and public is not None
    session.add(
        Interface(
            host_id=host.id,
            device=values.get("Kickstart_PrivateInterface", "eth0"),
            ip=values.get("Kickstart_PrivateAddress"),
            subnet_id=private.id,
            name=name,
        )
    )
    pub_ip = values.get("Kickstart_PublicAddress")
    if pub_ip and ipaddress.ip_address(pub_ip) in network_of(public.subnet, public.netmask):
        session.add(
            Interface(
                host_id=host.id,
                device=values.get("Kickstart_PublicInterface", "eth1"),
                ip=pub_ip,
                subnet_id=public.id,
                # Rocks lists a frontend by the name of its public interface, the public FQDN.
                name=values.get("Kickstart_PublicHostname") or None,
            )
        )
    session.flush()
    report.created.append(f"host {name}")


def frontend_name(session: Session) -> str | None:
    return session.scalar(
        select(Host.name)
        .join(Membership)
        .join(Appliance)
        .where(func.lower(Appliance.name) == "frontend")
    )
