"""Adding VMs (reference §5.3-5.5): `rocks add host vm` one by one, or a whole virtual cluster
at a time. Disk and VLAN specs are parsed here; the VM MAC range is kept here.

Adding many VMs plans every name, slice, MAC and address in memory first and inserts in three
bulk flushes, so `rocks add cluster` with hundreds of computes stays fast. Reads use the light
`Reader`; writes use the ORM on the caller's session.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from provisioner.db.reader import Reader
from provisioner.errors import Conflict, NotFound, UsageError
from provisioner.plugins.xen.vmconfig import Containers
from provisioner.services.hostargs import HostRow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from provisioner.hooks import Hooks

VIRT_TYPES = ("para", "hvm")
HOSTED_VM = "Hosted VM"
DISK_DEVICE = "hda"


def parse_disk_spec(spec: str) -> tuple[str, str, str, str, str]:
    """`file:/dir/name.hda,hda,w` or `phy:/dev/vg/lv,hda,w` -> (type, prefix, name, dev, mode)."""
    kind, colon, rest = spec.partition(":")
    if not colon or kind not in ("file", "phy"):
        raise UsageError(f"bad disk '{spec}': use file:<path>,<device>,<mode> or phy:<device>,...")
    parts = [p.strip() for p in rest.split(",")]
    path = parts[0]
    device = parts[1] if len(parts) > 1 and parts[1] else DISK_DEVICE
    mode = parts[2] if len(parts) > 2 and parts[2] else "w"
    if not path or mode not in ("w", "r"):
        raise UsageError(f"bad disk '{spec}': use file:<path>,<device>,<w|r>")
    if kind == "file":
        if not path.startswith("/"):
            raise UsageError(f"bad disk '{spec}': the image path must be absolute")
        prefix, _, name = path.rpartition("/")
        return kind, prefix or "/", name, device, mode
    return kind, "", path, device, mode


def parse_vlans(text: str | None, count: int) -> list[int | None]:
    """`vlan=5,none` -> [5, None]; missing entries are None (Rocks' 0 and none: no VLAN)."""
    words = [w.strip() for w in (text or "").split(",")] if text else []
    out: list[int | None] = []
    for i in range(count):
        word = words[i] if i < len(words) else ""
        if word.lower() in ("", "none", "0"):
            out.append(None)
            continue
        try:
            vlan = int(word)
        except ValueError:
            raise UsageError(f"bad vlan '{word}': a number from 1 to 4094, or none") from None
        if not 1 <= vlan <= 4094:
            raise UsageError(f"bad vlan {vlan}: 1 to 4094")
        out.append(vlan)
    if len(words) > count:
        raise UsageError(f"vlan= lists {len(words)} VLANs for {count} interface(s)")
    return out


@dataclass
class VmRequest:
    """One VM to add: where, what kind and how big."""

    container: HostRow
    membership: str
    mem: int = 1024
    cpus: int = 1
    disksize: int = 36
    num_macs: int = 1
    vlans: list[int | None] = field(default_factory=list)
    virt_type: str | None = None
    subnet: str = "private"
    disk: str | None = None
    # eth<n> -> (subnet, ip, name) set after planning: add cluster puts eth1 on public
    extra_ifaces: dict[str, tuple[str, str | None, str | None]] = field(default_factory=dict)
    installaction: str | None = None
    runaction: str | None = None


@dataclass
class AddedVm:
    name: str
    container: str
    slice: int
    host_id: int


def mac_range(session: Session) -> tuple[str, str]:
    """The VM MAC base and mask: stored ones, else derived and stored (Rocks set them once,
    when the VM server installed, so a later public address change keeps the range)."""
    from sqlalchemy import select

    from provisioner.db.models import GlobalAttribute
    from provisioner.plugins.xen.macs import base_and_mask
    from provisioner.services.attrs import set_global

    values = dict(
        session.execute(
            select(GlobalAttribute.attr, GlobalAttribute.value).where(
                GlobalAttribute.attr.in_(
                    ["vm_mac_base_addr", "vm_mac_base_addr_mask", "Kickstart_PublicAddress"]
                )
            )
        ).all()
    )
    base, mask = values.get("vm_mac_base_addr"), values.get("vm_mac_base_addr_mask")
    if not base:
        base, derived_mask = base_and_mask(values.get("Kickstart_PublicAddress"))
        mask = mask or derived_mask
        set_global(session, "vm_mac_base_addr", base)
        set_global(session, "vm_mac_base_addr_mask", mask)
    elif not mask:
        mask = base_and_mask(values.get("Kickstart_PublicAddress"))[1]
    return base, mask


class VmPlanner:
    """Adds VMs in bulk: every name, slice, MAC and address planned in memory, then inserted in
    three flushes, then `host_added` for each new host."""

    def __init__(self, session: Session, hooks: Hooks) -> None:
        from sqlalchemy import select

        from provisioner.db.models import Host, Interface
        from provisioner.plugins.xen.macs import MacAllocator
        from provisioner.plugins.xen.models import VmNode

        self.session, self.hooks = session, hooks
        self.reader = Reader.for_session(session)
        self.containers = Containers(self.reader)
        base, mask = mac_range(session)
        self.macs = MacAllocator(
            base, mask, session.scalars(select(Interface.mac).where(Interface.mac.is_not(None)))
        )
        self.names = set(session.scalars(select(Host.name)))
        self.slices: dict[int, set[int]] = {}
        for phys, slice_ in session.execute(select(VmNode.physnode_id, VmNode.slice)):
            self.slices.setdefault(phys, set()).add(slice_)
        self.vm_hosts = set(session.scalars(select(VmNode.host_id)))
        self.used_ips: set[str] = set()
        self._memberships: dict[str, Any] = {}
        self._actions: dict[str, bool] = {}

    def _membership(self, word: str) -> Any:
        from provisioner.services.hosts import find_membership

        key = word.strip().lower()
        if key not in self._memberships:
            m = find_membership(self.session, word)
            self._memberships[key] = (m, m.appliance.name, m.appliance_id)
        return self._memberships[key]

    def _action(self, name: str | None, host_id: int | None = None) -> str | None:
        if name is None or name.lower() == "none":
            return None
        if name not in self._actions:
            self._actions[name] = (
                self.reader.scalar(
                    "SELECT 1 FROM bootactions WHERE action = :a AND host_id IS NULL", a=name
                )
                is not None
            )
        if not self._actions[name]:
            raise NotFound(f"no boot action '{name}' (see 'rocks list bootaction')")
        return name

    def _next_ip(self, subnet: Any) -> str:
        from provisioner.services.networks import next_free_ip

        ip = next_free_ip(self.session, subnet, skip=self.used_ips)
        self.used_ips.add(ip)
        return ip

    def add(self, requests: Sequence[VmRequest]) -> list[AddedVm]:
        from provisioner.db.models import Interface
        from provisioner.plugins.xen.models import VmDisk, VmNode
        from provisioner.services.hosts import NewHost, add_hosts, check_host_name
        from provisioner.services.networks import get_network

        planned: list[tuple[VmRequest, int, str, list[dict[str, Any]], tuple]] = []
        new_hosts: list[NewHost] = []
        subnets: dict[str, Any] = {}
        checked: set[int] = set()

        def subnet_of(name: str) -> Any:
            if name not in subnets:
                subnets[name] = get_network(self.session, name)
            return subnets[name]

        for req in requests:
            if req.container.id in self.vm_hosts:
                raise UsageError(f"'{req.container.name}' is a VM: a VM cannot hold VMs")
            membership, appliance, appliance_id = self._membership(req.membership)
            if appliance_id not in checked:
                check_host_name(self.session, f"{appliance}-0-0-0", appliance_id)
                checked.add(appliance_id)
            if req.mem < 1 or req.cpus < 1 or req.disksize < 1 or req.num_macs < 1:
                raise UsageError("mem, cpus, disksize and num-macs must be at least 1")
            place = self.containers.get(req.container)
            virt = req.virt_type or place.default_virt_type
            if virt not in VIRT_TYPES:
                raise UsageError(f"bad virt-type '{virt}': para or hvm")
            used = self.slices.setdefault(req.container.id, set())
            slice_ = max(used) + 1 if used else 0
            while True:
                name = f"{appliance}-{req.container.rack}-{req.container.rank}-{slice_}"
                if name not in self.names:
                    break
                slice_ += 1
            used.add(slice_)
            self.names.add(name)
            hosted = membership.name == HOSTED_VM
            vlans = req.vlans or [None] * req.num_macs
            ifaces = []
            for i in range(req.num_macs):
                device = f"eth{i}"
                iface: dict[str, Any] = {
                    "device": device,
                    "mac": self.macs.next(),
                    "vlan": vlans[i] if i < len(vlans) else None,
                    "module": None if hosted else "xennet" if virt == "para" else "e1000",
                }
                if i == 0 and not hosted:
                    net = subnet_of(req.subnet)
                    iface.update(subnet_id=net.id, ip=self._next_ip(net))
                    if req.subnet == "private":
                        iface["name"] = name
                if device in req.extra_ifaces:
                    net_name, ip, iname = req.extra_ifaces[device]
                    net = subnet_of(net_name)
                    if ip:
                        ip = str(ipaddress.ip_address(ip))
                        from provisioner.services.networks import network_of

                        if ipaddress.ip_address(ip) not in network_of(net.subnet, net.netmask):
                            raise UsageError(f"IP {ip} is not in network '{net.name}'")
                        if (
                            self.reader.scalar(
                                "SELECT 1 FROM interfaces WHERE ip = :ip AND subnet_id = :s",
                                ip=ip,
                                s=net.id,
                            )
                            or ip in self.used_ips
                        ):
                            raise Conflict(f"IP {ip} is already used by another interface")
                        self.used_ips.add(ip)
                    iface.update(subnet_id=net.id, ip=ip, name=iname)
                ifaces.append(iface)
            if req.disk:
                disk = parse_disk_spec(req.disk)
            else:
                disk = ("file", place.disk_dir, f"{name}.{DISK_DEVICE}", DISK_DEVICE, "w")
            install, run = req.installaction, req.runaction
            if install is None:
                install = "install vm" if virt == "para" else "install"
            if run is None:
                run = "none" if virt == "para" else "os"
            new_hosts.append(
                NewHost(
                    name,
                    membership,
                    rack=req.container.rack,
                    rank=req.container.rank,
                    cpus=req.cpus,
                    arch=req.container.arch,
                    installaction=self._action(install),
                    runaction=self._action(run),
                    boot_action="install",
                )
            )
            planned.append((req, slice_, virt, ifaces, disk))

        # host_added goes out below, once each host's interfaces and VM rows are in.
        hosts = add_hosts(self.session, self.hooks, new_hosts, notify=False)
        nodes = []
        for (req, slice_, virt, ifaces, _), host in zip(planned, hosts, strict=True):
            self.session.add_all(Interface(host_id=host.id, **i) for i in ifaces)
            node = VmNode(
                host_id=host.id,
                physnode_id=req.container.id,
                mem=req.mem,
                slice=slice_,
                virt_type=virt,
            )
            nodes.append(node)
        self.session.add_all(nodes)
        self.session.flush()
        disks = []
        for (req, _, _, _, disk), node in zip(planned, nodes, strict=True):
            kind, prefix, dname, device, mode = disk
            disks.append(
                VmDisk(
                    vm_node_id=node.id,
                    vbd_type=kind,
                    prefix=prefix,
                    name=dname,
                    device=device,
                    mode=mode,
                    size=req.disksize,
                )
            )
        self.session.add_all(disks)
        self.session.flush()
        self.vm_hosts.update(h.id for h in hosts)
        for host in hosts:
            self.hooks.host_added(self.session, host)
        return [
            AddedVm(h.name, req.container.name, s, h.id)
            for (req, s, _, _, _), h in zip(planned, hosts, strict=True)
        ]


def next_free_vlan(reader: Reader) -> int:
    used = set(reader.column("SELECT DISTINCT vlan FROM interfaces WHERE vlan IS NOT NULL"))
    for vlan in range(2, 4095):
        if vlan not in used:
            return vlan
    raise Conflict("no free VLAN id left (2-4094)")


def ensure_vlan_interface(session: Session, reader: Reader, host: HostRow, vlan: int) -> bool:
    """Give a container an interface on VLAN `vlan` of the private network (Rocks' vlan<N>)."""
    from provisioner.db.models import Interface

    if reader.scalar(
        "SELECT 1 FROM interfaces WHERE host_id = :h AND vlan = :v", h=host.id, v=vlan
    ):
        return False
    private = reader.scalar("SELECT id FROM subnets WHERE name = 'private'")
    device = f"vlan{vlan}"
    if reader.scalar(
        "SELECT 1 FROM interfaces WHERE host_id = :h AND device = :d", h=host.id, d=device
    ):
        raise Conflict(f"{host.name} has an interface {device} that is not on VLAN {vlan}")
    session.add(Interface(host_id=host.id, device=device, subnet_id=private, vlan=vlan))
    return True


@dataclass
class ClusterResult:
    frontend: str
    computes: list[str]
    vlan: int
    fe_container: str


def add_cluster(
    session: Session,
    hooks: Hooks,
    fqdn: str,
    ip: str,
    computes: int,
    fe_container: HostRow,
    containers: Sequence[HostRow],
    vlan: int | None = None,
    cpus: int = 1,
    mem: int = 1024,
    disk_compute: int = 36,
    disk_frontend: int = 36,
    virt_type: str | None = None,
) -> ClusterResult:
    """A virtual cluster (reference §5.3): a frontend VM with a public interface, `computes`
    Hosted VMs round-robin over `containers`, all on one VLAN."""
    if computes < 0:
        raise UsageError("the number of computes cannot be negative")
    fqdn = fqdn.strip().lower().rstrip(".")
    if not re.match(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$", fqdn):
        raise UsageError(f"bad frontend name '{fqdn}'")
    reader = Reader.for_session(session)
    if reader.scalar("SELECT 1 FROM interfaces WHERE lower(name) = :n", n=fqdn) or reader.scalar(
        "SELECT 1 FROM hosts WHERE name = :n", n=fqdn
    ):
        raise Conflict(f"'{fqdn}' is already the name of a host or interface")
    if vlan is None:
        vlan = next_free_vlan(reader)
    elif not 2 <= vlan <= 4094:
        raise UsageError(f"bad vlan {vlan}: 2 to 4094")
    if not containers:
        containers = [fe_container]
    for host in dict.fromkeys([fe_container, *containers]):
        ensure_vlan_interface(session, reader, host, vlan)
    session.flush()
    planner = VmPlanner(session, hooks)
    fe_virt = virt_type or planner.containers.get(fe_container).default_virt_type
    requests = [
        VmRequest(
            fe_container,
            "Frontend",
            mem=mem,
            cpus=1,
            disksize=disk_frontend,
            num_macs=2,
            vlans=[vlan, None],
            virt_type=fe_virt,
            extra_ifaces={"eth1": ("public", ip, fqdn)},
            installaction="install vm frontend" if fe_virt == "para" else "install",
            runaction="none" if fe_virt == "para" else "os",
        )
    ]
    for i in range(computes):
        requests.append(
            VmRequest(
                containers[i % len(containers)],
                HOSTED_VM,
                mem=mem,
                cpus=cpus,
                disksize=disk_compute,
                num_macs=1,
                vlans=[vlan],
                virt_type=virt_type,
            )
        )
    added = planner.add(requests)
    return ClusterResult(added[0].name, [a.name for a in added[1:]], vlan, fe_container.name)
