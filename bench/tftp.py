"""TFTP benchmark: N clients fetch a large file at once from our TftpService and from tftpd-hpa
(`in.tftpd -L`, same files, same client), side by side, every download checksummed.

    .venv/bin/python bench/tftp.py [--clients 16] [--size-mb 32] [--blksize 1468] [--rounds 3]

Target (issue 4): our wall time <= 1.5x tftpd-hpa's, 0 corrupt. "provisioner" runs with
`default_workers()` processes (one per core but one: what provisionerd should use), the last
column with the other choice (2 processes when the default is 1, else 1) for comparison.
This machine's cores are shared, so each round runs the servers back to back
(rotating which goes first) and the verdict is the median of the rounds' ratios. tftpd-hpa
forks per transfer and reaps its children without accounting, so only our CPU time is shown.
Everything runs on 127.0.0.1; every server and client is stopped before the next starts.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from netutil import cpu_seconds, free_port, load, machine, median, process, stamp, wait_udp

REPO = Path(__file__).resolve().parent.parent
TARGET = 1.5
PROBE = b"\x00\x01no-such-file\x00octet\x00"


def client_argv(kind: str, port: int, name: str, out: Path, blksize: int) -> list[str]:
    if kind == "curl":
        return [
            "curl", "-s", "-S", "--max-time", "120", "--tftp-blksize", str(blksize),
            "-o", str(out), f"tftp://127.0.0.1:{port}/{name}",
        ]  # fmt: skip
    return [
        "atftp", "--get", "-r", name, "-l", str(out), "--option", f"blksize {blksize}",
        "127.0.0.1", str(port),
    ]  # fmt: skip


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def run_clients(args: argparse.Namespace, port: int, work: Path, digest: str) -> tuple[float, int]:
    """Wall time for all clients, and how many downloads were missing or corrupt."""
    outs = [work / f"out-{i}" for i in range(args.clients)]
    for out in outs:
        out.unlink(missing_ok=True)
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            client_argv(args.client, port, "big.bin", out, args.blksize),
            stdout=subprocess.DEVNULL,
        )
        for out in outs
    ]
    bad = 0
    for p in procs:
        try:
            bad += p.wait(timeout=150) != 0
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            bad += 1
    wall = time.perf_counter() - start
    for out in outs:
        if not out.exists() or sha256(out) != digest:
            bad += 1
        out.unlink(missing_ok=True)
    return wall, bad


def measure(
    name: str, args: argparse.Namespace, root: Path, work: Path, digest: str
) -> tuple[float, int, float]:
    port = free_port()
    if name == "tftpd-hpa":
        argv = [args.tftpd, "-L", "-s", str(root), "-a", f"127.0.0.1:{port}"]
    else:
        workers = args.workers if name == "provisioner" else int(name.split()[0])
        argv = [sys.executable, "-m", "provisioner.pxe.tftp", str(root), "127.0.0.1", str(port)]
        argv += ["--workers", str(workers)]
    with process(argv, cwd=REPO, stdout=subprocess.DEVNULL) as proc:
        wait_udp("127.0.0.1", port, PROBE)
        before = cpu_seconds(proc.pid)
        wall, bad = run_clients(args, port, work, digest)
        time.sleep(0.2)  # let the forking server reap its children, so their CPU is counted
        cpu = cpu_seconds(proc.pid) - before
    return wall, bad, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--size-mb", type=int, default=32)
    parser.add_argument("--blksize", type=int, default=1468)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--client", choices=["curl", "atftp"], default="curl")
    parser.add_argument("--tftpd", default="/usr/sbin/in.tftpd")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    if args.workers is None:
        from provisioner.pxe.tftp import default_workers

        args.workers = default_workers()
    if not os.path.exists(args.tftpd) or not shutil.which(args.client):
        print(f"needs {args.tftpd} (tftpd-hpa) and {args.client}", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="bench-tftp-") as tmp:
        root, work = Path(tmp) / "root", Path(tmp) / "work"
        root.mkdir()
        work.mkdir()
        big = root / "big.bin"
        with big.open("wb") as fh:
            for _ in range(args.size_mb):
                fh.write(os.urandom(1 << 20))
        digest = sha256(big)

        print(f"TFTP: {args.clients} clients x {args.size_mb} MB, blksize {args.blksize}, "
              f"client {args.client}, {args.rounds} rounds")  # fmt: skip
        print(f"machine: {machine()}")
        print(f"date: {stamp()}; {load()} at start")
        alt = f"{2 if args.workers == 1 else 1} proc"
        names = ["tftpd-hpa", "provisioner", alt]
        print(f"{'round':<7}{'tftpd-hpa s':>12}{'provisioner s':>15}{alt + ' s':>10}"
              f"{'our cpu s':>11}")  # fmt: skip
        results: dict[str, list[tuple[float, int, float]]] = {n: [] for n in names}
        for r in range(args.rounds):
            for name in names[r % 3 :] + names[: r % 3]:
                results[name].append(measure(name, args, root, work, digest))
            hpa, ours, other = (results[n][-1] for n in names)
            print(f"{r + 1:<7}{hpa[0]:>12.2f}{ours[0]:>15.2f}{other[0]:>10.2f}{ours[2]:>11.2f}")

        walls = {n: median([w for w, _, _ in results[n]]) for n in names}
        bad = {n: sum(b for _, b, _ in results[n]) for n in names}
        # Each round's servers ran back to back, so a round's ratio sees the same neighbours;
        # the median of those ratios is the verdict (the ratio of medians is shown too).
        paired = {
            n: median([o[0] / h[0] for o, h in zip(results[n], results["tftpd-hpa"], strict=True)])
            for n in names[1:]
        }
        ratio = paired["provisioner"]
        total = args.clients * args.rounds
        mb = args.clients * args.size_mb
        print(f"{'median':<7}{walls['tftpd-hpa']:>12.2f}{walls['provisioner']:>15.2f}"
              f"{walls[alt]:>10.2f}")  # fmt: skip
        print(f"throughput MB/s: tftpd-hpa {mb / walls['tftpd-hpa']:.0f}, provisioner "
              f"{mb / walls['provisioner']:.0f} ({args.workers} process(es)), {alt} "
              f"{mb / walls[alt]:.0f}")  # fmt: skip
        print(f"ratio (median of the rounds' ratios): provisioner {ratio:.2f}x tftpd-hpa's time "
              f"(target <= {TARGET}x); {alt} {paired[alt]:.2f}x")  # fmt: skip
        print(f"ratio of the medians: provisioner "
              f"{walls['provisioner'] / walls['tftpd-hpa']:.2f}x, {alt} "
              f"{walls[alt] / walls['tftpd-hpa']:.2f}x")  # fmt: skip
        print("corrupt or failed downloads: " + ", ".join(f"{n} {bad[n]}/{total}" for n in names))
        corrupt = bad["provisioner"] + bad[alt]
        print(f"date: {stamp()}; {load()} at end")
        ok = ratio <= TARGET and corrupt == 0
        print("PASS" if ok else "FAIL")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
