"""Discovery (issue 4): 200 unknown MACs reported at once, as dnsmasq's lease script reports
them, to provisionerd's HTTP service; how long until all are registered, and whether every
name and address is unique.

Beside it, what Rocks' insert-ethers did per new node: one `rocks add host` and one
`rocks add host interface` process (then its plugins), one node at a time — measured on a
sample and extrapolated to 200.

Usage: .venv/bin/python bench/discovery.py [--macs 200]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from netutil import http_service, machine  # noqa: E402

BIN = Path(sys.executable).parent


def rocks(env: dict[str, str], *words: str) -> str:
    return subprocess.run(
        [BIN / "rocks", *words], env=env, check=True, capture_output=True, text=True
    ).stdout


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--macs", type=int, default=200)
    opts = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-discovery-") as tmp:
        env = {**os.environ, "PROVISIONER_HOME": tmp}
        env.pop("PROVISIONER_DATABASE_URL", None)
        rocks(
            env,
            "init",
            "frontend",
            "Kickstart_PrivateHostname=fe",
            "Kickstart_PublicAddress=192.0.2.10",
        )
        rocks(env, "enable", "discovery", "appliance=compute")
        with http_service(env) as port:
            answers: list[str] = []
            lock = threading.Lock()

            def report(i: int) -> None:
                body = f"action=add&mac=02:00:00:02:{i // 256:02x}:{i % 256:02x}&ip=10.1.1.50"
                req = urllib.request.Request(
                    f"http://127.0.0.1:{port}/discovery/lease", data=body.encode(), method="POST"
                )
                with urllib.request.urlopen(req, timeout=30) as resp:
                    text = resp.read().decode().strip()
                with lock:
                    answers.append(text)

            threads = [threading.Thread(target=report, args=(i,)) for i in range(opts.macs)]
            start = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            elapsed = time.perf_counter() - start
        rows = json.loads(rocks(env, "list", "host", "interface", "compute", "output-format=json"))
        names = {r["host"] for r in rows}
        ips = {r["ip"] for r in rows}
        unique = len(rows) == opts.macs and len(names) == opts.macs and len(ips) == opts.macs
        sample = []
        for i in range(3):
            t = time.perf_counter()
            rocks(env, "add", "host", f"compute-9-{i}")
            rocks(
                env,
                "add",
                "host",
                "interface",
                f"compute-9-{i}",
                "eth0",
                f"02:00:00:03:00:{i:02x}",
                f"ip=10.1.9.{i + 1}",
                "subnet=private",
            )
            sample.append(time.perf_counter() - t)
    registered = sum(1 for a in answers if a.startswith("discovered"))
    per_node = sorted(sample)[len(sample) // 2]
    print(f"# Discovery, {opts.macs} unknown MACs at once — {datetime.date.today()} — {machine()}")
    print()
    print("| how | registered | unique names and IPs | time |")
    print("| --- | --- | --- | --- |")
    verdict = "yes" if unique else "NO"
    print(
        f"| provisionerd, lease reports in parallel | {registered}/{opts.macs} | {verdict} "
        f"| {elapsed:.2f} s |"
    )
    print(
        "| Rocks' way: add host + add host interface processes per node, in turn "
        f"(from {len(sample)}) "
        f"| | | {per_node * opts.macs:.1f} s |"
    )
    ok = registered == opts.macs and unique and elapsed <= 5
    print()
    print("targets met" if ok else "TARGETS MISSED (all registered, unique, <= 5 s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
