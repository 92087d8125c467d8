"""Install events reported by installing hosts, and node discovery (insert-ethers) state.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "discovery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("appliance_id", sa.Integer(), nullable=False),
        sa.Column("rack", sa.Integer(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=True),
        sa.Column("started", sa.DateTime(), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["appliance_id"],
            ["appliances.id"],
            name=op.f("fk_discovery_appliance_id_appliances"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_discovery")),
    )
    op.create_table(
        "install_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created", sa.DateTime(), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["host_id"],
            ["hosts.id"],
            name=op.f("fk_install_events_host_id_hosts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_install_events")),
    )
    with op.batch_alter_table("install_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_install_events_host_id"), ["host_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("install_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_install_events_host_id"))

    op.drop_table("install_events")
    op.drop_table("discovery")
