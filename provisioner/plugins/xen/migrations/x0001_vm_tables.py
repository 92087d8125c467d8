"""VM tables of the Xen roll: vm_nodes (which container holds a VM, its memory, slice and
virtualisation type) and vm_disks.

The core's revision 0002 created them until they moved here: a database made then already has
them (and its VMs), so each is created only when missing.

Revision ID: x0001
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "x0001"
down_revision = None
branch_labels = ("xen",)
depends_on = "0001"  # vm_nodes points at the core's hosts


def _missing(table: str) -> bool:
    return not sa.inspect(op.get_bind()).has_table(table)


def upgrade() -> None:
    if _missing("vm_nodes"):
        op.create_table(
            "vm_nodes",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("host_id", sa.Integer(), nullable=False),
            sa.Column("physnode_id", sa.Integer(), nullable=False),
            sa.Column("mem", sa.Integer(), nullable=False),
            sa.Column("slice", sa.Integer(), nullable=False),
            sa.Column("virt_type", sa.String(length=64), nullable=False),
            sa.ForeignKeyConstraint(
                ["host_id"],
                ["hosts.id"],
                name=op.f("fk_vm_nodes_host_id_hosts"),
                ondelete="CASCADE",
            ),
            sa.ForeignKeyConstraint(
                ["physnode_id"],
                ["hosts.id"],
                name=op.f("fk_vm_nodes_physnode_id_hosts"),
                ondelete="RESTRICT",
            ),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_vm_nodes")),
            sa.UniqueConstraint("host_id", name=op.f("uq_vm_nodes_host_id")),
        )
        with op.batch_alter_table("vm_nodes", schema=None) as batch_op:
            batch_op.create_index(
                batch_op.f("ix_vm_nodes_physnode_id"), ["physnode_id"], unique=False
            )

    if _missing("vm_disks"):
        op.create_table(
            "vm_disks",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("vm_node_id", sa.Integer(), nullable=False),
            sa.Column("vbd_type", sa.String(length=64), nullable=False),
            sa.Column("prefix", sa.String(length=512), nullable=False),
            sa.Column("name", sa.String(length=512), nullable=False),
            sa.Column("device", sa.String(length=512), nullable=False),
            sa.Column("mode", sa.String(length=64), nullable=False),
            sa.Column("size", sa.Integer(), nullable=False),
            sa.ForeignKeyConstraint(
                ["vm_node_id"],
                ["vm_nodes.id"],
                name=op.f("fk_vm_disks_vm_node_id_vm_nodes"),
                ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_vm_disks")),
        )
        with op.batch_alter_table("vm_disks", schema=None) as batch_op:
            batch_op.create_index(
                batch_op.f("ix_vm_disks_vm_node_id"), ["vm_node_id"], unique=False
            )


def downgrade() -> None:
    with op.batch_alter_table("vm_disks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_vm_disks_vm_node_id"))
    op.drop_table("vm_disks")
    with op.batch_alter_table("vm_nodes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_vm_nodes_physnode_id"))
    op.drop_table("vm_nodes")
