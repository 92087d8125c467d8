"""The gunicorn worker behind nginx: its strict parser, its WSGI calls, and the real thing under
gunicorn on a unix socket (kept-alive connections, bad input answered and closed, the worker
still serving afterwards)."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from provisioner.web.worker import (
    MAX_BODY,
    MAX_HEAD,
    BadRequest,
    build_environ,
    next_request,
    respond,
)

LOG = logging.getLogger("test-worker")


def test_a_request_as_nginx_sends_it():
    raw = (
        b"POST /install/sbin/public/events?x=1&y=%20 HTTP/1.1\r\nHost: frontend\r\n"
        b"X-Real-IP: 10.1.255.254\r\nContent-Type: application/json\r\n"
        b"Content-Length: 11\r\nX-Multi: a\r\nX-Multi: b\r\n\r\n"
        b'{"event":1}GET / HTTP/1.1\r\nHost: f\r\n\r\n'
    )
    (method, target, version, headers, body), used = next_request(raw)
    assert (method, target, version, body) == (
        "POST",
        "/install/sbin/public/events?x=1&y=%20",
        "HTTP/1.1",
        b'{"event":1}',
    )
    env = build_environ(method, target, version, headers, body, ("localhost", "80"))
    assert env["PATH_INFO"] == "/install/sbin/public/events"
    assert env["QUERY_STRING"] == "x=1&y=%20"
    assert env["CONTENT_TYPE"] == "application/json" and env["CONTENT_LENGTH"] == "11"
    assert env["HTTP_X_REAL_IP"] == "10.1.255.254" and env["HTTP_X_MULTI"] == "a,b"
    assert env["wsgi.input"].read() == b'{"event":1}'
    # The second, pipelined request is next.
    (method, target, *_), _ = next_request(raw[used:])
    assert (method, target) == ("GET", "/")


def test_paths_are_decoded_as_pep_3333_says():
    env = build_environ("GET", "/a%2Fb/%E9t%C3%A9?q=%2F", "HTTP/1.1", [], b"", ("h", "80"))
    assert env["PATH_INFO"] == "/a/b/\xe9t\xc3\xa9"
    assert env["QUERY_STRING"] == "q=%2F"


@pytest.mark.parametrize(
    "raw, status",
    [
        (b"GET /\r\n\r\n", 400),
        (b"get / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\n\r\n", 400),
        (b"GET  / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nno colon\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nX : a\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n: a\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 1e3\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n", 400),
        (f"POST / HTTP/1.1\r\nContent-Length: {MAX_BODY + 1}\r\n\r\n".encode(), 413),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * (MAX_HEAD + 10), 400),
    ],
)
def test_what_nginx_never_sends_is_refused(raw, status):
    with pytest.raises(BadRequest) as info:
        next_request(raw)
    assert info.value.status == status


def test_incomplete_requests_wait_for_more():
    assert next_request(b"GET / HTTP/1.1\r\nHost: x\r\n") is None
    assert next_request(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nabc") is None


def test_responses():
    def app(environ, start_response):
        if environ["PATH_INFO"] == "/boom":
            raise RuntimeError("boom")
        if environ["PATH_INFO"] == "/nothing":
            return [b""]
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "999")])
        return [b"hello ", b"world"]

    env = build_environ("GET", "/", "HTTP/1.1", [], b"", ("h", "80"))
    out, keep = respond(app, env, LOG)
    head, _, body = out.partition(b"\r\n\r\n")
    assert keep and body == b"hello world"
    assert b"Content-Length: 11" in head and b"999" not in head
    env = build_environ("HEAD", "/", "HTTP/1.1", [], b"", ("h", "80"))
    out, _ = respond(app, env, LOG)
    assert out.endswith(b"\r\n\r\n") and b"Content-Length: 11" in out
    for path in ("/boom", "/nothing"):
        env = build_environ("GET", path, "HTTP/1.1", [], b"", ("h", "80"))
        out, keep = respond(app, env, LOG)
        assert out.startswith(b"HTTP/1.1 500 ") and not keep


APP = """
def app(environ, start_response):
    body = (environ["REQUEST_METHOD"] + " " + environ["PATH_INFO"] + " "
            + environ["wsgi.input"].read().decode() + " " + str(__import__("os").getpid()))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]
"""


def exchange(sock: socket.socket, request: bytes) -> bytes:
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(line for line in head.split(b"\r\n") if line.startswith(b"Content-Length")).split(
            b":"
        )[1]
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_the_worker_under_gunicorn_keeps_connections_and_survives_bad_input(tmp_path: Path):
    (tmp_path / "wapp.py").write_text(APP)
    path = tmp_path / "app.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"unix:{path}", "--workers", "1",
         "--worker-class", "provisioner.web.worker.ProxiedWorker", "--no-control-socket",
         "--pythonpath", str(tmp_path), "--error-logfile", str(tmp_path / "log"), "wapp:app"],
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        a = socket.socket(socket.AF_UNIX)
        a.connect(str(path))
        pids = set()
        for i in range(3):
            out = exchange(
                a, f"POST /n{i} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nab{i}".encode()
            )
            assert out.startswith(b"HTTP/1.1 200 OK")
            assert f"POST /n{i} ab{i} ".encode() in out
            pids.add(out.rsplit(b" ", 1)[1])
        assert len(pids) == 1  # one connection, kept
        # A second connection is served while the first stays open and idle.
        b = socket.socket(socket.AF_UNIX)
        b.connect(str(path))
        assert exchange(b, b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 200")
        # Bad input: 400, that connection closed, the worker alive for the others.
        out = exchange(b, b"GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 400 ") and b.recv(10) == b""
        assert exchange(a, b"GET /still HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 200")
        # HTTP/1.0 without keep-alive: answered, then closed.
        c = socket.socket(socket.AF_UNIX)
        c.connect(str(path))
        assert exchange(c, b"GET /old HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 200")
        assert c.recv(10) == b""
        for s in (a, b, c):
            s.close()
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(10)
