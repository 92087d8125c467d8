"""Migrations apply from empty on both databases and match the models (the core's and every
installed roll's branch: the Xen roll's tables); a disabled roll's branch is not applied; a
database from before the VM tables moved to the Xen roll's branch upgrades; the change
counter."""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import inspect, select, text

from provisioner.db import schema
from provisioner.db.engine import make_engine, transaction
from provisioner.db.models import Base, GlobalAttribute
from provisioner.db.reader import Reader
from provisioner.hooks import Hooks
from provisioner.testing.pytest_plugin import TEST_ATTRS, Rocks


@pytest.fixture
def empty_engine(empty_url):
    engine = make_engine(empty_url)
    yield engine
    engine.dispose()


def test_upgrade_from_empty_then_nothing_to_do(empty_engine):
    before, after = schema.upgrade(empty_engine)
    assert before is None and after == schema.head_revision()
    assert schema.upgrade(empty_engine) == (after, after)
    tables = set(inspect(empty_engine).get_table_names())
    assert {t.name for t in Base.metadata.sorted_tables} <= tables


def versions(engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())


def test_migrations_match_the_models(empty_engine):
    import provisioner.plugins.xen.models  # noqa: F401  (the roll's tables, on the same Base)

    schema.upgrade(empty_engine)
    with empty_engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = [
            d
            for d in compare_metadata(ctx, Base.metadata)
            # Expression indexes cannot be reflected on SQLite; they are checked below.
            if not (d[0] in ("add_index", "remove_index") and d[1].name.startswith("uq_boot"))
        ]
    assert diff == []


def test_downgrade_to_empty_and_back(empty_engine):
    from alembic import command

    schema.upgrade(empty_engine)
    cfg = schema._alembic_config()
    with empty_engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert set(inspect(empty_engine).get_table_names()) <= {"alembic_version"}
    schema.upgrade(empty_engine)
    assert schema.current_revision(empty_engine) == schema.head_revision()


def test_the_core_and_each_enabled_roll_record_their_branch(empty_engine):
    schema.upgrade(empty_engine)
    assert versions(empty_engine) == {schema.head_revision(), "x0001"}
    assert {"vm_nodes", "vm_disks"} <= set(inspect(empty_engine).get_table_names())


def test_a_disabled_roll_leaves_no_table_on_a_new_database(empty_url, tmp_path, monkeypatch):
    from provisioner.config import Config

    monkeypatch.setenv("PROVISIONER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PROVISIONER_DATABASE_URL", empty_url)
    monkeypatch.setenv("PROVISIONER_DISABLED_PLUGINS", "xen")
    config = Config.load(env=dict(os.environ))
    assert config.disabled_plugins == ("xen",)
    out = Rocks(config, Hooks.from_config(config)).ok("init", "frontend", *TEST_ATTRS)
    assert f"created the database schema (revision {schema.head_revision()})" in out
    engine = make_engine(empty_url)
    try:
        tables = set(inspect(engine).get_table_names())
        assert not {"vm_nodes", "vm_disks"} & tables
        assert versions(engine) == {schema.head_revision()}
        # Enabling the roll later creates its tables.
        assert schema.upgrade(engine) == (schema.head_revision(), schema.head_revision())
        assert {"vm_nodes", "vm_disks"} <= set(inspect(engine).get_table_names())
        assert versions(engine) == {schema.head_revision(), "x0001"}
    finally:
        engine.dispose()


def _old_0002(op: Operations) -> None:
    """The core's revision 0002 before the VM tables moved to the Xen roll's branch."""
    op.create_table(
        "vm_nodes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("physnode_id", sa.Integer(), nullable=False),
        sa.Column("mem", sa.Integer(), nullable=False),
        sa.Column("slice", sa.Integer(), nullable=False),
        sa.Column("virt_type", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["host_id"], ["hosts.id"], name=op.f("fk_vm_nodes_host_id_hosts"), ondelete="CASCADE"
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
        batch_op.create_index(batch_op.f("ix_vm_nodes_physnode_id"), ["physnode_id"], unique=False)

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
        batch_op.create_index(batch_op.f("ix_vm_disks_vm_node_id"), ["vm_node_id"], unique=False)


def test_a_database_made_before_the_xen_branch_upgrades(empty_engine, empty_url, tmp_path, hooks):
    """The old chain's schema (0001, the old 0002, 0003, 0004: one row, 0004) with a VM row."""
    import provisioner.plugins.xen.models  # noqa: F401

    schema.upgrade(empty_engine, "0001")
    with empty_engine.begin() as conn:
        _old_0002(Operations(MigrationContext.configure(conn)))
    schema.upgrade(empty_engine, "0004")
    assert versions(empty_engine) == {"0004"}
    from provisioner.config import Config

    config = Config.for_home(tmp_path / "home", database_url=empty_url)
    rocks = Rocks(config, hooks)
    rocks.ok("init", "frontend", *TEST_ATTRS)
    with empty_engine.begin() as conn:
        frontend = conn.execute(text("SELECT id FROM hosts WHERE name = 'frontend'")).scalar()
        conn.execute(
            text(
                "INSERT INTO vm_nodes (id, host_id, physnode_id, mem, slice, virt_type) "
                "VALUES (1, :h, :h, 1024, 0, 'para')"
            ),
            {"h": frontend},
        )
        # As the old code leaves it: the row of its core revision only.
        conn.execute(text("DELETE FROM alembic_version WHERE version_num = 'x0001'"))

    out = rocks.ok("init", "frontend", *TEST_ATTRS)
    assert (
        out.strip()
        == f"the database is up to date (revision {schema.head_revision()}); nothing to add"
    )
    assert versions(empty_engine) == {"0004", "x0001"}
    with empty_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM vm_nodes")).scalar() == 1
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = [
            d
            for d in compare_metadata(ctx, Base.metadata)
            if not (d[0] in ("add_index", "remove_index") and d[1].name.startswith("uq_boot"))
        ]
    assert diff == []


def test_expression_indexes_keep_global_rows_unique(rocks, config):
    rocks.ok("set bootflags flags=a")
    rocks.ok("set bootflags flags=b")
    engine = make_engine(config.db_url)
    from provisioner.db.models import BootFlags

    with transaction(engine) as session:
        session.add(BootFlags(host_id=None, flags="c"))
        with pytest.raises(Exception, match="(?i)unique|duplicate"):
            session.flush()
        session.rollback()
    engine.dispose()
    assert "b" in rocks.ok("report host bootflags frontend")


def test_generation_counts_committed_changes_only(rocks, config):
    def generation() -> int:
        with Reader.connect(config.db_url) as r:
            return r.generation()

    g0 = generation()
    rocks.ok("list host")
    rocks.ok("list host attr frontend")
    assert generation() == g0
    rocks.ok("set attr x11 true")
    assert generation() == g0 + 1
    rocks("set host attr nosuch a b")  # fails: nothing committed
    assert generation() == g0 + 1
    engine = make_engine(config.db_url)
    with transaction(engine) as session:
        session.execute(select(GlobalAttribute))  # a read-only unit of work
    assert generation() == g0 + 1
    with transaction(engine) as session:
        session.add(GlobalAttribute(attr="k", value="v"))
    assert generation() == g0 + 2
    engine.dispose()
