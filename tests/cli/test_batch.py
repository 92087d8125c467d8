"""Bulk mode: many commands in one process, one transaction per line."""

from __future__ import annotations

import json


def test_batch_runs_lines_in_order_with_comments(rocks, tmp_path):
    script = tmp_path / "site.rocks"
    script.write_text(
        "# a site script\n"
        "rocks add host compute-0-0\n"
        "\n"
        "set host attr compute-0-0 x11 true   # trailing comment\n"
        "list host attr compute-0-0 attr=x11 output-header=no\n"
    )
    out = rocks.ok(f"batch {script}")
    assert out == "compute-0-0: x11 true H\n"


def test_failing_lines_change_nothing_and_others_still_run(rocks):
    result = rocks(
        "batch",
        stdin=(
            "add host compute-0-0\n"
            "add host interface compute-0-0 eth0 52:54:00:00:00:01 ip=10.1.255.254 subnet=private\n"
            "add host interface compute-0-0 eth1 52:54:00:00:00:01\n"
            "set host attr nosuch x y\n"
            "set host attr compute-0-0 'unterminated\n"
            "add host compute-0-1\n"
        ),
    )
    assert result.status == 1
    assert result.err.splitlines() == [
        "error: line 3: MAC 52:54:00:00:00:01 is already used by another interface",
        "error: line 4: unknown host 'nosuch'",
        "error: line 5: No closing quotation",
        "error: 3 of 6 commands failed",
    ]
    hosts = [r["host"] for r in json.loads(rocks.ok("list host output-format=json"))]
    assert hosts == ["frontend", "compute-0-0", "compute-0-1"]
    assert [
        i["iface"]
        for i in json.loads(rocks.ok("list host interface compute-0-0 output-format=json"))
    ] == ["eth0"]


def test_stop_on_error(rocks):
    result = rocks(
        "batch stop-on-error=yes",
        stdin="add host compute-0-0\nremove host nosuch\nadd host compute-0-1\n",
    )
    assert result.status == 1 and "line 2" in result.err
    assert "compute-0-1" not in rocks.ok("list host")


def test_missing_file(rocks, tmp_path):
    assert rocks(f"batch {tmp_path / 'nope'}").err.startswith("error: cannot read")
