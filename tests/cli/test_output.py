"""Rocks tables: owner column, upper-case header, alignment, `-----`, JSON and column choice."""

from __future__ import annotations

import json

import pytest

from provisioner.cli.output import Table
from provisioner.errors import UsageError


def table() -> Table:
    t = Table(["host", "action", "count"])
    t.row("olympic", None, 1)
    t.row("compute-0-0", "os", 12)
    return t


def test_table_layout_matches_rocks():
    assert table().render() == (
        "HOST         ACTION COUNT\nolympic:     -----  1\ncompute-0-0: os     12\n"
    )


def test_header_can_be_left_out():
    assert table().render(header=False).splitlines()[0].startswith("olympic:")


def test_json_keeps_owner_and_types():
    assert json.loads(table().render("json")) == [
        {"host": "olympic", "action": None, "count": 1},
        {"host": "compute-0-0", "action": "os", "count": 12},
    ]


def test_output_col_selects_and_orders_columns():
    assert table().render(cols="count,host") == "COUNT HOST\n1     olympic:\n12    compute-0-0:\n"
    assert json.loads(table().render("json", cols="action")) == [{"action": None}, {"action": "os"}]
    with pytest.raises(UsageError, match="unknown column 'colour'"):
        table().render(cols="colour")


def test_trim_owner_drops_a_single_owner():
    t = Table(["host", "iface"], trim_owner=True)
    t.row("compute-0-0", "eth0")
    t.row("compute-0-0", "eth1")
    assert t.render() == "IFACE\neth0\neth1\n"


def test_booleans_and_empty_strings():
    t = Table(["net", "servedns", "zone"])
    t.row("private", True, "")
    assert t.render(header=False) == "private: yes -----\n"


def test_continuation_rows_have_a_bare_colon():
    t = Table(["frontend", "client"])
    t.row("bayou", None)
    t.row("", "vm-container-0-0")
    assert t.render(header=False).splitlines()[1].startswith(":")


def test_row_width_is_checked():
    with pytest.raises(ValueError):
        Table(["a", "b"]).row("x", 1, 2)
