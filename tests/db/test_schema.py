"""Migrations apply from empty on both databases and match the models; the change counter."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select

from provisioner.db import schema
from provisioner.db.engine import make_engine, transaction
from provisioner.db.models import Base, GlobalAttribute
from provisioner.db.reader import Reader


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


def test_migrations_match_the_models(empty_engine):
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
