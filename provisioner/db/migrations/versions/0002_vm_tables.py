"""Formerly the VM tables (vm_nodes, vm_disks); they moved to the Xen roll's own branch
(provisioner/plugins/xen/migrations, label `xen`), which creates them when the roll is enabled
and keeps them where this revision made them. Kept, empty, so that databases at any revision
keep a valid history.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
