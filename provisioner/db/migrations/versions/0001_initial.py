"""Initial schema: hosts, appliances, memberships, networks, interfaces, attributes at four
levels, boot actions, boot flags, partitions, rolls and host rolls.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "appliances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("graph", sa.String(length=64), nullable=False),
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("roll", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appliances")),
        sa.UniqueConstraint("name", name=op.f("uq_appliances_name")),
    )
    op.create_table(
        "global_attributes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("attr", sa.String(length=128), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_global_attributes")),
        sa.UniqueConstraint("attr", name=op.f("uq_global_attributes_attr")),
    )
    op.create_table(
        "meta",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_meta")),
    )
    op.create_table(
        "os_attributes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("os", sa.String(length=32), nullable=False),
        sa.Column("attr", sa.String(length=128), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_os_attributes")),
        sa.UniqueConstraint("os", "attr", name=op.f("uq_os_attributes_os_attr")),
    )
    op.create_table(
        "rolls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("arch", sa.String(length=32), nullable=False),
        sa.Column("os", sa.String(length=32), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rolls")),
        sa.UniqueConstraint(
            "name", "version", "arch", "os", name=op.f("uq_rolls_name_version_arch_os")
        ),
    )
    op.create_table(
        "subnets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("subnet", sa.String(length=64), nullable=False),
        sa.Column("netmask", sa.String(length=64), nullable=False),
        sa.Column("mtu", sa.Integer(), nullable=False),
        sa.Column("dnszone", sa.String(length=128), nullable=False),
        sa.Column("servedns", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subnets")),
        sa.UniqueConstraint("name", name=op.f("uq_subnets_name")),
    )
    op.create_table(
        "appliance_attributes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("appliance_id", sa.Integer(), nullable=False),
        sa.Column("attr", sa.String(length=128), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["appliance_id"],
            ["appliances.id"],
            name=op.f("fk_appliance_attributes_appliance_id_appliances"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appliance_attributes")),
        sa.UniqueConstraint(
            "appliance_id", "attr", name=op.f("uq_appliance_attributes_appliance_id_attr")
        ),
    )
    op.create_table(
        "memberships",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("appliance_id", sa.Integer(), nullable=False),
        sa.Column("distribution", sa.String(length=64), nullable=False),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["appliance_id"],
            ["appliances.id"],
            name=op.f("fk_memberships_appliance_id_appliances"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_memberships")),
        sa.UniqueConstraint("name", name=op.f("uq_memberships_name")),
    )
    op.create_table(
        "hosts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("membership_id", sa.Integer(), nullable=False),
        sa.Column("rack", sa.Integer(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("cpus", sa.Integer(), nullable=False),
        sa.Column("os", sa.String(length=32), nullable=False),
        sa.Column("arch", sa.String(length=32), nullable=False),
        sa.Column("installaction", sa.String(length=256), nullable=True),
        sa.Column("runaction", sa.String(length=256), nullable=True),
        sa.Column("boot_action", sa.String(length=16), nullable=True),
        sa.Column("comment", sa.String(length=256), nullable=True),
        sa.ForeignKeyConstraint(
            ["membership_id"], ["memberships.id"], name=op.f("fk_hosts_membership_id_memberships")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hosts")),
        sa.UniqueConstraint("name", name=op.f("uq_hosts_name")),
    )
    op.create_table(
        "bootactions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=256), nullable=False),
        sa.Column("kernel", sa.String(length=512), nullable=True),
        sa.Column("ramdisk", sa.String(length=512), nullable=True),
        sa.Column("args", sa.String(length=1024), nullable=True),
        sa.Column("host_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["host_id"], ["hosts.id"], name=op.f("fk_bootactions_host_id_hosts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bootactions")),
    )
    op.create_index(
        "uq_bootactions_action_host",
        "bootactions",
        ["action", sa.text("coalesce(host_id, 0)")],
        unique=True,
    )
    op.create_table(
        "bootflags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=True),
        sa.Column("flags", sa.String(length=1024), nullable=False),
        sa.ForeignKeyConstraint(
            ["host_id"], ["hosts.id"], name=op.f("fk_bootflags_host_id_hosts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bootflags")),
    )
    op.create_index(
        "uq_bootflags_host", "bootflags", [sa.text("coalesce(host_id, 0)")], unique=True
    )
    op.create_table(
        "host_attributes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("attr", sa.String(length=128), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["host_id"],
            ["hosts.id"],
            name=op.f("fk_host_attributes_host_id_hosts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_host_attributes")),
        sa.UniqueConstraint("host_id", "attr", name=op.f("uq_host_attributes_host_id_attr")),
    )
    op.create_table(
        "host_rolls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("arch", sa.String(length=32), nullable=False),
        sa.Column("os", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["host_id"], ["hosts.id"], name=op.f("fk_host_rolls_host_id_hosts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_host_rolls")),
        sa.UniqueConstraint(
            "host_id",
            "name",
            "version",
            "arch",
            "os",
            name=op.f("uq_host_rolls_host_id_name_version_arch_os"),
        ),
    )
    op.create_table(
        "interfaces",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("device", sa.String(length=32), nullable=False),
        sa.Column("mac", sa.String(length=64), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("subnet_id", sa.Integer(), nullable=True),
        sa.Column("vlan", sa.Integer(), nullable=True),
        sa.Column("module", sa.String(length=64), nullable=True),
        sa.Column("name", sa.String(length=128), nullable=True),
        sa.Column("options", sa.String(length=256), nullable=True),
        sa.ForeignKeyConstraint(
            ["host_id"], ["hosts.id"], name=op.f("fk_interfaces_host_id_hosts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["subnet_id"],
            ["subnets.id"],
            name=op.f("fk_interfaces_subnet_id_subnets"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interfaces")),
        sa.UniqueConstraint("host_id", "device", name=op.f("uq_interfaces_host_id_device")),
        sa.UniqueConstraint("mac", name=op.f("uq_interfaces_mac")),
        sa.UniqueConstraint("subnet_id", "ip", name=op.f("uq_interfaces_subnet_id_ip")),
    )
    with op.batch_alter_table("interfaces", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_interfaces_host_id"), ["host_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_interfaces_ip"), ["ip"], unique=False)

    op.create_table(
        "partitions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("device", sa.String(length=128), nullable=False),
        sa.Column("mountpoint", sa.String(length=128), nullable=False),
        sa.Column("sectorstart", sa.String(length=128), nullable=False),
        sa.Column("partitionsize", sa.String(length=128), nullable=False),
        sa.Column("partitionid", sa.String(length=128), nullable=False),
        sa.Column("fstype", sa.String(length=128), nullable=False),
        sa.Column("partitionflags", sa.String(length=128), nullable=False),
        sa.Column("formatflags", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["host_id"], ["hosts.id"], name=op.f("fk_partitions_host_id_hosts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partitions")),
        sa.UniqueConstraint("host_id", "device", name=op.f("uq_partitions_host_id_device")),
    )

    op.create_table(
        "aliases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["host_id"], ["hosts.id"], name=op.f("fk_aliases_host_id_hosts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_aliases")),
        sa.UniqueConstraint("name", name=op.f("uq_aliases_name")),
    )
    with op.batch_alter_table("aliases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_aliases_host_id"), ["host_id"], unique=False)

    meta = sa.table("meta", sa.column("key", sa.String), sa.column("value", sa.Integer))
    op.bulk_insert(meta, [{"key": "generation", "value": 0}])


def downgrade() -> None:
    op.drop_table("aliases")
    op.drop_table("partitions")
    with op.batch_alter_table("interfaces", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_interfaces_ip"))
        batch_op.drop_index(batch_op.f("ix_interfaces_host_id"))

    op.drop_table("interfaces")
    op.drop_table("host_rolls")
    op.drop_table("host_attributes")
    op.drop_index("uq_bootflags_host", table_name="bootflags")
    op.drop_table("bootflags")
    op.drop_index("uq_bootactions_action_host", table_name="bootactions")
    op.drop_table("bootactions")
    op.drop_table("hosts")
    op.drop_table("memberships")
    op.drop_table("appliance_attributes")
    op.drop_table("subnets")
    op.drop_table("rolls")
    op.drop_table("os_attributes")
    op.drop_table("meta")
    op.drop_table("global_attributes")
    op.drop_table("appliances")
