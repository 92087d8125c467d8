"""`make bench`: every benchmark, one after the other, whatever the previous one found.

A benchmark that misses a target is a finding to report, not a reason to stop: each runs to
its end, its output goes to the terminal as it comes, and a summary at the end lists each
one's verdict (its "targets met" / "TARGETS MISSED" line) and how long it took. The exit
status is non-zero only when a benchmark crashed (no verdict line and a failing status), so
scripts can tell "slower than the target" from "could not measure".

Usage: .venv/bin/python bench/run_all.py [name ...]    (names: cli, kickstart, ...; default all)
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# The storm's bulk downloads held to 1.2 cores where a cgroup can do it: real nodes bring their
# own CPUs (bench/boot_storm.py says why, and what it measured without).
CGROUP_CPU = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
CLIENT_CPUS = ["--client-cpus", "1.2"] if CGROUP_CPU.exists() else []

BENCHMARKS: list[tuple[str, list[str]]] = [
    ("cli", ["cli.py"]),
    ("kickstart", ["kickstart.py"]),
    ("kickstart_storm", ["kickstart_storm.py"]),
    ("boot_storm", ["boot_storm.py", *CLIENT_CPUS]),
    ("tftp", ["tftp.py", "--rounds", "5"]),
    ("dns", ["dns.py", "--rounds", "5", "--seconds", "8"]),
    ("discovery", ["discovery.py"]),
    ("add_cluster", ["add_cluster.py"]),
]


def verdict(lines: list[str]) -> str | None:
    """The benchmark's own verdict: its last line saying targets were met or missed."""
    for line in reversed(lines):
        low = line.lower()
        if "targets met" in low or "missed" in low:
            return line.strip()
    return None


def run(name: str, argv: list[str]) -> tuple[str, int, float, str | None]:
    print(f"\n==== {name}: {' '.join(argv)}", flush=True)
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, str(HERE / argv[0]), *argv[1:]],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        lines.append(line)
    status = proc.wait()
    return name, status, time.monotonic() - started, verdict(lines)


def main(argv: list[str]) -> int:
    wanted = set(argv)
    unknown = wanted - {name for name, _ in BENCHMARKS}
    if unknown:
        print(f"unknown benchmarks: {' '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    results = [run(name, cmd) for name, cmd in BENCHMARKS if not wanted or name in wanted]
    print("\n==== summary")
    print("| benchmark | verdict | status | time |")
    print("| --- | --- | --- | --- |")
    crashed = 0
    for name, status, seconds, said in results:
        if said is None and status != 0:
            crashed += 1
            said = "CRASHED (no verdict; see its output above)"
        print(f"| {name} | {said or 'no verdict line'} | {status} | {seconds:.0f} s |")
    missed = sum(1 for *_, said in results if said and "missed" in said.lower())
    print(f"\n{len(results)} benchmarks: {missed} with missed targets, {crashed} crashed")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
