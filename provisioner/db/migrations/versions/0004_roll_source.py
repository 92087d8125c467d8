"""Rolls remember where `rocks add roll` took them from (an ISO, a directory or a URL).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rolls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source", sa.String(length=1024), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rolls", schema=None) as batch_op:
        batch_op.drop_column("source")
