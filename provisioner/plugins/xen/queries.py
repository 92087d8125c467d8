"""VMs as the database holds them, read with the light `Reader` (list commands run without
SQLAlchemy): the VM rows with their hosts and containers, their disks and interfaces, a
container's largest partition, and the `rocks set host vm` lines that recreate them.

Resolving a VM for its container is vmconfig.py; adding VMs is planner.py; changing and
removing them is mutations.py.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from provisioner.db.reader import Reader
from provisioner.errors import NotFound
from provisioner.services.hostargs import HostRow, hosts_by_ids

_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kmgtp]?)i?b?\s*$", re.IGNORECASE)
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


_VM_SELECT = "SELECT v.id, v.host_id, v.physnode_id, v.mem, v.slice, v.virt_type FROM vm_nodes v"


def _vm_rows(reader: Reader, where: str = "", **params: Any) -> list[VmRow]:
    rows = reader.all(_VM_SELECT + (f" WHERE {where}" if where else ""), **params)
    hosts = hosts_by_ids(reader, [r[1] for r in rows] + [r[2] for r in rows])
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


def is_vm(reader: Reader, host_id: int) -> bool:
    return bool(reader.scalar("SELECT 1 FROM vm_nodes WHERE host_id = :h", h=host_id))


def vm_host_ids(reader: Reader) -> list[int]:
    """The hosts that are VMs (the `virtual_hosts` hook)."""
    return [int(r[0]) for r in reader.all("SELECT host_id FROM vm_nodes ORDER BY host_id")]


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
