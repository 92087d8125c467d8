"""The Xen roll's tables come from its own Alembic branch (label `xen`): a database made before
they moved there (the core's revision 0002 created them; it is at core revision 0004 with one
`alembic_version` row) upgrades with `rocks init frontend`, keeps its VMs and records the
branch; a disabled roll's recorded branch still resolves."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from provisioner.db import schema
from provisioner.db.engine import make_engine
from provisioner.hooks import Hooks, get_plugin_manager
from provisioner.testing.pytest_plugin import TEST_ATTRS


def versions(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return set(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    finally:
        engine.dispose()


def as_made_before_the_branch(url: str) -> None:
    """What the code before the move leaves: the same tables (the branch's revision is the old
    0002's DDL, checked by tests/db/test_schema.py), and only the core's row."""
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM alembic_version WHERE version_num = 'x0001'"))
    engine.dispose()
    assert versions(url) == {schema.head_revision()}


def test_a_database_from_before_the_branch_upgrades_and_keeps_its_vms(vmc: Any, config: Any):
    vm = vmc.ok('add host vm vm-container-0-0 membership="Compute"').split()[-1].strip('"')
    listed = vmc.ok("list host vm")
    assert vm in listed
    as_made_before_the_branch(config.db_url)

    out = vmc.ok("init", "frontend", *TEST_ATTRS)
    assert "upgraded" not in out and "created" not in out  # the core's revision is the same
    assert versions(config.db_url) == {schema.head_revision(), "x0001"}
    assert vmc.ok("list host vm") == listed
    vmc.ok(f"remove host {vm}")  # the cascades still hold
    assert vm not in vmc.ok("list host vm")


def test_a_disabled_roll_keeps_its_recorded_branch_and_tables(vmc: Any, config: Any):
    vmc.ok('add host vm vm-container-0-0 membership="Compute"')
    without_xen = Hooks(get_plugin_manager(["xen"]))
    engine = make_engine(config.db_url)
    try:
        head = schema.head_revision()
        assert schema.upgrade(engine, hooks=without_xen) == (head, head)
        with engine.connect() as conn:
            vms = conn.execute(text("SELECT count(*) FROM vm_nodes")).scalar()
    finally:
        engine.dispose()
    assert vms == 1
    assert versions(config.db_url) == {head, "x0001"}
