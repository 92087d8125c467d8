"""DNS benchmark: dnsperf on 1,000 host names against our DNS service and against dnsmasq
serving the same names (an addn-hosts file), side by side in one run.

    .venv/bin/python bench/dns.py [--hosts 1000] [--seconds 10] [--rounds 3] [--clients 8]

Target (issue 4): our queries/s >= 0.5x dnsmasq's (below 0.3x is not done), 0 lost queries.
The cluster is made with `rocks init frontend` and `rocks batch` in a temporary
PROVISIONER_HOME; our service runs as provisionerd runs it (`python -m provisioner.dns` with
`default_workers()` processes: one per core but one), and with the other choice (2 processes
when the default is 1, else 1) for comparison. Servers listen on distinct 127.0.0.x
addresses and are stopped after each measurement; each round runs the servers back to back
(rotating which goes first) and the verdict is the median of the rounds' ratios, because this
machine's cores are shared.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from netutil import cpu_seconds, free_port, load, machine, median, process, stamp, wait_udp

REPO = Path(__file__).resolve().parent.parent
TARGET, FLOOR = 0.5, 0.3
ATTRS = [
    "Kickstart_PrivateHostname=frontend",
    "Kickstart_PublicHostname=frontend.example.org",
    "Kickstart_PublicAddress=137.110.119.114",
    "Kickstart_PublicNetmask=255.255.255.0",
    "Kickstart_PublicGateway=137.110.119.1",
    "Kickstart_PublicDNSDomain=example.org",
]
# A query for compute-0-0.local A, id 0x1234: the readiness probe.
PROBE = bytes.fromhex("123401000001000000000000") + b"\x0bcompute-0-0\x05local\x00\x00\x01\x00\x01"


def host_ip(i: int) -> str:
    n = 0xFFFE - i  # counting down from 10.1.255.254, as discovery does
    return f"10.1.{n >> 8}.{n & 0xFF}"


def make_cluster(home: Path, hosts: int) -> None:
    env = {**os.environ, "PROVISIONER_HOME": str(home)}
    rocks = [str(Path(sys.executable).with_name("rocks"))]
    subprocess.run([*rocks, "init", "frontend", *ATTRS], env=env, check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    lines = []
    for i in range(hosts):
        lines.append(f"add host compute-0-{i}")
        lines.append(f"add host interface compute-0-{i} eth0 ip={host_ip(i)} subnet=private")
    batch = home / "hosts.rocks"
    batch.write_text("\n".join(lines) + "\n")
    subprocess.run([*rocks, "batch", str(batch), "stop-on-error=yes"], env=env, check=True,
                   cwd=REPO, stdout=subprocess.DEVNULL)  # fmt: skip


def run_dnsperf(args: argparse.Namespace, address: str, port: int, queries: Path) -> dict:
    out = subprocess.run(
        ["dnsperf", "-s", address, "-p", str(port), "-d", str(queries), "-l", str(args.seconds),
         "-c", str(args.clients), "-T", str(args.threads), "-q", str(args.outstanding),
         "-t", "2"],
        capture_output=True, text=True, timeout=args.seconds + 60,
    )  # fmt: skip
    text = out.stdout
    stats = {}
    for key, pattern in (
        ("sent", r"Queries sent:\s+(\d+)"),
        ("completed", r"Queries completed:\s+(\d+)"),
        ("lost", r"Queries lost:\s+(\d+)"),
        ("qps", r"Queries per second:\s+([\d.]+)"),
        ("latency", r"Average Latency \(s\):\s+([\d.]+)"),
    ):
        m = re.search(pattern, text)
        if m is None:
            raise RuntimeError(f"dnsperf output not understood:\n{text}\n{out.stderr}")
        stats[key] = float(m.group(1))
    noerror = re.search(r"NOERROR (\d+)", text)
    stats["noerror"] = float(noerror.group(1)) if noerror else 0.0
    return stats


def measure(name: str, args: argparse.Namespace, home: Path, queries: Path) -> dict:
    if name == "dnsmasq":
        address, port = "127.0.0.53", free_port("127.0.0.53")
        argv = [
            args.dnsmasq, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
            "--no-hosts", f"--addn-hosts={home / 'addn-hosts'}", "--local=/local/",
            f"--port={port}", f"--listen-address={address}", "--bind-interfaces",
            "--pid-file=", "--user=root", "--cache-size=10000",
        ]  # fmt: skip
        env = None
    else:
        address, port = "127.0.0.54", free_port("127.0.0.54")
        workers = args.workers if name == "provisioner" else int(name.split()[0])
        argv = [sys.executable, "-m", "provisioner.dns", "--address", address, "--port",
                str(port), "--workers", str(workers)]  # fmt: skip
        env = {**os.environ, "PROVISIONER_HOME": str(home), "PROVISIONER_DNS_UPSTREAMS": ""}
    with process(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL) as proc:
        wait_udp(address, port, PROBE)
        time.sleep(0.5)  # every worker process listening
        before = cpu_seconds(proc.pid)
        stats = run_dnsperf(args, address, port, queries)
        stats["cpu"] = cpu_seconds(proc.pid) - before
    return stats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--outstanding", type=int, default=100)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--dnsmasq", default=shutil.which("dnsmasq") or "/usr/sbin/dnsmasq")
    args = parser.parse_args()
    if args.workers is None:
        from provisioner.dns import default_workers

        args.workers = default_workers()
    if not shutil.which("dnsperf") or not os.path.exists(args.dnsmasq):
        print("needs dnsperf and dnsmasq", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="bench-dns-") as tmp:
        home = Path(tmp)
        started = time.monotonic()
        make_cluster(home, args.hosts)
        setup = time.monotonic() - started
        names = [f"compute-0-{i}.local" for i in range(args.hosts)]
        (home / "addn-hosts").write_text(
            "".join(f"{host_ip(i)} {name}\n" for i, name in enumerate(names))
        )
        queries = home / "queries.txt"
        queries.write_text("".join(f"{name} A\n" for name in names))

        print(f"DNS: dnsperf, {args.hosts} names (A), {args.seconds} s per run, {args.clients} "
              f"clients, {args.outstanding} outstanding, {args.rounds} rounds; our service with "
              f"{args.workers} processes; cluster made in {setup:.1f} s")  # fmt: skip
        print(f"machine: {machine()}")
        print(f"date: {stamp()}; {load()} at start")
        alt = f"{2 if args.workers == 1 else 1} proc"
        names_ = ["dnsmasq", "provisioner", alt]
        print(f"{'round':<7}{'dnsmasq q/s':>13}{'provisioner q/s':>17}{alt + ' q/s':>12}"
              f"{'lost d/p/alt':>12}{'our cpu s':>11}")  # fmt: skip
        results: dict[str, list[dict]] = {n: [] for n in names_}
        for r in range(args.rounds):
            k = r % len(names_)
            for name in names_[k:] + names_[:k]:
                results[name].append(measure(name, args, home, queries))
            d, p = results["dnsmasq"][-1], results["provisioner"][-1]
            one = results[alt][-1]
            lost_row = f"{d['lost']:.0f}/{p['lost']:.0f}/{one['lost']:.0f}"
            print(f"{r + 1:<7}{d['qps']:>13.0f}{p['qps']:>17.0f}{one['qps']:>12.0f}"
                  f"{lost_row:>12}{p['cpu']:>11.2f}")  # fmt: skip

        qps = {n: median([s["qps"] for s in results[n]]) for n in names_}
        lost = {n: sum(s["lost"] for s in results[n]) for n in names_}
        wrong = sum(s["completed"] - s["noerror"] for n in names_[1:] for s in results[n])
        # Each round's servers ran back to back, so a round's ratio sees the same neighbours;
        # the median of those ratios is the verdict (the ratio of medians is shown too).
        paired = {
            n: median(
                [o["qps"] / d["qps"] for o, d in zip(results[n], results["dnsmasq"], strict=True)]
            )
            for n in names_[1:]
        }
        ratio = paired["provisioner"]
        print(f"{'median':<7}{qps['dnsmasq']:>13.0f}{qps['provisioner']:>17.0f}"
              f"{qps[alt]:>12.0f}")  # fmt: skip
        print(f"ratio (median of the rounds' ratios): provisioner {ratio:.2f}x dnsmasq's "
              f"queries/s (target >= {TARGET}x, floor {FLOOR}x); {alt} "
              f"{paired[alt]:.2f}x")  # fmt: skip
        print(f"ratio of the medians: provisioner {qps['provisioner'] / qps['dnsmasq']:.2f}x, "
              f"{alt} {qps[alt] / qps['dnsmasq']:.2f}x")  # fmt: skip
        print("lost queries: " + ", ".join(f"{n} {lost[n]:.0f}" for n in names_)
              + f"; our answers other than NOERROR: {wrong:.0f}")  # fmt: skip
        print(f"date: {stamp()}; {load()} at end")
        ok = ratio >= TARGET and lost["provisioner"] == 0 and wrong == 0
        print(
            "PASS" if ok else ("FAIL" if ratio < FLOOR or lost["provisioner"] else "BELOW TARGET")
        )
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
