"""The TFTP service on 127.0.0.1: files, options, computed files, path safety, retransmission,
helper processes, and interoperability with curl, atftp and tftpy."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioner.pxe.tftp.client import fetch, parse_oack, request_packet
from provisioner.pxe.tftp.files import clean_path
from provisioner.pxe.tftp.packets import (
    ERR_ACCESS,
    ERR_ILLEGAL,
    ERR_NOT_FOUND,
    ERR_UNDEFINED,
    TftpError,
    parse_request,
    to_netascii,
)
from provisioner.pxe.tftp.service import TftpService

# Every file under the root is made of these bytes; nothing outside it is, so a leak shows.
ALPHABET = b"abcdefghij\n"
SECRET = b"SECRET-OUTSIDE-THE-ROOT " * 40


def text(n: int, seed: int = 0) -> bytes:
    return bytes(ALPHABET[(i * 7 + seed + i // 11) % len(ALPHABET)] for i in range(n))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """root/ with files, good and bad links, a FIFO; outside/ with a secret next to it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    root = tmp_path / "root"
    (root / "sub" / "dir").mkdir(parents=True)
    (root / "pxelinux.cfg").mkdir()
    for size in (0, 1, 511, 512, 513, 1024, 1468 * 3):
        (root / f"f{size}").write_bytes(text(size, size))
    (root / "big").write_bytes(text(300_000, 3))
    (root / "sub" / "dir" / "file").write_bytes(text(700, 5))
    (root / "pxelinux.cfg" / "default").write_bytes(b"default local\n")
    (root / "lines").write_bytes(b"abc\ndef\r\nghi\rj")
    (root / "link-inside").symlink_to("f513")
    (root / "escape-link").symlink_to(outside / "secret.txt")
    (root / "escape-rel").symlink_to("../outside/secret.txt")
    (root / "escape-dir").symlink_to(outside)
    os.mkfifo(root / "fifo")
    return root


@pytest.fixture
def serve(tree: Path) -> Iterator:
    """`serve(**kw)` starts a TftpService on 127.0.0.1 port 0; all are stopped afterwards."""
    started: list[TftpService] = []

    def start(**kw) -> TftpService:
        kw.setdefault("timeout", 0.2)
        kw.setdefault("retries", 2)
        service = TftpService(tree, "127.0.0.1", 0, **kw)
        service.start_thread()
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


def wait_until(condition, timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def get(service: TftpService, path: str | bytes, **kw):
    return fetch("127.0.0.1", service.port, path, timeout=1.0, **kw)


def test_clean_path():
    assert clean_path("/pxelinux.0") == "pxelinux.0"
    assert clean_path("//a/./b//c") == "a/b/c"
    assert clean_path("boot\\x86\\wdsnbp.com") == "boot/x86/wdsnbp.com"
    for bad in ("..", "a/../b", "/../x", "..\\x", "a\x01b", "a\x7f"):
        with pytest.raises(TftpError) as err:
            clean_path(bad)
        assert err.value.code == ERR_ACCESS
    with pytest.raises(TftpError):
        clean_path("/")


def test_parse_request():
    req = parse_request(
        b"\x00\x01/a/b\x00OCTET\x00BLKSIZE\x001468\x00tsize\x000\x00blksize\x009\x00"
    )
    assert (req.opcode, req.filename, req.mode) == (1, "/a/b", "octet")
    assert req.options == {"blksize": "1468", "tsize": "0"}
    for bad in (
        b"",
        b"\x00\x01",
        b"\x00\x01abc",
        b"\x00\x01abc\x00octet",
        b"\x00\x01\x00octet\x00",
    ):
        with pytest.raises(TftpError):
            parse_request(bad)


@pytest.mark.parametrize("size", [0, 1, 511, 512, 513, 1024])
def test_octet_default_blksize(serve, tree, size):
    service = serve()
    got = get(service, f"f{size}")
    assert got.data == (tree / f"f{size}").read_bytes()
    assert got.blocks == size // 512 + 1
    assert got.options == {}


def test_options_negotiated(serve, tree):
    service = serve()
    got = get(service, "big", options={"blksize": 1468, "tsize": 0, "timeout": 3})
    assert got.options == {"blksize": "1468", "tsize": "300000", "timeout": "3"}
    assert got.data == (tree / "big").read_bytes()
    assert got.blocks == 300_000 // 1468 + 1


def test_invalid_options_are_left_out(serve, tree):
    service = serve(max_blksize=4096)
    got = get(service, "f1024", options={"blksize": 100000, "tsize": "x", "timeout": 0, "foo": 1})
    assert got.options == {"blksize": "4096"}
    got = get(service, "f1024", options={"blksize": 4, "utimeout": 5, "tsize": " 0"})
    assert got.options == {} and got.data == (tree / "f1024").read_bytes()
    got = get(service, "f1", options={"timeout": 6, "blksize": "+1024", "windowsize": "2_0"})
    assert got.options == {}
    # Above max_timeout (5 s by default) the option is left out: no client pins a slot long.
    assert get(service, "f1", options={"timeout": 30}).options == {}
    assert get(service, "f1", options={"timeout": 5}).options == {"timeout": "5"}


def test_exact_multiple_of_blksize_ends_with_empty_block(serve, tree):
    got = get(serve(), "f4404", options={"blksize": 1468})
    assert got.blocks == 4 and got.data == (tree / "f4404").read_bytes()


@pytest.mark.parametrize("window", [2, 8, 64])
def test_windowsize(serve, tree, window):
    got = get(serve(), "big", options={"blksize": 1024, "windowsize": window, "tsize": 0})
    assert got.options["windowsize"] == str(window)
    assert got.data == (tree / "big").read_bytes()


def test_block_numbers_roll_over(serve, tree):
    data = text(8 * 65536 + 100, 9)
    (tree / "many-blocks").write_bytes(data)
    got = get(serve(), "many-blocks", options={"blksize": 8, "windowsize": 64})
    assert got.blocks == 65536 + 13
    assert got.data == data


def test_netascii(serve, tree):
    got = get(serve(), "lines", mode="netascii", options={"tsize": 0})
    assert got.data == b"abc\r\ndef\r\0\r\nghi\r\0j" == to_netascii((tree / "lines").read_bytes())
    assert got.options == {"tsize": str(len(got.data))}


@pytest.mark.parametrize("name", ["/sub/dir/file", "sub//dir/./file", "sub\\dir\\file"])
def test_path_spellings(serve, tree, name):
    assert get(serve(), name).data == (tree / "sub" / "dir" / "file").read_bytes()


def test_symlink_inside_root_is_served(serve, tree):
    assert get(serve(), "link-inside").data == (tree / "f513").read_bytes()


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("../outside/secret.txt", ERR_ACCESS),
        ("/../outside/secret.txt", ERR_ACCESS),
        ("sub/../../outside/secret.txt", ERR_ACCESS),
        ("..\\outside\\secret.txt", ERR_ACCESS),
        ("escape-link", ERR_ACCESS),
        ("escape-rel", ERR_ACCESS),
        ("escape-dir/secret.txt", ERR_ACCESS),
        ("sub", ERR_NOT_FOUND),
        ("fifo", ERR_NOT_FOUND),
        ("missing", ERR_NOT_FOUND),
        ("/etc/passwd", ERR_NOT_FOUND),
        ("f1\x01", ERR_ACCESS),
        (b"\xff\xfe", ERR_ACCESS),
        (b"f1\x00../outside/secret.txt", ERR_ILLEGAL),
    ],
)
def test_refused_paths(serve, name, code):
    service = serve()
    with pytest.raises(TftpError) as err:
        get(service, name)
    assert err.value.code == code
    assert service.active_transfers == 0


def test_absolute_root_path_is_not_special(serve, tree):
    """tftpd-hpa -s semantics: every name is relative to the root, even one that spells it."""
    with pytest.raises(TftpError) as err:
        get(serve(), str(tree / "f1"))
    assert err.value.code == ERR_NOT_FOUND


def raw(service: TftpService, packet: bytes, timeout: float = 1.0) -> tuple[bytes, int]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(packet, ("127.0.0.1", service.port))
        data, peer = s.recvfrom(65536)
        return data, peer[1]


def test_write_request_refused(serve, tree):
    service = serve()
    reply, _ = raw(service, b"\x00\x02new-file\x00octet\x00")
    assert reply[:4] == struct.pack("!HH", 5, ERR_ACCESS)
    assert not (tree / "new-file").exists()


def test_other_opcodes_get_illegal_operation(serve):
    service = serve()
    for packet in (b"\x00\x03\x00\x01abc", b"\x00\x04\x00\x01", b"\x00\x06a\x00b\x00", b"\x00\x09"):
        reply, _ = raw(service, packet)
        assert reply[:4] == struct.pack("!HH", 5, ERR_ILLEGAL)


def test_dynamic_first_then_root(serve, tree):
    calls: list[tuple[str, tuple[str, int], str]] = []

    def dynamic(path: str, client: tuple[str, int]) -> bytes | None:
        calls.append((path, client, threading.current_thread().name))
        if path == "pxelinux.cfg/0A01FFFE":
            return f"default rocks\n# for {client[0]}\n".encode()
        if path == "f1":
            return b"computed wins over the file"
        return None

    service = serve(dynamic=dynamic)
    got = get(service, "/pxelinux.cfg/0A01FFFE", options={"tsize": 0})
    assert got.data == b"default rocks\n# for 127.0.0.1\n"
    assert got.options == {"tsize": str(len(got.data))}
    assert get(service, "f1").data == b"computed wins over the file"
    assert get(service, "pxelinux.cfg/default").data == b"default local\n"
    with pytest.raises(TftpError):
        get(service, "../outside/secret.txt")
    paths = [c[0] for c in calls]
    assert paths == ["pxelinux.cfg/0A01FFFE", "f1", "pxelinux.cfg/default"]
    assert all(c[1][0] == "127.0.0.1" and c[1][1] > 0 for c in calls)
    assert {c[2] for c in calls} == {"tftp-dynamic"}


def test_dynamic_error_costs_one_request(serve, tree):
    def dynamic(path: str, client: tuple[str, int]) -> bytes | None:
        if path == "boom":
            raise RuntimeError("renderer bug")
        if path == "wrong-type":
            return "a str, not bytes"  # type: ignore[return-value]
        return None

    service = serve(dynamic=dynamic)
    for name in ("boom", "wrong-type"):
        with pytest.raises(TftpError) as err:
            get(service, name)
        assert err.value.code == ERR_UNDEFINED
    assert get(service, "f513").data == (tree / "f513").read_bytes()


def test_transfers_run_while_dynamic_is_busy(serve, tree):
    gate = threading.Event()
    entered = threading.Event()

    def dynamic(path: str, client: tuple[str, int]) -> bytes | None:
        if path == "slow":
            entered.set()
            gate.wait(5)
        return None

    service = serve(dynamic=dynamic)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(1)
        s.sendto(request_packet("big", options={"blksize": 1024}), ("127.0.0.1", service.port))
        oack, peer = s.recvfrom(2048)
        assert oack[:2] == b"\x00\x06"
        blocker = threading.Thread(target=lambda: _swallow(get, service, "slow"))
        blocker.start()
        assert entered.wait(2)
        # The worker is stuck in `dynamic`; the running transfer must still move.
        s.sendto(b"\x00\x04\x00\x00", peer)
        first, _ = s.recvfrom(2048)
        assert first[:4] == b"\x00\x03\x00\x01"
        s.sendto(b"\x00\x04\x00\x01", peer)
        second, _ = s.recvfrom(2048)
        assert second[:4] == b"\x00\x03\x00\x02"
        gate.set()
        blocker.join(5)


def _swallow(func, *args):
    try:
        func(*args)
    except (TftpError, TimeoutError):
        pass


def test_retransmits_on_timeout_then_gives_up(serve):
    service = serve(timeout=0.1, retries=2)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(1)
        s.sendto(request_packet("f1024"), ("127.0.0.1", service.port))
        packets = []
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                packets.append(s.recv(2048))
            except TimeoutError:
                break
            if packets[-1][:2] == b"\x00\x05":
                break
    assert [p[:4] for p in packets[:3]] == [b"\x00\x03\x00\x01"] * 3
    assert packets[-1][:2] == b"\x00\x05"
    assert wait_until(lambda: service.active_transfers == 0)


def test_duplicate_ack_is_not_answered(serve):
    """No Sorcerer's Apprentice: a duplicate ACK does not make a second copy of a block."""
    service = serve(timeout=1.0)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.3)
        s.sendto(request_packet("f1024"), ("127.0.0.1", service.port))
        d1, peer = s.recvfrom(2048)
        assert d1[:4] == b"\x00\x03\x00\x01"
        s.sendto(b"\x00\x04\x00\x01", peer)
        s.sendto(b"\x00\x04\x00\x01", peer)
        assert s.recv(2048)[:4] == b"\x00\x03\x00\x02"
        with pytest.raises(TimeoutError):
            s.recv(2048)


def test_client_error_ends_transfer(serve):
    service = serve(timeout=1.0)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(1)
        s.sendto(request_packet("big", options={"tsize": 0}), ("127.0.0.1", service.port))
        oack, peer = s.recvfrom(2048)
        assert parse_oack(oack) == {"tsize": "300000"}
        assert service.active_transfers == 1
        s.sendto(b"\x00\x05\x00\x08tsize probe only\x00", peer)
    assert wait_until(lambda: service.active_transfers == 0)


def test_stranger_on_transfer_port_is_ignored(serve, tree):
    service = serve(timeout=1.0)
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger,
    ):
        s.settimeout(1)
        s.sendto(request_packet("f1024"), ("127.0.0.1", service.port))
        d1, peer = s.recvfrom(2048)
        stranger.sendto(b"\x00\x04\x00\x01", peer)
        stranger.sendto(b"\x00\x05\x00\x00stop\x00", peer)
        s.sendto(b"\x00\x04\x00\x01", peer)
        assert s.recv(2048)[:4] == b"\x00\x03\x00\x02"


def test_retransmitted_request_does_not_start_a_second_transfer(serve):
    service = serve(timeout=1.0)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.3)
        for _ in range(3):
            s.sendto(request_packet("f1024"), ("127.0.0.1", service.port))
        _, peer = s.recvfrom(2048)
        time.sleep(0.1)
        assert service.active_transfers == 1
        s.sendto(b"\x00\x05\x00\x00bye\x00", peer)


def test_too_many_transfers(serve):
    """max_transfers bounds the transfers a client has acknowledged (confirmed ones)."""
    service = serve(timeout=1.0, max_transfers=2)
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
    try:
        replies = []
        for s in socks:
            s.settimeout(1)
            s.sendto(request_packet("f1024"), ("127.0.0.1", service.port))
            reply, peer = s.recvfrom(2048)
            replies.append(reply)
            if reply[:2] == b"\x00\x03":
                # Acknowledged, and block 2 came: the transfer is confirmed.
                s.sendto(b"\x00\x04\x00\x01", peer)
                assert s.recv(2048)[:4] == b"\x00\x03\x00\x02"
        assert [r[:2] for r in replies] == [b"\x00\x03", b"\x00\x03", b"\x00\x05"]
        assert replies[2][2:4] == struct.pack("!H", ERR_UNDEFINED)
        assert service.confirmed_transfers == 2
    finally:
        for s in socks:
            s.close()


def test_helper_processes_share_the_transfers(serve, tree):
    def dynamic(path: str, client: tuple[str, int]) -> bytes | None:
        return text(5000, 1) if path == "computed" else None

    service = serve(dynamic=dynamic, workers=2, timeout=1.0)
    results: dict[int, bytes] = {}

    def one(i: int) -> None:
        name = "computed" if i % 2 else "big"
        results[i] = get(service, name, options={"blksize": 1468, "tsize": 0}).data

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(results) == 6
    for i, data in results.items():
        assert data == (text(5000, 1) if i % 2 else (tree / "big").read_bytes())
    assert service.stats["handed_over"] >= 1
    helper = service._helpers[0].proc
    service.stop()
    assert helper.poll() is not None


def test_stop_releases_the_port(tree):
    service = TftpService(tree, "127.0.0.1", 0)
    thread = service.start_thread()
    port = service.port
    assert get(service, "f1").data == (tree / "f1").read_bytes()
    service.stop()
    thread.join(2)
    assert not thread.is_alive()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", port))


def test_ipv6_loopback(tree):
    try:
        service = TftpService(tree, "::1", 0)
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    with service:
        assert fetch("::1", service.port, "f513").data == (tree / "f513").read_bytes()


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare"),
    reason="needs root and unshare for a network namespace",
)
def test_wildcard_bind_replies_from_the_address_asked(tree):
    """Bound to 0.0.0.0 (in a fresh network namespace, so nothing else can reach it), a
    request sent to 127.0.0.2 is answered from 127.0.0.2, errors and data alike."""
    script = f"""
import socket, subprocess, sys
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
from provisioner.pxe.tftp.client import request_packet
from provisioner.pxe.tftp.service import TftpService
with TftpService({str(tree)!r}, "0.0.0.0", 0) as svc:
    for name, want in (("f513", b"\\x00\\x03"), ("missing", b"\\x00\\x05")):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0)); s.settimeout(2)
        s.sendto(request_packet(name), ("127.0.0.2", svc.port))
        data, peer = s.recvfrom(2048)
        assert data[:2] == want and peer[0] == "127.0.0.2", (data, peer)
print("ok")
"""
    out = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


@pytest.mark.skipif(not shutil.which("curl"), reason="curl is not installed")
def test_curl_client(serve, tree, tmp_path):
    service = serve(timeout=1.0)
    out = tmp_path / "curl.out"
    subprocess.run(
        ["curl", "-sS", "--max-time", "20", "--tftp-blksize", "1468", "-o", str(out),
         f"tftp://127.0.0.1:{service.port}/big"],
        check=True,
        timeout=30,
    )  # fmt: skip
    assert out.read_bytes() == (tree / "big").read_bytes()


@pytest.mark.skipif(not shutil.which("atftp"), reason="atftp is not installed")
def test_atftp_client(serve, tree, tmp_path):
    service = serve(timeout=1.0)
    out = tmp_path / "atftp.out"
    subprocess.run(
        ["atftp", "--get", "-r", "/sub/dir/file", "-l", str(out), "--option", "blksize 1024",
         "--option", "tsize", "127.0.0.1", str(service.port)],
        check=True,
        timeout=30,
        capture_output=True,
    )  # fmt: skip
    assert out.read_bytes() == (tree / "sub" / "dir" / "file").read_bytes()


@pytest.mark.parametrize(
    ("path", "options"),
    [("f1024", {}), ("big", {"blksize": 1468})],
    ids=["plain", "blksize"],
)
def test_tftpy_client(serve, tree, tmp_path, path, options):
    """tftpy's client, a third independent implementation beside curl and atftp (and one that
    needs no system package): a plain download ending on a block of 0 bytes, and one with
    blksize negotiated in an OACK."""
    import tftpy

    service = serve(timeout=1.0)
    out = tmp_path / "tftpy.out"
    packets: list = []  # the hook sees the OACK too
    client = tftpy.TftpClient("127.0.0.1", service.port, options=options)
    client.download(path, str(out), packethook=packets.append, timeout=5)
    assert out.read_bytes() == (tree / path).read_bytes()
    assert max(len(p.data) for p in packets if hasattr(p, "data")) == options.get("blksize", 512)
