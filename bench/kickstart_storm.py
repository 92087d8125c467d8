"""Kickstart storm (issue 4): 1,000 hosts, each asking for its kickstart from its own source
address (127.1.x.y: every host's private IP is one of those), against provisionerd's HTTP
service as it runs in production (gunicorn, the same command line).

Two loads in one run:
- open loop: requests arrive at a fixed rate (default 1,000/s) round-robin over the 1,000
  hosts for a fixed count; we report the rate achieved, latency percentiles, errors and 503s;
- closed loop: N clients (default 64) ask as fast as they can; we report the capacity.

Beside it, what a Rocks user had: one `rocks list host profile` process per kickstart
(kickstart.cgi spawned the rocks command), measured on a sample and extrapolated.

Usage: .venv/bin/python bench/kickstart_storm.py [--hosts 1000] [--rate 1000] [--count 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def host_ip(i: int) -> str:
    return f"127.1.{i // 250}.{i % 250 + 1}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


async def fetch(ip: str, port: int, timeout: float = 10.0) -> tuple[int, float, int]:
    """One kickstart request from source address `ip`: (status, seconds, body bytes)."""
    start = time.perf_counter()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.bind((ip, 0))
    try:
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), timeout)
        await loop.sock_sendall(
            sock,
            b"GET /install/sbin/kickstart.cgi HTTP/1.0\r\nHost: fe\r\nConnection: close\r\n\r\n",
        )
        chunks = []
        while True:
            data = await asyncio.wait_for(loop.sock_recv(sock, 65536), timeout)
            if not data:
                break
            chunks.append(data)
        raw = b"".join(chunks)
        status = int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/") else 0
        body = len(raw) - raw.find(b"\r\n\r\n") - 4 if b"\r\n\r\n" in raw else 0
        return status, time.perf_counter() - start, body
    except (TimeoutError, OSError):
        return 0, time.perf_counter() - start, 0
    finally:
        sock.close()


async def open_loop(
    port: int, hosts: int, rate: float, count: int
) -> tuple[list[tuple[int, float, int]], float]:
    tasks = []
    start = time.perf_counter()
    for n in range(count):
        due = start + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(fetch(host_ip(n % hosts), port)))
    results = await asyncio.gather(*tasks)
    return list(results), time.perf_counter() - start


async def closed_loop(
    port: int, hosts: int, clients: int, count: int
) -> tuple[list[tuple[int, float, int]], float]:
    results: list[tuple[int, float, int]] = []
    counter = iter(range(count))

    async def client() -> None:
        for n in counter:
            results.append(await fetch(host_ip(n % hosts), port))

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
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
    ap.add_argument("--rate", type=float, default=1000)
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--workers", type=int, default=0)
    opts = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-storm-") as tmp:
        home = Path(tmp)
        env = make_cluster(home, opts.hosts)
        port = free_port()
        env.update(PROVISIONER_HTTP_ADDRESS="127.0.0.1", PROVISIONER_HTTP_PORT=str(port))
        if opts.workers:
            env["PROVISIONER_HTTP_WORKERS"] = str(opts.workers)
        from provisioner.config import Config
        from provisioner.daemon import service_commands

        config = Config.load(env=env)
        argv = service_commands(config)["http"]
        argv = [a for a in argv if a not in ("--access-logfile", "-")]
        server = subprocess.Popen(
            argv,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.2)
            # Warm-up: every host once (each worker's caches fill), not measured.
            asyncio.run(closed_loop(port, opts.hosts, 16, opts.hosts))
            storm, storm_s = asyncio.run(open_loop(port, opts.hosts, opts.rate, opts.count))
            capacity, cap_s = asyncio.run(closed_loop(port, opts.hosts, opts.clients, opts.count))
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
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
        and rows[0]["rate"] >= 1000 * 0.99
        and rows[0]["p99"] <= 100
    )
    print()
    print("targets met" if ok else "TARGETS MISSED (>= 1,000/s, p99 <= 100 ms, 0 errors, no 503)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
