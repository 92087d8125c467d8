"""Changing and removing VMs: `rocks set host vm` (which also turns a host into a VM, so
`rocks dump host vm` output recreates VMs), the database half of a move, and removal. Writes
use the ORM on the caller's session.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from provisioner.errors import NotFound, UsageError
from provisioner.plugins.xen.planner import VIRT_TYPES, parse_disk_spec
from provisioner.plugins.xen.queries import VmRow
from provisioner.services.hostargs import HostRow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from provisioner.db.models import Host


def get_vm_node(session: Session, host_id: int) -> Any:
    from sqlalchemy import select

    from provisioner.plugins.xen.models import VmNode

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

    from provisioner.db.models import Host
    from provisioner.plugins.xen.models import VmDisk, VmNode
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

    from provisioner.plugins.xen.models import VmDisk

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


def host_model(session: Session, host_id: int) -> Host:
    from provisioner.services.hosts import get_host

    return get_host(session, host_id)
