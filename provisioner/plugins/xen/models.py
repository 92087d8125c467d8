"""The Xen roll's tables (reference §5.1): which container holds each VM, its memory, slice and
virtualisation type, and its disks. They share the core's `Base` (and its metadata, so the
foreign keys to `hosts` resolve); the roll's own Alembic branch (migrations/) creates them.

Rocks' columns map as: `vm_nodes.Node` -> `host_id` (the VM's own host row), `PhysNode` ->
`physnode_id` (the VM container), `vm_disks.Vm_Node` -> `vm_node_id`. Removing a VM's host
removes its rows (cascade); a container that still holds VMs cannot be removed (restrict).
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from provisioner.db.models.base import Base


class VmNode(Base):
    __tablename__ = "vm_nodes"

    id: Mapped[int] = mapped_column(primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"), unique=True)
    physnode_id: Mapped[int] = mapped_column(
        ForeignKey("hosts.id", ondelete="RESTRICT"), index=True
    )
    mem: Mapped[int] = mapped_column(Integer, default=1024)
    slice: Mapped[int] = mapped_column(Integer, default=0)
    virt_type: Mapped[str] = mapped_column(String(64), default="para")

    disks: Mapped[list[VmDisk]] = relationship(
        back_populates="vm_node", passive_deletes=True, order_by="VmDisk.id"
    )


class VmDisk(Base):
    """A disk of a VM: `prefix`/`name` is the image path on the container (`file`) or the
    device (`phy`), `device` the guest's name for it (hda), `size` in GB of 10^9 bytes."""

    __tablename__ = "vm_disks"

    id: Mapped[int] = mapped_column(primary_key=True)
    vm_node_id: Mapped[int] = mapped_column(
        ForeignKey("vm_nodes.id", ondelete="CASCADE"), index=True
    )
    vbd_type: Mapped[str] = mapped_column(String(64), default="file")
    prefix: Mapped[str] = mapped_column(String(512), default="")
    name: Mapped[str] = mapped_column(String(512))
    device: Mapped[str] = mapped_column(String(512), default="hda")
    mode: Mapped[str] = mapped_column(String(64), default="w")
    size: Mapped[int] = mapped_column(Integer, default=36)

    vm_node: Mapped[VmNode] = relationship(back_populates="disks")
