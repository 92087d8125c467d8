"""What a VM driver gets: a VM resolved for its container (reference §5.6). The container's
facts (attributes, interfaces, where VM files go), the bridge for each VM interface, and the
direct kernel boot of a VM that is installing, into a `VmConfig`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from provisioner.db.reader import Reader
from provisioner.errors import UsageError
from provisioner.plugins.xen import attributes as xattrs
from provisioner.plugins.xen.driver import VmBoot, VmConfig, VmDiskSpec, VmNic
from provisioner.plugins.xen.queries import (
    DiskRow,
    NicRow,
    VmRow,
    disks_of,
    largest_partition,
    nics_of,
)
from provisioner.services.hostargs import HostRow
from provisioner.services.networks import subnet_id

_ENTITY = re.compile(r"&([A-Za-z_][A-Za-z0-9_.\-]*);")


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
            self._private = subnet_id(self.reader, "private")
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
