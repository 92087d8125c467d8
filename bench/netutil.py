"""Small helpers shared by the network benchmarks: free loopback ports, processes started in
their own session and always stopped, CPU time read from /proc, and the machine line every
benchmark prints."""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port(address: str = "127.0.0.1", kind: int = socket.SOCK_DGRAM) -> int:
    """A port free for `kind` on `address` (and for TCP too, so a DNS server can take both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind((address, 0))
            port = int(s.getsockname()[1])
        other = socket.SOCK_STREAM if kind == socket.SOCK_DGRAM else socket.SOCK_DGRAM
        with socket.socket(socket.AF_INET, other) as s:
            try:
                s.bind((address, port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port on {address}")


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def stamp() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


def cpu_seconds(pid: int) -> float:
    """User + system time of a process, of its live descendants and of its reaped children
    (as far as the kernel accounts them: children reaped through SIG_IGN are not)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # After the command: state is field 3, utime 14, stime 15, cutime 16, cstime 17.
    total = sum(int(fields[i - 3]) for i in (14, 15, 16, 17)) / CLK_TCK
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        total += sum(cpu_seconds(int(child)) for child in children)
    return total


@contextlib.contextmanager
def process(argv: Sequence[str], ready: float = 0.0, **kw: object) -> Iterator[subprocess.Popen]:
    """Run a server in its own session for the `with` block, then stop it (TERM, then KILL)."""
    proc = subprocess.Popen(list(argv), start_new_session=True, **kw)  # type: ignore[call-overload]
    try:
        if ready:
            time.sleep(ready)
        if proc.poll() is not None:
            raise RuntimeError(f"{argv[0]} exited at once with status {proc.returncode}")
        yield proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen, grace: float = 3.0) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(grace)


def wait_udp(address: str, port: int, probe: bytes, timeout: float = 10.0) -> None:
    """Wait until something answers `probe` on a UDP port."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        while time.monotonic() < deadline:
            s.sendto(probe, (address, port))
            try:
                s.recvfrom(65536)
                return
            except OSError:
                continue
    raise RuntimeError(f"nothing answers on {address}:{port}/udp")


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2


@contextlib.contextmanager
def http_service(env: dict[str, str], workers: int = 2) -> Iterator[int]:
    """provisionerd as it runs in production (nginx in front of gunicorn, TFTP; DNS off) on a
    free loopback port, for the time of the block; yields the HTTP port."""
    from provisioner.testing.daemon import Provisionerd

    settings = {k: v for k, v in env.items() if k.startswith("PROVISIONER_")}
    home = Path(settings.pop("PROVISIONER_HOME"))
    with Provisionerd(home, env=settings, workers=workers) as server:
        yield server.http_port


def compile_package() -> None:
    """Bytecode for the package, so every `rocks` process timed starts as it would installed
    (some environments switch writing bytecode off)."""
    root = Path(__file__).resolve().parent.parent / "provisioner"
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(root)], check=True)
