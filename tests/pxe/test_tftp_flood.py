"""TFTP under a flood (issue 9): stalled requests from many loopback addresses, or from one,
must not keep a real node from its boot config and loader.

The flood runs in its own process (`python -m provisioner.pxe.tftp.client --hold`), so its
sockets do not count against this process's open files and its CPU is not the service's GIL.
Its sockets stay open and silent until the test ends: a closed socket would make the kernel
answer ICMP port unreachable, which ends the transfer at once and would prove nothing. The real
node asks from 127.0.0.2, outside the flood's 127.9.0.0/16.
"""

from __future__ import annotations

import contextlib
import json
import logging
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioner.pxe.tftp.client import fetch, parse_oack, request_packet
from provisioner.pxe.tftp.service import TftpService

REPO = Path(__file__).resolve().parents[2]
MAC = "52-54-00-12-34-56"
CONFIG = f"pxelinux.cfg/01-{MAC}"
NODE = "127.0.0.2"
BUDGET = 3.0  # seconds for the real node to get both files, flood or not


def loader_bytes() -> bytes:
    return bytes((i * 31 + i // 251) & 0xFF for i in range(42_000))


def config_for(path: str) -> bytes:
    return f"default install\n# {path}\nlabel install\n  kernel vmlinuz\n".encode()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    (root / "pxelinux.0").write_bytes(loader_bytes())
    (root / "big").write_bytes(bytes(range(256)) * 1200)
    return root


def dynamic(path: str, client: tuple[str, int]) -> bytes | None:
    return config_for(path) if path.startswith("pxelinux.cfg/01-") else None


@pytest.fixture
def serve(root: Path) -> Iterator:
    started: list[TftpService] = []

    def start(**kw) -> TftpService:
        kw.setdefault("dynamic", dynamic)
        service = TftpService(root, "127.0.0.1", 0, **kw)
        service.start_thread()
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


@contextlib.contextmanager
def flood(
    port: int,
    count: int,
    *,
    network: str = "127.9.0.0",
    per_source: int = 4,
    ack: bool = False,
    paths: tuple[str, ...] = ("pxelinux.cfg/01-52-54-00-aa-00-01", "pxelinux.0"),
    options: tuple[str, ...] = ("timeout=30", "tsize=0"),
) -> Iterator[dict]:
    """Stalled requests held by a separate process for the `with` block; yields a dict with
    `sent` at once and, after the block, `replies` (counts by kind)."""
    argv = [sys.executable, "-m", "provisioner.pxe.tftp.client", "--hold", str(count)]
    argv += ["--network", network, "--per-source", str(per_source), "--seconds", "60"]
    argv += [a for o in options for a in ("--option", o)]
    argv += ["--ack"] if ack else []
    argv += ["127.0.0.1", str(port), *paths]
    proc = subprocess.Popen(
        argv, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    info: dict = {}
    try:
        info.update(json.loads(_line(proc, 30)))
        assert info["sent"] == count
        yield info
        proc.stdin.close()
        info["replies"] = json.loads(_line(proc, 15))
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            with contextlib.suppress(OSError):
                pipe.close()


def _line(proc: subprocess.Popen, timeout: float) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "the flood process did not answer"
    line = proc.stdout.readline()
    assert line, "the flood process ended"
    return line


def boot(service: TftpService) -> float:
    """A node's two files, as pxelinux asks them (tsize and blksize); seconds it took."""
    start = time.monotonic()
    opts = {"blksize": 1468, "tsize": 0}
    kw = {"options": opts, "timeout": 0.5, "retries": 5, "source": NODE}
    cfg = fetch("127.0.0.1", service.port, CONFIG, **kw)
    loader = fetch("127.0.0.1", service.port, "pxelinux.0", **kw)
    took = time.monotonic() - start
    assert cfg.data == config_for(CONFIG)
    assert loader.data == loader_bytes()
    return took


def wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.mark.parametrize(
    ("count", "workers"),
    [(1_100, 1), (10_000, 1), (1_100, 2), (10_000, 2)],
    ids=["1100", "10000", "1100-helpers", "10000-helpers"],
)
def test_real_node_boots_through_stalled_requests(serve, count, workers):
    """Today's attack: stalled requests (timeout=30, never acknowledged) from 4 ports of each
    of many addresses; a node asking after them gets its config and loader within 3 s."""
    service = serve(workers=workers)
    with flood(service.port, count) as info:
        took = boot(service)
        assert took < BUDGET, f"the node waited {took:.2f} s behind {count} stalled requests"
        assert service.stats["transfers"] >= 200  # the flood was served, and held transfers
    assert service.unconfirmed_transfers <= service.max_unconfirmed
    # The flood got answers (so it really held transfers), and the service never said busy.
    assert info["replies"].get("oack", 0) > 0
    assert service.stats["busy"] == 0


def test_real_node_and_big_files_with_helpers_under_flood(serve, root):
    """With helper processes, transfers move to a helper once confirmed, the flood stays
    here, and the confirmed/unconfirmed counts come back to zero."""
    service = serve(workers=2)
    with flood(service.port, 2_000) as _:
        results: list[bytes] = []
        threads = [
            threading.Thread(
                target=lambda i=i: results.append(
                    fetch("127.0.0.1", service.port, "big", options={"blksize": 1468},
                          source=f"127.0.1.{i + 1}", timeout=1.0).data
                )
            )
            for i in range(4)
        ]  # fmt: skip
        for t in threads:
            t.start()
        assert boot(service) < BUDGET
        for t in threads:
            t.join(15)
        assert results == [(root / "big").read_bytes()] * 4
        assert service.stats["handed_over"] >= 1
    assert wait_until(lambda: service.active_transfers == 0, 5)
    assert service.confirmed_transfers == 0 and service.unconfirmed_transfers == 0
    assert service.requests_from(NODE) == 0


def test_one_address_cannot_take_the_slots_of_others(serve):
    """1,100 requests from one address and as many ports, each acknowledging its first packet
    (confirmed, then stalled): the address gets max_per_client slots, the rest an error, and
    another node still boots."""
    service = serve()
    flooder = "127.9.200.1"
    with flood(service.port, 1_100, network="127.9.200.0", per_source=1_100, ack=True) as info:
        assert wait_until(lambda: service.stats["requests"] >= 1_100, 10)
        time.sleep(0.2)  # the flood's acknowledgements arrive
        assert boot(service) < BUDGET
        assert service.requests_from(flooder) <= service.max_per_client
        # The node has its last block before the service reads the final ACK: wait for that,
        # or the node's transfer is still counted.
        assert wait_until(lambda: service.requests_from(NODE) == 0, 2)
        assert service.confirmed_transfers <= service.max_per_client
    assert service.stats["client_limit"] >= 1_100 - service.max_per_client
    assert info["replies"]["error"] >= 1_100 - service.max_per_client
    assert service.stats["busy"] == 0


@pytest.mark.parametrize("asked", [255, 30])
def test_unacknowledged_transfer_is_forgotten_quickly(serve, asked):
    """A client that asks a long timeout and never acknowledges is dropped within the short
    budget (2.5 s), after at most two resends; a timeout above 5 s is not accepted."""
    service = serve(dynamic=None)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.3", 0))
        s.settimeout(0.2)
        start = time.monotonic()
        s.sendto(
            request_packet("pxelinux.0", options={"timeout": asked, "tsize": 0}),
            ("127.0.0.1", service.port),
        )
        assert wait_until(lambda: service.active_transfers == 1, 1)
        assert wait_until(lambda: service.active_transfers == 0, 3.0), (
            f"still held {time.monotonic() - start:.1f} s after the request"
        )
        assert time.monotonic() - start < 3.0
        assert service.unconfirmed_transfers == 0
        assert service.stats["unacknowledged"] == 1
        packets = []
        with contextlib.suppress(TimeoutError):
            while True:
                packets.append(s.recv(2048))
    oacks = [p for p in packets if p[:2] == b"\x00\x06"]
    assert 1 <= len(oacks) <= 3
    assert parse_oack(oacks[0]) == {"tsize": str(len(loader_bytes()))}


def test_confirmed_transfer_without_progress_ends_within_15_s(serve):
    """timeout=5 is accepted; a client that acknowledges the OACK and then stalls loses its
    transfer after the stall budget (10 s), not after retries x timeout (30 s)."""
    service = serve(dynamic=None)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.4", 0))
        s.settimeout(16)
        start = time.monotonic()
        s.sendto(request_packet("pxelinux.0", options={"timeout": 5}), ("127.0.0.1", service.port))
        oack, peer = s.recvfrom(2048)
        assert parse_oack(oack) == {"timeout": "5"}
        s.sendto(b"\x00\x04\x00\x00", peer)
        assert s.recv(2048)[:4] == b"\x00\x03\x00\x01"
        assert wait_until(lambda: service.active_transfers == 1, 1)
        while (packet := s.recv(2048))[:2] != b"\x00\x05":
            assert packet[:4] == b"\x00\x03\x00\x01"  # resends of block 1 only
            took = time.monotonic() - start
            assert took < 15.5, f"still resending {took:.1f} s after the last ACK"
        took = time.monotonic() - start
    assert 9.5 < took < 15.5, took
    assert wait_until(lambda: service.active_transfers == 0, 1)


def test_queued_dynamic_requests_are_bounded(serve):
    """Every request waits for the one `dynamic` worker; with a slow renderer (5 ms), a
    burst of 900 requests for computed names keeps at most max_pending (256) queued, the
    oldest dropped, so a node asking after the burst waits for a bounded queue (~1.3 s),
    not for all of it (4.5 s)."""
    calls = 0

    def slow(path: str, client: tuple[str, int]) -> bytes | None:
        nonlocal calls
        calls += 1
        time.sleep(0.005)
        return dynamic(path, client)

    service = serve(dynamic=slow)
    paths = tuple(f"pxelinux.cfg/01-52-54-00-bb-00-{i:02x}" for i in range(8))
    with flood(service.port, 900, paths=paths):
        assert wait_until(lambda: service.stats["requests"] >= 900, 5)
        took = boot(service)
        assert took < BUDGET, f"the node waited {took:.2f} s behind the queue"
    assert calls < 900
    assert service.stats["pending_dropped"] >= 900 - service.max_pending - calls


def test_a_flood_is_not_a_log_flood(serve, caplog):
    """Per-request lines at info are at most 20 a second; what a flood costs is summed up in
    one line a second (refused, evicted, dropped), not one line per request."""
    caplog.set_level(logging.INFO, logger="provisioner.tftp")
    service = serve(dynamic=None, logger=logging.getLogger("provisioner.tftp"))
    with flood(service.port, 1_100, paths=("pxelinux.0", "missing-file")):
        got = fetch("127.0.0.1", service.port, "pxelinux.0", timeout=0.5, source=NODE)
        assert got.data == loader_bytes()
        time.sleep(3.8)  # the flood's transfers are dropped (2.5 s), then summed up
    lines = [r.getMessage() for r in caplog.records if r.name == "provisioner.tftp"]
    assert len(lines) < 100, f"{len(lines)} lines for one flood"
    summaries = [line for line in lines if line.startswith("TFTP in the last")]
    assert any("dropped unacknowledged" in line for line in summaries), summaries
    assert service.stats["quiet"] > 0  # the refusals of missing-file were counted, not logged
