"""Kickstart storm (issue 4): 1,000 hosts, each asking for its kickstart from its own source
address (127.1.x.y: every host's private IP is one of those), against provisionerd's HTTP
service as it runs in production (gunicorn, the same command line).

Two loads in one run:
- open loop: requests arrive at a fixed rate (default 1,100/s) round-robin over the 1,000
  hosts for a fixed count; we report the rate achieved, latency percentiles, errors and 503s;
- closed loop: N clients (default 64) ask as fast as they can; we report the capacity.

Beside it, what a Rocks user had: one `rocks list host profile` process per kickstart
(kickstart.cgi spawned the rocks command), measured on a sample and extrapolated.

Usage: .venv/bin/python bench/kickstart_storm.py [--hosts 1000] [--rate 1100] [--count 6000]
"""

from __future__ import annotations

import argparse
import datetime
import os
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from netutil import http_service, machine  # noqa: E402

BIN = Path(sys.executable).parent


def host_ip(i: int) -> str:
    return f"127.1.{i // 250}.{i % 250 + 1}"


def make_cluster(home: Path, hosts: int) -> dict[str, str]:
    env = {**os.environ, "PROVISIONER_HOME": str(home)}
    env.pop("PROVISIONER_DATABASE_URL", None)
    subprocess.run(
        [
            BIN / "rocks",
            "init",
            "frontend",
            "Kickstart_PrivateHostname=fe",
            "Kickstart_PrivateAddress=127.0.0.1",
            "Kickstart_PrivateNetwork=127.0.0.0",
            "Kickstart_PrivateNetmask=255.0.0.0",
            "Kickstart_PublicAddress=192.0.2.10",
        ],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    lines = []
    for i in range(hosts):
        name = f"compute-{i // 250}-{i % 250}"
        mac = f"02:00:00:01:{i // 256:02x}:{i % 256:02x}"
        lines.append(f"add host {name}")
        lines.append(f"add host interface {name} eth0 {mac} ip={host_ip(i)} subnet=private")
    subprocess.run([BIN / "rocks", "batch"], env=env, input="\n".join(lines), text=True, check=True)
    return env


REQUEST = b"GET /install/sbin/kickstart.cgi HTTP/1.0\r\nHost: fe\r\nConnection: close\r\n\r\n"


def run_load(
    port: int, hosts: int, count: int, rate: float | None = None, clients: int = 64
) -> tuple[list[tuple[int, float, int]], float]:
    """`count` kickstart requests, each from its host's own source address, on one selector
    loop (asyncio costs the client more CPU than the server spends answering, on a machine
    where both share two cores). Open loop at `rate` per second, or `clients` at a time.
    Returns [(status, seconds, body bytes)] and the elapsed time."""
    sel = selectors.DefaultSelector()
    results: list[tuple[int, float, int]] = []
    issued = 0
    inflight = 0
    start = time.perf_counter()
    deadline = start + count / (rate or 100) + 60

    def launch(n: int) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.bind((host_ip(n % hosts), 0))
        sock.connect_ex(("127.0.0.1", port))
        sel.register(sock, selectors.EVENT_WRITE, [time.perf_counter(), bytearray(), False])

    def finish(sock: socket.socket, state: list, status_ok: bool) -> None:
        sel.unregister(sock)
        sock.close()
        raw = bytes(state[1])
        status = int(raw.split(b" ", 2)[1]) if status_ok and raw.startswith(b"HTTP/") else 0
        head_end = raw.find(b"\r\n\r\n")
        body = len(raw) - head_end - 4 if head_end >= 0 else 0
        results.append((status, time.perf_counter() - state[0], body))

    while len(results) < count and time.perf_counter() < deadline:
        now = time.perf_counter()
        if rate:
            while issued < count and start + issued / rate <= now:
                launch(issued)
                issued += 1
                inflight += 1
            wait = max(0.0, start + issued / rate - now) if issued < count else 0.05
        else:
            while issued < count and inflight < clients:
                launch(issued)
                issued += 1
                inflight += 1
            wait = 0.05
        for key, _mask in sel.select(min(wait, 0.05)):
            sock, state = key.fileobj, key.data
            assert isinstance(sock, socket.socket)
            if not state[2]:
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    finish(sock, state, False)
                    inflight -= 1
                    continue
                sock.send(REQUEST)
                state[2] = True
                sel.modify(sock, selectors.EVENT_READ, state)
                continue
            try:
                data = sock.recv(262144)
            except BlockingIOError:
                continue
            except OSError:
                finish(sock, state, False)
                inflight -= 1
                continue
            if data:
                state[1] += data
            else:
                finish(sock, state, True)
                inflight -= 1
    for key in list(sel.get_map().values()):
        finish(key.fileobj, key.data, False)  # type: ignore[arg-type]
    return results, time.perf_counter() - start


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def summarize(
    name: str, results: list[tuple[int, float, int]], seconds: float
) -> dict[str, object]:
    ok = [r for r in results if r[0] == 200 and r[2] > 1000]
    lat = [r[1] * 1000 for r in results]
    return {
        "load": name,
        "requests": len(results),
        "ok": len(ok),
        "errors": len(results) - len(ok),
        "busy_503": sum(1 for r in results if r[0] == 503),
        "rate": len(ok) / seconds,
        "p50": statistics.median(lat),
        "p99": pct(lat, 99),
        "max": max(lat),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=1100)
    ap.add_argument("--count", type=int, default=6000)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--workers", type=int, default=0)
    opts = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-storm-") as tmp:
        home = Path(tmp)
        env = make_cluster(home, opts.hosts)
        if opts.workers:
            env["PROVISIONER_HTTP_WORKERS"] = str(opts.workers)
        with http_service(env) as port:
            # Warm-up: every host once (each worker's caches fill), not measured.
            run_load(port, opts.hosts, opts.hosts, clients=16)
            storm, storm_s = run_load(port, opts.hosts, opts.count, rate=opts.rate)
            capacity, cap_s = run_load(port, opts.hosts, opts.count, clients=opts.clients)
        sample = []
        for i in range(5):
            t = time.perf_counter()
            subprocess.run(
                [BIN / "rocks", "list", "host", "profile", f"compute-0-{i}"],
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            sample.append(time.perf_counter() - t)
    rows = [
        summarize(f"open loop, {opts.rate:.0f}/s offered, {opts.hosts} source IPs", storm, storm_s),
        summarize(f"closed loop, {opts.clients} clients", capacity, cap_s),
    ]
    print(f"# Kickstart storm, {opts.hosts} hosts — {datetime.date.today()} — {machine()}")
    print()
    print("| load | requests | ok | errors | 503 | kickstarts/s | p50 ms | p99 ms | max ms |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['load']} | {r['requests']} | {r['ok']} | {r['errors']} | {r['busy_503']} | "
            f"{r['rate']:.0f} | {r['p50']:.1f} | {r['p99']:.1f} | {r['max']:.1f} |"
        )
    per = statistics.median(sample)
    print(
        f"| Rocks' way: a `rocks list host profile` process per kickstart (from {len(sample)}) "
        f"| | | | | {1 / per:.1f} (one at a time) | {per * 1000:.0f} | | |"
    )
    ok = (
        rows[0]["errors"] == 0
        and rows[0]["busy_503"] == 0
        and rows[0]["rate"] >= 1000
        and rows[0]["p99"] <= 100
    )
    print()
    print("targets met" if ok else "TARGETS MISSED (>= 1,000/s, p99 <= 100 ms, 0 errors, no 503)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
