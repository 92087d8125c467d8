"""Many `rocks` processes at once: every one succeeds or fails with one clear line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROCKS = str(Path(sys.executable).parent / "rocks")


def _env(config) -> dict[str, str]:
    return {
        **os.environ,
        "PROVISIONER_HOME": str(config.home),
        "PROVISIONER_DATABASE_URL": config.db_url,
    }


def _run_all(
    commands: list[list[str]], env: dict[str, str]
) -> list[subprocess.CompletedProcess[str]]:
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for cmd in commands
    ]
    results = []
    for cmd, p in zip(commands, procs, strict=True):
        out, err = p.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(cmd, p.returncode, out, err))
    return results


def test_fifty_add_host_processes_at_once(rocks, config):
    names = [f"compute-3-{i}" for i in range(50)]
    results = _run_all([[ROCKS, "add", "host", n] for n in names], _env(config))
    for r in results:
        assert "Traceback" not in r.stderr and "locked" not in r.stderr, r.stderr
        assert r.returncode == 0, r.stderr
    listed = {row["host"] for row in json.loads(rocks.ok("list host rack3 output-format=json"))}
    assert listed == set(names)


def test_racing_on_one_name_gives_one_winner_and_clear_errors(rocks, config):
    results = _run_all([[ROCKS, "add", "host", "compute-4-0"] for _ in range(8)], _env(config))
    winners = [r for r in results if r.returncode == 0]
    assert len(winners) == 1
    for r in results:
        if r.returncode:
            assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: "), r.stderr
            assert "already exists" in r.stderr or "conflict" in r.stderr, r.stderr
    assert json.loads(rocks.ok("list host compute-4-0 output-format=json output-col=host")) == [
        {"host": "compute-4-0"}
    ]
