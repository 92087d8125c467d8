"""The light reader: same SQL on both drivers, parameter conversion, clear errors."""

from __future__ import annotations

import pytest

from provisioner.db.reader import Reader
from provisioner.errors import DatabaseError


def test_named_parameters_and_percent_signs(rocks, config):
    rocks.ok("set attr pct '50% off'")
    with Reader.connect(config.db_url) as r:
        assert (
            r.scalar(
                "SELECT value FROM global_attributes WHERE attr = :a AND value LIKE '50%'", a="pct"
            )
            == "50% off"
        )
        clause, params = r.in_clause("n", ["pct", "x11"])
        assert sorted(
            r.column(f"SELECT attr FROM global_attributes WHERE attr IN {clause}", **params)
        ) == ["pct", "x11"]
        assert r.one("SELECT attr FROM global_attributes WHERE attr = :a", a="none") is None


def test_missing_sqlite_file_is_a_clear_error(tmp_path):
    with pytest.raises(DatabaseError, match="run 'rocks init frontend' to create it"):
        Reader.connect(f"sqlite:///{tmp_path / 'none.db'}")
    # It must not have created an empty database on the way.
    assert not (tmp_path / "none.db").exists()


def test_unreachable_postgres_is_one_line():
    with pytest.raises(DatabaseError) as err:
        Reader.connect("postgresql+psycopg://nobody@127.0.0.1:1/none", timeout=2)
    assert "\n" not in str(err.value) and "cannot connect" in str(err.value)


def test_uninitialised_schema_is_translated(tmp_path):
    import sqlite3

    path = tmp_path / "empty.db"
    sqlite3.connect(path).close()
    with (
        Reader.connect(f"sqlite:///{path}") as r,
        pytest.raises(DatabaseError, match="not initialised"),
    ):
        r.all("SELECT * FROM hosts")
