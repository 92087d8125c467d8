"""provisionerd as it runs: one process tree (HTTP under gunicorn, TFTP, DNS) on loopback,
answering from the database, logging JSON lines, and gone cleanly after SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from dnslib import QTYPE, DNSRecord

from provisioner.pxe.tftp_client import fetch

BIN = Path(sys.executable).parent


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"nothing listens on {port}")


def rocks(env: dict[str, str], *words: str) -> str:
    done = subprocess.run(
        [str(BIN / "rocks"), *words], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def daemon(tmp_path: Path):
    http, tftp, dns = free_port(), free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    env = {
        **os.environ,
        "PROVISIONER_HOME": str(tmp_path / "home"),
        "PROVISIONER_HTTP_ADDRESS": "127.0.0.1",
        "PROVISIONER_HTTP_PORT": str(http),
        "PROVISIONER_HTTP_WORKERS": "2",
        "PROVISIONER_TFTP_ADDRESS": "127.0.0.1",
        "PROVISIONER_TFTP_PORT": str(tftp),
        "PROVISIONER_DNS_ADDRESS": "127.0.0.1",
        "PROVISIONER_DNS_PORT": str(dns),
        "PROVISIONER_PUBLIC_URL": f"http://127.0.0.1:{http}",
    }
    env.pop("PROVISIONER_DATABASE_URL", None)
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
    proc = subprocess.Popen(
        [str(BIN / "provisionerd")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True).start()  # type: ignore[arg-type]
    try:
        wait_port(http)
        yield env, proc, lines, (http, tftp, dns)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_provisionerd_serves_http_tftp_dns_and_stops_cleanly(daemon):
    env, proc, lines, (http, tftp, dns) = daemon
    assert urllib.request.urlopen(f"http://127.0.0.1:{http}/healthz", timeout=10).read() == b"ok\n"

    # A kickstart, asked from the host's own address.
    sock = socket.create_connection(
        ("127.0.0.1", http), timeout=10, source_address=("127.1.0.1", 0)
    )
    sock.sendall(b"GET /install/sbin/kickstart.cgi HTTP/1.0\r\n\r\n")
    raw = b""
    while chunk := sock.recv(65536):
        raw += chunk
    sock.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") or head.startswith(b"HTTP/1.0 200")
    assert body.decode() == rocks(env, "list", "host", "profile", "compute-0-0")

    # Its boot config over TFTP, computed from the database; a flip shows at once.
    cfg = fetch("127.0.0.1", tftp, "pxelinux.cfg/01-52-54-00-d0-00-01", timeout=5).data.decode()
    assert (
        "kernel vmlinuz" in cfg and f"ks=http://127.0.0.1:{http}/install/sbin/kickstart.cgi" in cfg
    )
    rocks(env, "set", "host", "boot", "compute-0-0", "action=os")
    assert fetch("127.0.0.1", tftp, "pxelinux.cfg/7F010001", timeout=5).data.endswith(
        b"localboot 0\n"
    )

    # Its name over DNS, and a new host answered within a second of being added.
    def ask(name: str) -> DNSRecord:
        return DNSRecord.parse(DNSRecord.question(name, "A").send("127.0.0.1", dns, timeout=5))

    assert str(ask("compute-0-0.local").rr[0].rdata) == "127.1.0.1"
    rocks(env, "add", "host", "compute-0-1")
    rocks(env, "add", "host", "interface", "compute-0-1", "eth0", "ip=127.1.0.2", "subnet=private")
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline and not ask("compute-0-1.local").rr:
        time.sleep(0.05)
    answer = ask("compute-0-1.local")
    assert answer.rr and answer.rr[0].rtype == QTYPE.A and str(answer.rr[0].rdata) == "127.1.0.2"

    # Structured logs from every service; SIGTERM stops the whole tree.
    children = subprocess.run(
        ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
    ).stdout.split()
    assert len(children) == 3
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    time.sleep(0.5)
    for pid in children:
        assert (
            not Path(f"/proc/{pid}").exists()
            or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
        )
    records = [json.loads(line) for line in lines if line.strip()]
    components = {r["component"] for r in records}
    assert {"daemon", "http", "tftp", "dns"} <= components, components
    assert any(r["message"] == "stopped" for r in records)
    assert any("kickstart.cgi" in r["message"] and r["component"] == "http" for r in records)


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
