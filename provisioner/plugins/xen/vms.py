"""VMs in the database: reading them, resolving them for their container, adding them one by
one or a whole virtual cluster at a time, changing and removing them (reference §5.3-5.5).

Reads use the light `Reader` (list commands run without SQLAlchemy); writes use the ORM on the
caller's session. Adding many VMs plans every name, slice, MAC and disk in memory first and
inserts in three bulk flushes, so `rocks add cluster` with hundreds of computes stays fast.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from provisioner.db.reader import Reader
from provisioner.errors import Conflict, NotFound, UsageError
from provisioner.plugins.xen import attributes as xattrs
from provisioner.plugins.xen.driver import VmBoot, VmConfig, VmDiskSpec, VmNic
from provisioner.services.hostargs import HOST_SELECT, HostRow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from provisioner.db.models import Host
    from provisioner.plugins import Hooks

VIRT_TYPES = ("para", "hvm")
HOSTED_VM = "Hosted VM"
DISK_DEVICE = "hda"
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kmgtp]?)i?b?\s*$", re.IGNORECASE)
_ENTITY = re.compile(r"&([A-Za-z_][A-Za-z0-9_.\-]*);")
_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15}


@dataclass(frozen=True)
class VmRow:
    """A VM: its vm_nodes row, its own host and its container."""

    id: int
    host: HostRow
    container: HostRow
    mem: int
    slice: int
    virt_type: str


@dataclass(frozen=True)
class DiskRow:
    id: int
    vbd_type: str
    prefix: str
    name: str
    device: str
    mode: str
    size: int

    @property
    def path(self) -> str:
        if self.vbd_type == "phy" and not self.prefix:
            return self.name if self.name.startswith("/") else f"/dev/{self.name}"
        return f"{self.prefix.rstrip('/')}/{self.name}" if self.prefix else self.name

    @property
    def spec(self) -> str:
        """Rocks' disk spec: `file:/state/partition1/xen/disks/x.hda,hda,w`."""
        return f"{self.vbd_type}:{self.path},{self.device},{self.mode}"


@dataclass(frozen=True)
class NicRow:
    device: str
    mac: str | None
    ip: str | None
    subnet_id: int | None
    vlan: int | None
    name: str | None


@dataclass
class Container:
    """What a VM needs of its container: attributes, interfaces, where its files go."""

    host: HostRow
    attrs: dict[str, str]
    nics: list[NicRow]
    largest_partition: str | None

    @property
    def uri(self) -> str:
        value = self.attrs.get("vm_uri") or xattrs.DEFAULT_URI
        return value.replace("{host}", self.host.name)

    @property
    def driver(self) -> str:
        return self.attrs.get("vm_driver") or xattrs.DEFAULT_DRIVER

    @property
    def disk_dir(self) -> str:
        if self.attrs.get("vm_disk_dir"):
            return self.attrs["vm_disk_dir"].rstrip("/") or "/"
        if self.largest_partition:
            return f"{self.largest_partition.rstrip('/')}/xen/disks"
        return xattrs.DEFAULT_DISK_DIR

    @property
    def nic_model(self) -> str:
        return self.attrs.get("vm_nic_model") or xattrs.DEFAULT_NIC_MODEL

    @property
    def default_virt_type(self) -> str:
        # Para-virtual guests need Xen; everything else boots full virtual machines by PXE.
        scheme = self.uri.partition(":")[0].split("+", 1)[0].lower()
        return "para" if scheme == "xen" else "hvm"


# -- reading ------------------------------------------------------------------------------------

_VM_SELECT = "SELECT v.id, v.host_id, v.physnode_id, v.mem, v.slice, v.virt_type FROM vm_nodes v"


def hosts_by_id(reader: Reader, ids: Sequence[int]) -> dict[int, HostRow]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    clause, params = reader.in_clause("i", wanted)
    return {
        r[0]: HostRow(*r) for r in reader.all(f"{HOST_SELECT} WHERE h.id IN {clause}", **params)
    }


def _vm_rows(reader: Reader, where: str = "", **params: Any) -> list[VmRow]:
    rows = reader.all(_VM_SELECT + (f" WHERE {where}" if where else ""), **params)
    hosts = hosts_by_id(reader, [r[1] for r in rows] + [r[2] for r in rows])
    return [
        VmRow(vid, hosts[host_id], hosts[phys_id], mem, slice_, virt)
        for vid, host_id, phys_id, mem, slice_, virt in rows
    ]


def list_vms(reader: Reader, hosts: Sequence[HostRow] | None = None) -> list[VmRow]:
    """The VMs among `hosts` (all VMs when None), in host order."""
    if hosts is None:
        rows = _vm_rows(reader)
    else:
        if not hosts:
            return []
        clause, params = reader.in_clause("h", [h.id for h in hosts])
        rows = _vm_rows(reader, f"v.host_id IN {clause}", **params)
    return sorted(rows, key=lambda v: v.host.sort_key)


def vm_of(reader: Reader, host: HostRow) -> VmRow | None:
    rows = _vm_rows(reader, "v.host_id = :h", h=host.id)
    return rows[0] if rows else None


def require_vm(reader: Reader, host: HostRow) -> VmRow:
    vm = vm_of(reader, host)
    if vm is None:
        raise NotFound(f"host '{host.name}' is not a VM (see 'rocks list host vm')")
    return vm


def vms_on(reader: Reader, container_id: int) -> list[str]:
    return reader.column(
        "SELECT h.name FROM vm_nodes v JOIN hosts h ON h.id = v.host_id "
        "WHERE v.physnode_id = :p ORDER BY h.name",
        p=container_id,
    )


def disks_of(reader: Reader, vm_ids: Sequence[int]) -> dict[int, list[DiskRow]]:
    out: dict[int, list[DiskRow]] = {i: [] for i in vm_ids}
    if not vm_ids:
        return out
    clause, params = reader.in_clause("v", list(vm_ids))
    for vm_id, *rest in reader.all(
        "SELECT vm_node_id, id, vbd_type, prefix, name, device, mode, size FROM vm_disks "
        f"WHERE vm_node_id IN {clause} ORDER BY id",
        **params,
    ):
        out[vm_id].append(DiskRow(*rest))
    return out


def _device_key(device: str) -> tuple[str, int, str]:
    m = re.match(r"^(\D*)(\d*)(.*)$", device)
    assert m is not None
    return m.group(1), int(m.group(2) or -1), m.group(3)


def nics_of(reader: Reader, host_ids: Sequence[int]) -> dict[int, list[NicRow]]:
    out: dict[int, list[NicRow]] = {i: [] for i in host_ids}
    if not host_ids:
        return out
    clause, params = reader.in_clause("h", list(host_ids))
    for host_id, *rest in reader.all(
        "SELECT host_id, device, mac, ip, subnet_id, vlan, name FROM interfaces "
        f"WHERE host_id IN {clause}",
        **params,
    ):
        out[host_id].append(NicRow(*rest))
    for nics in out.values():
        nics.sort(key=lambda n: _device_key(n.device))
    return out


def partition_bytes(size: str) -> float:
    """Parted's sizes as the installer reports them ("72.0GB", "1024MB"); 0 when unreadable."""
    m = _SIZE.match(size or "")
    if not m:
        return 0.0
    return float(m.group(1)) * _UNITS[m.group(2).lower()]


def largest_partition(reader: Reader, host_id: int) -> str | None:
    """Rocks' getLargestPartition: the biggest reported mountpoint under /, swap excluded."""
    best: tuple[float, str] | None = None
    for mountpoint, size, fstype in reader.all(
        "SELECT mountpoint, partitionsize, fstype FROM partitions WHERE host_id = :h", h=host_id
    ):
        if not mountpoint or not mountpoint.startswith("/") or (fstype or "").lower() == "swap":
            continue
        key = (partition_bytes(size), mountpoint)
        if best is None or key[0] > best[0]:
            best = key
    return best[1] if best else None


class Containers:
    """Container facts, looked up once per container for a whole command."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self._cache: dict[int, Container] = {}
        self._private: int | None | bool = False

    def get(self, host: HostRow) -> Container:
        found = self._cache.get(host.id)
        if found is None:
            from provisioner.services.attrs import host_attr_values

            found = Container(
                host,
                host_attr_values(self.reader, host),
                nics_of(self.reader, [host.id])[host.id],
                largest_partition(self.reader, host.id),
            )
            self._cache[host.id] = found
        return found

    @property
    def private_subnet(self) -> int | None:
        if self._private is False:
            self._private = self.reader.scalar("SELECT id FROM subnets WHERE name = 'private'")
        return self._private  # type: ignore[return-value]


def bridge_for(container: Container, nic: NicRow, private_subnet: int | None) -> str:
    """The container's bridge for a VM interface (reference §5.6: xenbr.<physdev>[.<vlan>])."""
    plain = [n for n in container.nics if not n.vlan]
    subnet = nic.subnet_id
    if nic.vlan:
        tagged = next((n for n in container.nics if n.vlan == nic.vlan), None)
        if tagged is not None and tagged.subnet_id is not None:
            subnet = tagged.subnet_id
    if subnet is None:
        subnet = private_subnet
    dev = next((n.device for n in plain if subnet is not None and n.subnet_id == subnet), None)
    if dev is None:
        dev = next((n.device for n in plain if n.subnet_id == private_subnet), None)
    if dev is None:
        dev = plain[0].device if plain else "eth0"
    template = container.attrs.get("vm_bridge") or xattrs.DEFAULT_BRIDGE
    bridge = template.replace("{device}", dev).replace("{vlan}", str(nic.vlan or ""))
    if nic.vlan and "{vlan}" not in template:
        bridge += f".{nic.vlan}"
    return bridge


def substitute(text: str, attrs: Mapping[str, str], what: str) -> str:
    def one(m: re.Match[str]) -> str:
        if m.group(1) not in attrs:
            raise UsageError(f"{what}: attribute '{m.group(1)}' is not defined")
        return attrs[m.group(1)]

    return _ENTITY.sub(one, text)


def _direct_boot(reader: Reader, vm: VmRow) -> VmBoot | None:
    """A VM installing boots its install action's kernel directly when it is para-virtual
    (Rocks' rocks-pygrub did the same; otherwise it boots its disk through pygrub), or when
    the action's kernel is a file on the container (`file://`, seed 002's `install vm
    frontend i386`) whatever the VM type; other full VMs boot from the network.

    `&Attr;` in the action is the value for the VM's appliance and OS, without the VM's own
    host attributes: those describe the VM (for a lights-out frontend, its site.attrs: its
    own public name), while a boot action names this server's (where to fetch the kickstart).
    """
    if vm.host.boot_action not in ("install", None) or not vm.host.installaction:
        return None
    from provisioner.services.attrs import appliance_attrs, global_attrs, os_attrs, resolve
    from provisioner.services.boot import find_action

    action = find_action(reader, vm.host.installaction, vm.host.id)
    if action is None or not action.kernel:
        return None
    if vm.virt_type != "para" and not action.kernel.strip().startswith("file://"):
        return None
    o = {attr: value for _, attr, value in os_attrs(reader, vm.host.os)}
    a = {attr: value for _, attr, value in appliance_attrs(reader, vm.host.appliance_id)}
    attrs = {k: v.value for k, v in resolve(vm.host, global_attrs(reader), o, a, {}).items()}
    what = f"boot action '{action.action}' of {vm.host.name}"

    def path(value: str | None) -> str:
        value = substitute(value or "", attrs, what)
        return value[len("file://") :] if value.startswith("file://") else value

    return VmBoot(
        path(action.kernel), path(action.ramdisk), substitute(action.args or "", attrs, what)
    )


def vm_config(
    reader: Reader,
    vm: VmRow,
    containers: Containers,
    disks: Sequence[DiskRow] | None = None,
    nics: Sequence[NicRow] | None = None,
    container: HostRow | None = None,
    boot: bool = True,
) -> VmConfig:
    """`vm` resolved for its container (or for `container`, where a move would put it).
    `boot=False` skips the direct kernel boot (not needed to ask a VM's state)."""
    place = containers.get(container or vm.container)
    if disks is None:
        disks = disks_of(reader, [vm.id])[vm.id]
    if nics is None:
        nics = nics_of(reader, [vm.host.id])[vm.host.id]
    model = place.nic_model
    disk_specs = []
    for d in disks:
        path = d.path
        if container is not None and d.vbd_type == "file":
            path = f"{place.disk_dir}/{d.name}"
        disk_specs.append(VmDiskSpec(path, d.device, d.size, d.vbd_type, d.mode))
    return VmConfig(
        name=vm.host.name,
        container=place.host.name,
        uri=place.uri,
        mem_mb=vm.mem,
        cpus=vm.host.cpus,
        virt_type=vm.virt_type,
        nics=tuple(
            VmNic(n.mac, bridge_for(place, n, containers.private_subnet), n.device, n.vlan, model)
            for n in nics
            if n.mac
        ),
        disks=tuple(disk_specs),
        state_file=f"{place.disk_dir}/{vm.host.name}.saved",
        boot=_direct_boot(reader, vm) if boot else None,
        arch=vm.host.arch,
        driver=place.driver,
    )


# -- adding -------------------------------------------------------------------------------------


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

        from provisioner.db.models import Host, Interface, VmNode
        from provisioner.plugins.xen.macs import MacAllocator

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
        from sqlalchemy import null

        from provisioner.db.models import Host, Interface, VmDisk, VmNode
        from provisioner.services.hosts import check_host_name
        from provisioner.services.networks import get_network

        planned: list[tuple[VmRequest, Host, int, str, list[dict[str, Any]], tuple]] = []
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
            host = Host(
                name=name,
                membership_id=membership.id,
                rack=req.container.rack,
                rank=req.container.rank,
                cpus=req.cpus,
                os="linux",
                arch=req.container.arch,
                # null(): a plain None would let the columns' defaults fill them in
                installaction=self._action(install) or null(),
                runaction=self._action(run) or null(),
                boot_action="install",
            )
            planned.append((req, host, slice_, virt, ifaces, disk))

        self.session.add_all([p[1] for p in planned])
        self.session.flush()
        nodes = []
        for req, host, slice_, virt, ifaces, _ in planned:
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
        for (req, _, _, _, _, disk), node in zip(planned, nodes, strict=True):
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
        for host_id in (p[1].id for p in planned):
            self.vm_hosts.add(host_id)
        for _, host, _, _, _, _ in planned:
            self.hooks.host_added(self.session, host)
        return [AddedVm(h.name, req.container.name, s, h.id) for req, h, s, _, _, _ in planned]


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


# -- changing -----------------------------------------------------------------------------------


def get_vm_node(session: Session, host_id: int) -> Any:
    from sqlalchemy import select

    from provisioner.db.models import VmNode

    return session.scalar(select(VmNode).where(VmNode.host_id == host_id))


def set_vm(
    session: Session,
    host: HostRow,
    physnode: HostRow | None = None,
    mem: int | None = None,
    slice_: int | None = None,
    virt_type: str | None = None,
    disk: str | None = None,
    disksize: int | None = None,
) -> None:
    """`rocks set host vm`: change a VM's row; a host that is not a VM yet becomes one when
    `physnode` is given (so `rocks dump host vm` output recreates VMs)."""
    from sqlalchemy import select

    from provisioner.db.models import Host, VmDisk, VmNode
    from provisioner.services.boot import set_named_action

    node = get_vm_node(session, host.id)
    if node is None:
        if physnode is None:
            raise NotFound(f"host '{host.name}' is not a VM: give physnode= to make it one")
        node = VmNode(
            host_id=host.id,
            physnode_id=physnode.id,
            mem=1024,
            slice=0,
            virt_type=virt_type or "hvm",
        )
        session.add(node)
        session.flush()
    if physnode is not None:
        if physnode.id == host.id or get_vm_node(session, physnode.id) is not None:
            raise UsageError(f"'{physnode.name}' cannot hold VM {host.name}")
        node.physnode_id = physnode.id
    if mem is not None:
        if mem < 1:
            raise UsageError("mem must be at least 1 (MB)")
        node.mem = mem
    if slice_ is not None:
        if slice_ < 0:
            raise UsageError("slice cannot be negative")
        node.slice = slice_
    if virt_type is not None:
        if virt_type not in VIRT_TYPES:
            raise UsageError(f"bad virt-type '{virt_type}': para or hvm")
        if virt_type != node.virt_type:
            # Keep the boot actions in step when they are the old type's defaults.
            row = session.get(Host, host.id)
            assert row is not None
            old = {"para": ("install vm", None), "hvm": ("install", "os")}[node.virt_type]
            new = {"para": ("install vm", "none"), "hvm": ("install", "os")}[virt_type]
            if row.installaction == old[0]:
                set_named_action(session, row, "installaction", new[0])
            if row.runaction == old[1]:
                set_named_action(session, row, "runaction", new[1])
            node.virt_type = virt_type
    if disk is not None or disksize is not None:
        first = session.scalars(
            select(VmDisk).where(VmDisk.vm_node_id == node.id).order_by(VmDisk.id)
        ).first()
        if first is None:
            if disk is None:
                raise UsageError(f"VM {host.name} has no disk yet: give disk=")
            first = VmDisk(vm_node_id=node.id, size=36)
            session.add(first)
        if disk is not None:
            kind, prefix, name, device, mode = parse_disk_spec(disk)
            first.vbd_type, first.prefix, first.name = kind, prefix, name
            first.device, first.mode = device, mode
        if disksize is not None:
            if disksize < 1:
                raise UsageError("disksize must be at least 1 (GB)")
            first.size = disksize
    session.flush()


def move_rows(session: Session, vm: VmRow, target: HostRow, disk_dir: str) -> None:
    """The database half of a move: the VM's container and its image files' directory."""
    from sqlalchemy import select

    from provisioner.db.models import VmDisk

    node = get_vm_node(session, vm.host.id)
    node.physnode_id = target.id
    for disk in session.scalars(select(VmDisk).where(VmDisk.vm_node_id == node.id)):
        if disk.vbd_type == "file":
            disk.prefix = disk_dir
    session.flush()


def remove_vm_rows(session: Session, host_id: int) -> None:
    node = get_vm_node(session, host_id)
    if node is not None:
        session.delete(node)
        session.flush()


def dump_lines(reader: Reader, vms: Sequence[VmRow]) -> list[str]:
    """`rocks` commands that recreate the VM rows of existing hosts (restore roll)."""
    disks = disks_of(reader, [v.id for v in vms])
    out = []
    for vm in vms:
        words = [
            "set",
            "host",
            "vm",
            vm.host.name,
            f"physnode={vm.container.name}",
            f"slice={vm.slice}",
            f"mem={vm.mem}",
            f"virt-type={vm.virt_type}",
        ]
        if disks[vm.id]:
            first = disks[vm.id][0]
            words += [f"disk={first.spec}", f"disksize={first.size}"]
        out.append("rocks " + " ".join(shlex.quote(w) for w in words))
    return out


def host_model(session: Session, host_id: int) -> Host:
    from provisioner.services.hosts import get_host

    return get_host(session, host_id)
