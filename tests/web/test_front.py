"""provisionerd's HTTP front as nodes meet it: nginx serving the static roots itself and
proxying the dynamic paths to gunicorn on a private unix socket.

Each test here runs the real process tree on loopback and plays a node (or an attacker) from
its own 127.x address: slow headers, a slow download that outlasts the workers' timeout, a
resumed download, a forged client-address header, a path out of the served roots.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioner.testing.daemon import Provisionerd

BIN = Path(sys.executable).parent
SECRET = "classified-content"


def rocks(env: dict[str, str], *lines: str) -> None:
    done = subprocess.run(
        [str(BIN / "rocks"), "batch"],
        env=env,
        input="\n".join(lines),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def make_cluster(server: Provisionerd) -> None:
    env = server.env
    init = subprocess.run(
        [
            str(BIN / "rocks"),
            "init",
            "frontend",
            "Kickstart_PrivateHostname=frontend",
            "Kickstart_PrivateAddress=127.0.0.1",
            "Kickstart_PrivateNetwork=127.0.0.0",
            "Kickstart_PrivateNetmask=255.0.0.0",
            "Kickstart_PublicAddress=192.0.2.10",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert init.returncode == 0, init.stderr
    rocks(
        env,
        "add host compute-0-0",
        "add host interface compute-0-0 eth0 52:54:00:d0:00:01 ip=127.1.0.1 subnet=private",
        "add host compute-0-1",
        "add host interface compute-0-1 eth0 52:54:00:d0:00:02 ip=127.1.0.2 subnet=private",
        "add host compute-0-2",
        "add host interface compute-0-2 eth0 52:54:00:d0:00:03",
        f"set host attr compute-0-0 Kickstart_PrivateRootPassword {SECRET}",
        "set host boot compute-0-0 compute-0-1 compute-0-2 action=install",
    )


@pytest.fixture
def front(tmp_path: Path) -> Iterator[Provisionerd]:
    server = Provisionerd(tmp_path / "home", env={"PROVISIONER_HTTP_WORKER_TIMEOUT": "1"})
    make_cluster(server)
    with server.start():
        yield server


def request(
    server: Provisionerd,
    path: str,
    source: str = "127.0.0.1",
    headers: dict[str, str] | None = None,
    method: str = "GET",
    timeout: float = 10.0,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.0 request from `source`; (status, headers, body)."""
    sock = socket.create_connection(
        ("127.0.0.1", server.http_port), timeout=timeout, source_address=(source, 0)
    )
    head = f"{method} {path} HTTP/1.0\r\nHost: frontend\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    sock.sendall((head + "\r\n").encode())
    raw = b""
    while chunk := sock.recv(1 << 16):
        raw += chunk
    sock.close()
    top, _, body = raw.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in fields.items()}, body


def kickstart(server: Provisionerd, source: str, **kw) -> tuple[int, bytes]:
    status, _, body = request(server, "/install/sbin/kickstart.cgi", source, **kw)
    return status, body


def test_kickstart_identity_holds_through_nginx(front):
    """What the kickstart endpoint promised without nginx (issue 4) holds behind it."""
    status, body = kickstart(front, "127.1.0.1")
    assert status == 200 and b"compute-0-0" in body and SECRET.encode() in body
    status, body = kickstart(front, "127.1.0.2")
    assert status == 200 and b"compute-0-1" in body and SECRET.encode() not in body
    # Asking for another host, or from an address no host has: refused, nothing leaks.
    for source, path in (
        ("127.1.0.2", "/install/sbin/kickstart.cgi?client=compute-0-0"),
        ("127.1.0.9", "/install/sbin/kickstart.cgi?client=compute-0-0"),
    ):
        status, _, body = request(front, path, source)
        assert status == 403 and SECRET.encode() not in body, (source, path)
    # A MAC claim from an address of our network works only for a host without an address
    # of its own (kssendmac), and never for one that has one.
    mac = {"X-RHN-Provisioning-MAC-0": "eth0 52:54:00:d0:00:03"}
    status, body = kickstart(front, "127.1.0.50", headers=mac)
    assert status == 200 and b"compute-0-2" in body
    steal = {"X-RHN-Provisioning-MAC-0": "eth0 52:54:00:d0:00:01"}
    status, body = kickstart(front, "127.1.0.50", headers=steal)
    assert status == 403 and SECRET.encode() not in body


def test_a_client_address_is_never_taken_from_a_header(front):
    """nginx replaces X-Real-IP with the connection's peer and drops X-Forwarded-For: a
    node cannot claim another's address."""
    for header in ("X-Real-IP", "X-Forwarded-For", "X-Real-Ip"):
        status, body = kickstart(front, "127.1.0.9", headers={header: "127.1.0.1"})
        assert status == 404 and SECRET.encode() not in body, header
        assert body == b"no host has address 127.1.0.9\n"
    # Two X-Real-IP headers, one of them right: still the peer address.
    sock = socket.create_connection(("127.0.0.1", front.http_port), source_address=("127.1.0.9", 0))
    sock.sendall(
        b"GET /install/sbin/kickstart.cgi HTTP/1.0\r\nX-Real-IP: 127.1.0.1\r\n"
        b"X-Real-IP: 127.1.0.1\r\n\r\n"
    )
    raw = b"".join(iter(lambda: sock.recv(65536), b""))
    sock.close()
    assert b" 404 " in raw.split(b"\r\n", 1)[0] and SECRET.encode() not in raw


def test_the_workers_socket_is_reachable_by_nginx_only(front):
    conf = (front.home / "run" / "nginx.conf").read_text()
    sock_path = next(
        line.split('"unix:', 1)[1].split('"', 1)[0] for line in conf.splitlines() if "unix:" in line
    )
    st = os.stat(os.path.dirname(sock_path))
    assert st.st_mode & 0o777 == 0o750
    assert os.stat(sock_path).st_mode & 0o777 == 0o660
    if os.geteuid() == 0:
        # Another local user cannot even reach the socket to claim an address.
        probe = (
            "import socket; s = socket.socket(socket.AF_UNIX); "
            f"s.connect({sock_path!r}); print('connected')"
        )
        done = subprocess.run(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable]
            + ["-c", probe],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode != 0 and "PermissionError" in done.stderr, done.stdout


def test_static_roots_never_leave_their_roots(front, tmp_path):
    install = front.home / "install"
    (install / "rocks-dist").mkdir(parents=True)
    (install / "rocks-dist" / "hello.txt").write_text("hello")
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    (tmp_path / "home" / "secret.txt").write_text(SECRET)
    (front.home / "tftpboot" / "vmlinuz").write_bytes(b"kernel")
    # A link planted by someone else (here: owned by nobody) to a file that is not theirs.
    os.symlink(secret, install / "escape")
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.lchown(install / "escape", nobody.pw_uid, nobody.pw_gid)
    assert request(front, "/install/rocks-dist/hello.txt")[2] == b"hello"
    assert request(front, "/boot/files/vmlinuz")[2] == b"kernel"
    for path in (
        "/install/../secret.txt",
        "/install/%2e%2e/secret.txt",
        "/install/rocks-dist/..%2f..%2fsecret.txt",
        "/install/rocks-dist/%00",
        "/boot/files/../../secret.txt",
        "/boot/files/%2e%2e/%2e%2e/secret.txt",
        "/install/sbin/../../provisioner.db",
        "/install/",
        *(["/install/escape"] if os.geteuid() == 0 else []),
    ):
        status, _, body = request(front, path)
        assert status in (400, 403, 404) and SECRET.encode() not in body, (path, status)
        assert b"SQLite" not in body


def test_slow_headers_do_not_stop_kickstarts(front):
    """Clients that send their headers a byte a second hold nginx connections, never a
    worker: every kickstart meanwhile is answered at once. (With gunicorn facing the nodes,
    two such clients stopped all HTTP until its workers were killed.)"""
    slow = []
    for _ in range(16):
        s = socket.create_connection(
            ("127.0.0.1", front.http_port), source_address=("127.3.0.1", 0)
        )
        s.sendall(b"GET /install/sbin/kickstart.cgi HTTP/1.1\r\nHost: f\r\n")
        slow.append(s)
    stop = threading.Event()

    def trickle() -> None:
        while not stop.wait(1.0):
            for s in slow:
                try:
                    s.sendall(b"X")
                except OSError:
                    pass

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    # And a request body sent slowly to a callback.
    body = socket.create_connection(("127.0.0.1", front.http_port), source_address=("127.1.0.2", 0))
    body.sendall(
        b"POST /install/sbin/public/events HTTP/1.1\r\nHost: f\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    )
    try:
        time.sleep(1.5)  # longer than the workers' timeout (1 s here)
        worst = 0.0
        for _ in range(20):
            started = time.monotonic()
            status, text = kickstart(front, "127.1.0.1", timeout=5)
            worst = max(worst, time.monotonic() - started)
            assert status == 200 and b"compute-0-0" in text
        assert worst < 1.0, worst
    finally:
        stop.set()
        thread.join(5)
        for s in [*slow, body]:
            s.close()


def test_a_slow_download_outlasts_the_workers_timeout_intact(front):
    """An install image at a slow node's pace takes longer than a worker may spend on a
    request (1 s here); nginx serves it whole. (gunicorn cut such downloads off mid-file with
    status 200.)"""
    # Larger than what the kernel's socket buffers can hold (4 MB send queue here), so the
    # sender must keep going for seconds.
    data = os.urandom(12 << 20)
    image = front.home / "install" / "images" / "install.img"
    image.parent.mkdir(parents=True)
    image.write_bytes(data)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    sock.bind(("127.1.0.1", 0))
    sock.settimeout(10)
    sock.connect(("127.0.0.1", front.http_port))
    sock.sendall(b"GET /install/images/install.img HTTP/1.0\r\n\r\n")
    started = time.monotonic()
    raw = bytearray()
    while chunk := sock.recv(16384):
        raw += chunk
        time.sleep(0.005)  # about 3 MB/s
    sock.close()
    elapsed = time.monotonic() - started
    head, _, body = bytes(raw).partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"200"
    assert elapsed > 2.0, elapsed  # it really was slower than the workers' timeout
    assert len(body) == len(data) and hashlib.sha256(body).digest() == hashlib.sha256(data).digest()


def test_an_interrupted_download_resumes_with_a_range_request(front):
    data = os.urandom(3 << 20)
    (front.home / "tftpboot").mkdir(exist_ok=True)
    (front.home / "tftpboot" / "initrd.img").write_bytes(data)
    sock = socket.create_connection(("127.0.0.1", front.http_port), source_address=("127.1.0.1", 0))
    sock.sendall(b"GET /boot/files/initrd.img HTTP/1.0\r\n\r\n")
    raw = b""
    while len(raw) < 1 << 20:
        raw += sock.recv(65536)
    sock.close()  # the node lost its link half-way
    got = raw.partition(b"\r\n\r\n")[2]
    status, headers, rest = request(
        front, "/boot/files/initrd.img", "127.1.0.1", headers={"Range": f"bytes={len(got)}-"}
    )
    assert status == 206
    assert headers["content-range"] == f"bytes {len(got)}-{len(data) - 1}/{len(data)}"
    assert got + rest == data
    # A range in the middle, as package managers ask.
    status, _, part = request(front, "/boot/files/initrd.img", headers={"Range": "bytes=100-199"})
    assert status == 206 and part == data[100:200]


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping nginx's workers to www-data needs root")
def test_nginx_workers_drop_to_www_data_and_unreadable_roots_are_refused(tmp_path):
    """As root, nginx's workers run as `http_user` (www-data). A served root that user cannot
    read is refused at start with one line that says which and what to do."""
    www = pwd.getpwnam("www-data")
    base = Path(tempfile.mkdtemp(prefix="provisioner-front-", dir="/tmp"))
    try:
        base.chmod(0o755)
        server = Provisionerd(base / "home", env={"PROVISIONER_HTTP_USER": "www-data"})
        make_cluster(server)
        (base / "home").chmod(0o755)
        with server.start():
            (server.home / "tftpboot" / "pxelinux.0").write_bytes(b"loader")
            assert request(server, "/boot/files/pxelinux.0")[2] == b"loader"
            assert kickstart(server, "127.1.0.1")[0] == 200
            master = server.children()["nginx"]
            workers = [
                int(p) for p in Path(f"/proc/{master}/task/{master}/children").read_text().split()
            ]
            assert workers
            for pid in workers:
                uid = Path(f"/proc/{pid}/status").read_text().split("Uid:")[1].split()[0]
                assert int(uid) == www.pw_uid
            conf = (server.home / "run" / "nginx.conf").read_text()
            sock_dir = Path(
                next(ln for ln in conf.splitlines() if "unix:" in ln)
                .split('"unix:', 1)[1]
                .split('"')[0]
            ).parent
            assert os.stat(sock_dir).st_gid == www.pw_gid
    finally:
        shutil.rmtree(base, ignore_errors=True)

    # pytest's own directories are private (0700): www-data cannot enter them.
    server = Provisionerd(tmp_path / "home", env={"PROVISIONER_HTTP_USER": "www-data"})
    make_cluster(server)
    done = subprocess.run(
        [str(BIN / "provisionerd")], env=server.env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert (
        done.stderr.startswith("provisionerd: error: nginx serves ") and "www-data" in done.stderr
    )
    assert "chmod o+rx" in done.stderr and done.stderr.count("\n") == 1
