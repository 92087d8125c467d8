"""Kickstart benchmark (issue 3): render time per host once the renderer is warm, on 1,000 and
on 10,000 hosts, beside what the cache saves: a cold render (a fresh renderer that parses every
node file, traverses and compiles, as Rocks' `rocks list host xml` did for each request) and
one `rocks list host profile` process per kickstart (Rocks' CGI ran about eight processes).

Targets: median <= 2 ms per host, and 10,000 hosts no slower than 1.2x 1,000 hosts or with
a p99 of at most 0.1 ms (both reported).

Usage: .venv/bin/python bench/kickstart.py [--hosts 1000,10000] [--cold 20] [--processes 5]
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
from typing import TYPE_CHECKING

from netutil import machine  # noqa: E402

if TYPE_CHECKING:
    from provisioner.config import Config
    from provisioner.hooks import Hooks

ROCKS = str(Path(sys.executable).parent / "rocks")


def add_hosts(env: dict[str, str], start: int, stop: int) -> None:
    """compute-R-N hosts with a private interface each, through one `rocks batch`."""
    lines = []
    for i in range(start, stop):
        rack, rank = divmod(i, 250)
        name = f"compute-{rack}-{rank}"
        mac = f"02:00:00:{i // 65536:02x}:{i // 256 % 256:02x}:{i % 256:02x}"
        lines.append(f"add host {name} cpus=2")
        lines.append(
            f"add host interface {name} eth0 {mac} ip=10.1.{200 - rack}.{rank + 1} subnet=private"
        )
    subprocess.run(
        [ROCKS, "batch"], env=env, input="\n".join(lines), text=True, check=True,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip


def measure(config: Config, hooks: Hooks, cold_samples: int) -> dict[str, float]:
    from provisioner.db.reader import Reader
    from provisioner.kickstart.renderer import KickstartRenderer
    from provisioner.services.hostargs import all_hosts

    renderer = KickstartRenderer(config, hooks)
    with Reader.connect(config.db_url) as reader:
        hosts = [h for h in all_hosts(reader) if h.appliance == "compute"]
        for h in hosts[:50]:  # warm-up: files parsed, traversal and template compiled
            renderer.render(reader, h)
        times = []
        size = 0
        start_all = time.perf_counter()
        for h in hosts:
            t0 = time.perf_counter()
            text = renderer.render(reader, h)
            times.append(time.perf_counter() - t0)
            size += len(text)
        total = time.perf_counter() - start_all
        cold = []
        for h in hosts[:cold_samples]:
            t0 = time.perf_counter()
            KickstartRenderer(config, hooks).render(reader, h)
            cold.append(time.perf_counter() - t0)
    times.sort()
    return {
        "hosts": len(hosts),
        "median": statistics.median(times),
        "p90": times[int(len(times) * 0.9)],
        "p99": times[int(len(times) * 0.99)],
        "rate": len(hosts) / total,
        "cold": statistics.median(cold) if cold else 0.0,
        "bytes": size / max(len(hosts), 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", default="1000,10000", help="cluster sizes, ascending")
    ap.add_argument("--cold", type=int, default=20, help="cold renders to time per size")
    ap.add_argument("--processes", type=int, default=5, help="`rocks` processes to time")
    opts = ap.parse_args()
    sizes = [int(s) for s in opts.hosts.split(",")]

    from provisioner.config import Config
    from provisioner.hooks import Hooks

    results = []
    with tempfile.TemporaryDirectory(prefix="bench-kickstart-") as home:
        env = {**os.environ, "PROVISIONER_HOME": home}
        env.pop("PROVISIONER_DATABASE_URL", None)
        subprocess.run(
            [ROCKS, "init", "frontend", "Kickstart_PrivateHostname=fe",
             "Kickstart_PublicAddress=137.110.119.114"],
            env=env, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        config = Config.for_home(home)
        hooks = Hooks.from_config(config)
        have = 0
        process_times: list[float] = []
        for size in sizes:
            t0 = time.perf_counter()
            add_hosts(env, have, size)
            setup = time.perf_counter() - t0
            have = size
            r = measure(config, hooks, opts.cold)
            r["setup"] = setup
            results.append(r)
            if not process_times:
                for k in range(opts.processes):
                    t0 = time.perf_counter()
                    subprocess.run(
                        [ROCKS, "list", "host", "profile", f"compute-0-{k}"],
                        env=env, check=True, stdout=subprocess.DEVNULL,
                    )  # fmt: skip
                    process_times.append(time.perf_counter() - t0)

    print(f"# Kickstart benchmark — {datetime.date.today()} — {machine()}")
    print()
    print(
        "| hosts | warm median | p90 | p99 | renders/s (1 thread) | cold render (median) "
        "| kickstart size | hosts added in |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(
            f"| {r['hosts']} | {r['median'] * 1e3:.3f} ms | {r['p90'] * 1e3:.3f} ms "
            f"| {r['p99'] * 1e3:.3f} ms | {r['rate']:.0f} | {r['cold'] * 1e3:.1f} ms "
            f"| {r['bytes'] / 1024:.1f} KiB | {r['setup']:.1f} s |"
        )
    if process_times:
        print()
        print(
            f"One `rocks list host profile` process per kickstart (Rocks' way, from "
            f"{len(process_times)}): median {statistics.median(process_times) * 1e3:.0f} ms."
        )
    ok = all(r["median"] <= 0.002 for r in results)
    if len(results) > 1:
        # Tens of microseconds drift by more than 20 % between runs on a shared machine: the
        # larger cluster passes on an absolute bound (p99 <= 0.1 ms) or on the ratio.
        big, small = results[-1], results[0]
        ratio = big["median"] / small["median"]
        scale_ok = big["p99"] <= 0.0001 or ratio <= 1.2
        print(
            f"{big['hosts']} vs {small['hosts']} hosts: median {ratio:.2f}x (<= 1.2x), "
            f"p99 {big['p99'] * 1e3:.3f} ms (<= 0.1 ms): {'met' if scale_ok else 'MISSED'}"
        )
        ok = ok and scale_ok
    print()
    print("targets met" if ok else "TARGETS MISSED")
    # A miss is a finding, not a crash: `make bench` goes on to the next benchmark.
    return 0


if __name__ == "__main__":
    sys.exit(main())
