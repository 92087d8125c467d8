"""CLI benchmark (issue 2): on a 1,000-host cluster, the median wall time of `rocks list host`
and of 1,000 `set host attr` through bulk mode, beside what a user would otherwise do: the same
query through Python's sqlite3 with no framework (the floor) and 1,000 separate `rocks`
processes (measured on a sample, extrapolated).

Usage: .venv/bin/python bench/cli.py [--hosts 1000] [--runs 7]
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from netutil import compile_package, machine  # noqa: E402

ROCKS = str(Path(sys.executable).parent / "rocks")


def timed(cmd: list[str], env: dict[str, str], stdin: str | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, input=stdin, text=True, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=7)
    opts = ap.parse_args()
    compile_package()

    with tempfile.TemporaryDirectory(prefix="bench-cli-") as home:
        env = {**os.environ, "PROVISIONER_HOME": home}
        env.pop("PROVISIONER_DATABASE_URL", None)
        subprocess.run(
            [
                ROCKS,
                "init",
                "frontend",
                "Kickstart_PrivateHostname=fe",
                "Kickstart_PublicAddress=137.110.119.114",
            ],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        lines = []
        for i in range(opts.hosts):
            rack, rank = divmod(i, 250)
            lines.append(f"add host compute-{rack}-{rank}")
            mac = f"02:00:00:00:{i // 256:02x}:{i % 256:02x}"
            lines.append(
                f"add host interface compute-{rack}-{rank} eth0 {mac} "
                f"ip=10.1.{200 - rack}.{rank + 1} subnet=private"
            )
        subprocess.run([ROCKS, "batch"], env=env, input="\n".join(lines), text=True, check=True)
        names = [line.split()[2] for line in lines[::2]]

        list_times = [timed([ROCKS, "list", "host"], env) for _ in range(opts.runs)]
        db = Path(home) / "provisioner.db"
        query = (
            "SELECT h.name, m.name, h.cpus, h.rack, h.rank, h.runaction, h.installaction "
            "FROM hosts h JOIN memberships m ON m.id = h.membership_id"
        )
        floor_script = (
            f"import sqlite3; c = sqlite3.connect({str(db)!r}); "
            f"rows = c.execute({query!r}).fetchall(); "
            "print('\\n'.join(' '.join(map(str, r)) for r in rows))"
        )
        floor_times = [timed([sys.executable, "-c", floor_script], env) for _ in range(opts.runs)]

        script = "\n".join(f"set host attr {n} bench_attr value{k}" for k, n in enumerate(names))
        bulk_times = [
            timed([ROCKS, "batch"], env, stdin=script) for _ in range(max(3, opts.runs // 2))
        ]
        single = [
            timed([ROCKS, "set", "host", "attr", names[k], "bench_single", "x"], env)
            for k in range(5)
        ]

    single_median = statistics.median(single)
    rows = [
        ("`rocks list host`", statistics.median(list_times), len(list_times), "<= 0.3 s"),
        (
            "same query, bare Python + sqlite3 (floor)",
            statistics.median(floor_times),
            len(floor_times),
            "",
        ),
        (
            f"{len(names)} `set host attr` in `rocks batch`",
            statistics.median(bulk_times),
            len(bulk_times),
            "<= 2 s",
        ),
        (
            f"{len(names)} separate `rocks set host attr` processes (from {len(single)})",
            single_median * len(names),
            len(single),
            "",
        ),
    ]
    print(f"# CLI benchmark, {opts.hosts} hosts — {datetime.date.today()} — {machine()}")
    print()
    print("| measurement | median | runs | target |")
    print("| --- | --- | --- | --- |")
    for what, seconds, runs, target in rows:
        print(f"| {what} | {seconds:.3f} s | {runs} | {target} |")
    ok = statistics.median(list_times) <= 0.3 and statistics.median(bulk_times) <= 2.0
    print()
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
