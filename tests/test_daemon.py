"""provisionerd as it runs: one process tree (nginx in front of gunicorn, TFTP, DNS) on
loopback, answering from the database, logging JSON lines, restarting a service that dies,
gone whole whatever kills it, and checked by `provisionerd --check`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from dnslib import QTYPE, DNSRecord

from provisioner.pxe.tftp.client import fetch
from provisioner.testing.daemon import Provisionerd, alive, group_members

BIN = Path(sys.executable).parent


def rocks(env: dict[str, str], *words: str) -> str:
    done = subprocess.run(
        [str(BIN / "rocks"), *words], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def make_cluster(env: dict[str, str]) -> None:
    rocks(
        env,
        "init",
        "frontend",
        "Kickstart_PrivateHostname=frontend",
        "Kickstart_PrivateAddress=127.0.0.1",
        "Kickstart_PrivateNetwork=127.0.0.0",
        "Kickstart_PrivateNetmask=255.0.0.0",
        "Kickstart_PublicAddress=192.0.2.10",
    )
    rocks(env, "add", "host", "compute-0-0")
    rocks(
        env,
        "add",
        "host",
        "interface",
        "compute-0-0",
        "eth0",
        "52:54:00:d0:00:01",
        "ip=127.1.0.1",
        "subnet=private",
    )
    rocks(env, "set", "host", "boot", "compute-0-0", "action=install")


@pytest.fixture
def daemon(tmp_path: Path):
    server = Provisionerd(tmp_path / "home", dns=True)
    make_cluster(server.env)
    with server.start():
        yield server


def kickstart(server: Provisionerd, source: str = "127.1.0.1") -> tuple[int, bytes]:
    sock = socket.create_connection(
        ("127.0.0.1", server.http_port), timeout=10, source_address=(source, 0)
    )
    sock.sendall(b"GET /install/sbin/kickstart.cgi HTTP/1.0\r\n\r\n")
    raw = b""
    while chunk := sock.recv(65536):
        raw += chunk
    sock.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def ask_dns(server: Provisionerd, name: str, tcp: bool = False) -> DNSRecord:
    q = DNSRecord.question(name, "A")
    return DNSRecord.parse(q.send("127.0.0.1", server.dns_port, tcp=tcp, timeout=5))


def test_provisionerd_serves_http_tftp_dns_and_stops_cleanly(daemon):
    env = daemon.env
    assert urllib.request.urlopen(daemon.url + "/healthz", timeout=10).read() == b"ok\n"

    # A kickstart, asked from the host's own address, through nginx.
    status, body = kickstart(daemon)
    assert status == 200
    assert body.decode() == rocks(env, "list", "host", "profile", "compute-0-0")

    # Its boot config over TFTP, computed from the database; a flip shows at once.
    cfg = fetch(
        "127.0.0.1", daemon.tftp_port, "pxelinux.cfg/01-52-54-00-d0-00-01", timeout=5
    ).data.decode()
    assert f"kernel {daemon.url}/boot/files/vmlinuz" in cfg
    assert f"ks={daemon.url}/install/sbin/kickstart.cgi" in cfg
    rocks(env, "set", "host", "boot", "compute-0-0", "action=os")
    assert fetch("127.0.0.1", daemon.tftp_port, "pxelinux.cfg/7F010001", timeout=5).data.endswith(
        b"localboot 0\n"
    )

    # Its name over DNS, and a new host answered within a second of being added.
    assert str(ask_dns(daemon, "compute-0-0.local").rr[0].rdata) == "127.1.0.1"
    rocks(env, "add", "host", "compute-0-1")
    rocks(env, "add", "host", "interface", "compute-0-1", "eth0", "ip=127.1.0.2", "subnet=private")
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline and not ask_dns(daemon, "compute-0-1.local").rr:
        time.sleep(0.05)
    answer = ask_dns(daemon, "compute-0-1.local")
    assert answer.rr and answer.rr[0].rtype == QTYPE.A and str(answer.rr[0].rdata) == "127.1.0.2"

    # Structured logs from every service; SIGTERM stops the whole tree.
    assert set(daemon.children()) == {"http", "nginx", "tftp", "dns"}
    tree = daemon.tree()
    assert daemon.stop() == 0
    time.sleep(0.5)
    assert [pid for pid in tree if alive(pid)] == []
    records = daemon.records()
    components = {r["component"] for r in records}
    assert {"daemon", "http", "nginx", "tftp", "dns"} <= components, components
    assert any(r["message"] == "stopped" for r in records)
    assert any(
        r.get("uri") == "/install/sbin/kickstart.cgi" and r.get("client") == "127.1.0.1"
        for r in daemon.requests()
    )
    # Every line is a JSON object (nothing printed raw around the supervisor).
    lines = [ln for ln in daemon.log_path.read_text().splitlines() if ln.strip()]
    assert len(records) == len(lines)


def test_kill_9_of_the_supervisor_takes_the_whole_tree(tmp_path):
    """However the supervisor dies, its children follow within 2 s, and a new provisionerd
    serves on the same ports at once."""
    first = Provisionerd(tmp_path / "home", dns=True)
    make_cluster(first.env)
    first.start()
    try:
        tree = first.tree()
        assert len(tree) >= 5  # nginx and gunicorn with their workers, tftp, dns
        assert first.proc is not None
        os.kill(first.proc.pid, signal.SIGKILL)
        first.proc.wait(5)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and any(alive(p) for p in tree):
            time.sleep(0.05)
        survivors = {p: _cmdline(p) for p in tree if alive(p)}
        assert survivors == {}
    finally:
        first.stop()

    second = Provisionerd(tmp_path / "home", dns=True)
    second.env.update({k: v for k, v in first.env.items() if k.endswith(("_PORT", "_PUBLIC_URL"))})
    second.http_port, second.tftp_port, second.dns_port = (
        first.http_port,
        first.tftp_port,
        first.dns_port,
    )
    started = time.monotonic()
    with second.start(timeout=10):
        assert time.monotonic() - started < 10
        assert kickstart(second)[0] == 200
        cfg = fetch("127.0.0.1", second.tftp_port, "pxelinux.cfg/7F010001", timeout=5).data
        assert b"kernel" in cfg
        assert ask_dns(second, "compute-0-0.local").rr


@pytest.mark.parametrize("service", ["tftp", "dns", "http", "nginx"])
def test_a_service_killed_is_restarted_and_serves_again(daemon, service):
    """kill -9 of one child (the gunicorn and nginx masters included): the supervisor starts
    it again, and it answers within a few seconds."""
    before = daemon.children()[service]
    os.kill(before, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and daemon.children()[service] == before:
        time.sleep(0.1)
    after = daemon.children()[service]
    assert after != before and alive(after)
    # Nothing of the old one is left: the workers of a killed nginx or gunicorn master would
    # go on serving (and hold nginx's port) without the supervisor knowing.
    assert group_members(before) == []

    def serves() -> bool:
        try:
            if service == "tftp":
                return bool(
                    fetch("127.0.0.1", daemon.tftp_port, "pxelinux.cfg/7F010001", timeout=1).data
                )
            if service == "dns":
                return bool(ask_dns(daemon, "compute-0-0.local").rr)
            return kickstart(daemon)[0] == 200
        except (OSError, TimeoutError, ValueError):
            return False

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not serves():
        time.sleep(0.2)
    assert serves()
    assert any(
        r.get("level") == "error" and str(r.get("message", "")).startswith(f"{service} exited")
        for r in daemon.records()
    )


def test_check_says_what_is_wrong_in_one_line(tmp_path):
    server = Provisionerd(tmp_path / "home")
    make_cluster(server.env)
    check = [str(BIN / "provisionerd"), "--check"]
    done = subprocess.run(check, env=server.env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("provisionerd: configuration, database and nginx ok")
    conf = server.home / "run" / "nginx.conf"
    assert f"listen 127.0.0.1:{server.http_port}" in conf.read_text()

    env = {**server.env, "PROVISIONER_NGINX": "/nonexistent/nginx"}
    done = subprocess.run(check, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith("provisionerd: error: nginx not found")
    assert done.stderr.count("\n") == 1

    # nginx itself refuses: an address this machine does not have is caught by nginx -t.
    env = {**server.env, "PROVISIONER_HTTP_ADDRESS": "192.0.2.77"}
    done = subprocess.run(check, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout
    assert done.stderr.startswith("provisionerd: error: nginx refuses its configuration")
    assert "192.0.2.77" in done.stderr and done.stderr.count("\n") == 1


def test_provisionerd_refuses_to_start_without_a_database(tmp_path):
    env = {**os.environ, "PROVISIONER_HOME": str(tmp_path)}
    env.pop("PROVISIONER_DATABASE_URL", None)
    done = subprocess.run(
        [str(BIN / "provisionerd")], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 3
    assert (
        done.stderr.startswith("provisionerd: error: no database at")
        and done.stderr.count("\n") == 1
    )


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]
    except OSError:
        return "?"
