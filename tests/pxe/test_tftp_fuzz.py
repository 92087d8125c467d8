"""10,000 random and mutated TFTP packets: the service stays up, keeps serving correct files,
and never sends a byte from outside its root.

Every file under the root (and every computed file) is made of `ALPHABET`; the secret next to
the root, the system's files and anything else are not, so any DATA byte outside the alphabet
is a leak. The packets are seeded, so a failure reproduces.
"""

from __future__ import annotations

import hashlib
import random
import select
import socket
import time
from pathlib import Path

import pytest

from provisioner.pxe.tftp.client import fetch, request_packet
from provisioner.pxe.tftp.service import TftpService

ALPHABET = b"abcdefghij\n"
ALLOWED = frozenset(ALPHABET) | {0x0D, 0x00}  # netascii adds CR and NUL
SECRET = b"SECRET-OUTSIDE-THE-ROOT " * 40
PACKETS = 10_000

NAMES = [
    "small", "/small", "big", "sub/file", "sub\\file", "link-in", "computed", "pxelinux.cfg/x",
    "../outside/secret", "/../outside/secret", "sub/../../outside/secret", "escape",
    "escape-dir/secret", "..", "/", "", "/etc/passwd", "/proc/self/environ", "fifo", "sub",
    "%2e%2e/outside/secret", "....//outside/secret", "sub/./../..//outside/secret",
]  # fmt: skip
MODES = ["octet", "netascii", "OCTET", "mail", "", "binary"]
OPTIONS = [
    {}, {"blksize": 1468}, {"tsize": 0}, {"blksize": 8, "windowsize": 4}, {"blksize": 65464},
    {"blksize": -1}, {"blksize": "x"}, {"timeout": 0}, {"timeout": 255}, {"windowsize": 70000},
    {"blksize": 99999999999999999999}, {"tsize": 1}, {"blksize": 512, "blksize ": 9},
]  # fmt: skip


def content(n: int, seed: int) -> bytes:
    return bytes(ALPHABET[(i * 5 + seed + i // 13) % len(ALPHABET)] for i in range(n))


def seeds(rng: random.Random) -> list[bytes]:
    out = []
    for name in NAMES:
        for _ in range(3):
            out.append(request_packet(name, rng.choice(MODES), rng.choice(OPTIONS)))
    out += [
        b"\x00\x02small\x00octet\x00",
        b"\x00\x03\x00\x01" + b"a" * 512,
        b"\x00\x04\x00\x01",
        b"\x00\x05\x00\x01oops\x00",
        b"\x00\x06blksize\x00512\x00",
        b"\x00\x01small\x00octet\x00tsize\x000\x00blksize\x00" + b"9" * 400 + b"\x00",
        b"\x00\x01" + b"a/" * 200 + b"\x00octet\x00",
    ]
    return out


def mutate(rng: random.Random, packet: bytes, pool: list[bytes]) -> bytes:
    data = bytearray(packet)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(8)
        if op == 0 and data:  # flip bits
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        elif op == 1 and data:  # truncate
            del data[rng.randrange(len(data)) :]
        elif op == 2:  # insert random bytes
            i = rng.randint(0, len(data))
            data[i:i] = rng.randbytes(rng.randint(1, 16))
        elif op == 3 and data:  # a byte that matters to the parser
            data[rng.randrange(len(data))] = rng.choice(b"\x00/.\\\xff")
        elif op == 4:  # splice two packets
            other = rng.choice(pool)
            data = data[: rng.randint(0, len(data))] + other[rng.randint(0, len(other)) :]
        elif op == 5:  # climb
            i = rng.randint(2, max(2, len(data)))
            data[i:i] = rng.choice([b"../", b"..\\", b"/..", b"\x00", b"//"])
        elif op == 6 and len(data) > 2:  # opcode
            data[0:2] = rng.choice(
                [b"\x00\x01", b"\x00\x02", b"\x00\x07", b"\xff\xff", b"\x01\x01"]
            )
        else:  # repeat a slice
            a = rng.randint(0, len(data))
            data[a:a] = data[a : a + rng.randint(1, 64)] * rng.randint(1, 4)
    return bytes(data[:2048])


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(SECRET)
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "pxelinux.cfg").mkdir()
    (root / "small").write_bytes(content(700, 1))
    (root / "big").write_bytes(content(200_000, 2))
    (root / "sub" / "file").write_bytes(content(3000, 3))
    (root / "link-in").symlink_to("small")
    (root / "escape").symlink_to(outside / "secret")
    (root / "escape-dir").symlink_to(outside)
    import os

    os.mkfifo(root / "fifo")
    return root


@pytest.mark.parametrize("workers", [1, 2])
def test_random_and_mutated_packets(tree: Path, workers: int) -> None:
    rng = random.Random(20261122 + workers)

    def dynamic(path: str, client: tuple[str, int]) -> bytes | None:
        if path in ("computed", "pxelinux.cfg/x"):
            return content(2000, 7)
        return None

    service = TftpService(
        tree,
        "127.0.0.1",
        0,
        dynamic=dynamic,
        timeout=0.2,
        retries=1,
        max_timeout=1,
        workers=workers,
    )
    thread = service.start_thread()
    pool = seeds(rng)
    replies: list[bytes] = []
    tids: set[int] = set()
    to_main = 0
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)

    def drain() -> None:
        while True:
            try:
                data, peer = sock.recvfrom(70000)
            except BlockingIOError:
                return
            replies.append(data)
            if peer[1] != service.port:
                tids.add(peer[1])

    try:
        deadline = time.monotonic() + 60
        for i in range(PACKETS):
            assert time.monotonic() < deadline, "fuzzing took too long"
            kind = rng.random()
            if kind < 0.1:
                packet = rng.randbytes(rng.randint(0, 600))
            elif kind < 0.25:
                packet = rng.choice(pool)
            else:
                packet = mutate(rng, rng.choice(pool), pool)
            target = service.port
            if tids and rng.random() < 0.15:
                # Garbage, stray ACKs and errors at the transfer ports too.
                target = rng.choice(sorted(tids))
                packet = rng.choice(
                    [packet, b"\x00\x04" + rng.randbytes(2), b"\x00\x05\x00\x00x\x00"]
                )
            try:
                sock.sendto(packet, ("127.0.0.1", target))
                to_main += target == service.port
            except OSError:
                pass  # ECONNREFUSED from a transfer port that has closed
            if i % 20 == 0:
                drain()
                select.select([sock], [], [], 0.002)
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            select.select([sock], [], [], 0.05)
            drain()
    finally:
        sock.close()

    assert thread.is_alive()
    assert to_main > PACKETS * 0.8
    assert service.stats["packets"] >= to_main * 0.95  # loopback may drop a few under load
    assert service.stats["transfers"] > 100  # the mix reached real transfers, not only errors
    leaks = [r for r in replies if r[:2] == b"\x00\x03" and not set(r[4:]) <= ALLOWED]
    assert not leaks, f"{len(leaks)} DATA packets with bytes from outside the root: {leaks[0]!r}"
    assert not any(b"SECRET" in r for r in replies)

    # Still serving, and serving right.
    for name in ("big", "small", "computed"):
        expected = content(2000, 7) if name == "computed" else (tree / name).read_bytes()
        got = fetch("127.0.0.1", service.port, name, options={"blksize": 1468, "tsize": 0})
        assert hashlib.sha256(got.data).digest() == hashlib.sha256(expected).digest()
    # Abandoned transfers time out and are cleaned up.
    deadline = time.monotonic() + 5
    while service.active_transfers and time.monotonic() < deadline:
        time.sleep(0.05)
    assert service.active_transfers == 0
    service.stop()
    thread.join(5)
    assert not thread.is_alive()
