"""The gunicorn worker behind provisionerd's nginx: one process, one event loop, kept-alive
connections from nginx, the WSGI app called for each request.

gunicorn's own workers are written for the open network: the sync worker parses every request
in Python, opens and lingers on a new connection for each one (`close_graceful` waits for the
peer to hang up), and the threaded ones pay for a thread hand-over per request. Here the only
peer is nginx, on a unix socket nobody else can reach, and nginx has already done the work
that needs care: it read the whole request from the node (slow or not), normalised and
limited it, and it takes the whole answer at once. What is left per request is a `recv`, a
short parse of a request nginx wrote, the app, and a `send` — on connections nginx keeps open
(`keepalive` in its upstream), so no connect, accept or close either. The kickstart path costs
about half the CPU it did under the sync worker (docs/benchmarks.md, boot storm).

gunicorn still runs the show: it forks, times out and replaces these workers, and its signals
mean what they always do (TERM: finish the request at hand, then exit; QUIT/INT: exit now).

The parser is strict because its input is nginx's: a request line, header lines, an empty line
and a body of `Content-Length` bytes (nginx buffers request bodies, so it never sends chunked
ones upstream). Anything else — folded or nameless headers, `Transfer-Encoding`, a head over
64 KiB, a body over `MAX_BODY` — is answered 400/413 and the connection closed.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import selectors
import socket
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote_to_bytes

from gunicorn.workers.base import Worker

MAX_HEAD = 64 * 1024
# nginx refuses bodies over client_max_body_size (1 MB) before they get here.
MAX_BODY = 8 * 1024 * 1024
MAX_CONNECTIONS = 512
# nginx drops its idle upstream connections after 60 s (keepalive_timeout); ours live longer,
# so nginx, not us, ends an idle one and never sends a request down a closing connection.
IDLE_SECONDS = 300.0

_REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    413: "Content Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def parse_head(head: bytes) -> tuple[str, str, str, list[tuple[str, str]]]:
    """(method, target, version, headers) of a request head without its final CRLFCRLF."""
    lines = head.split(b"\r\n")
    try:
        method, target, version = lines[0].decode("latin-1").split(" ")
    except ValueError:
        raise BadRequest(400, "bad request line") from None
    if (
        not method.isalpha()
        or not method.isupper()
        or not target
        or not version.startswith("HTTP/1.")
    ):
        raise BadRequest(400, "bad request line")
    headers: list[tuple[str, str]] = []
    for raw in lines[1:]:
        name, sep, value = raw.partition(b":")
        if not sep or not name or name != name.strip() or raw[:1] in (b" ", b"\t"):
            raise BadRequest(400, "bad header line")
        headers.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
    return method, target, version, headers


def build_environ(
    method: str,
    target: str,
    version: str,
    headers: list[tuple[str, str]],
    body: bytes,
    server: tuple[str, str],
) -> dict[str, Any]:
    path, _, query = target.partition("?")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        # PEP 3333: the percent-decoded path, its bytes as latin-1.
        "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
        "QUERY_STRING": query,
        "RAW_URI": target,
        "SERVER_NAME": server[0],
        "SERVER_PORT": server[1],
        "SERVER_PROTOCOL": version,
        "REMOTE_ADDR": "",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "CONTENT_LENGTH": str(len(body)) if body else "",
    }
    for name, value in headers:
        key = name.upper().replace("-", "_")
        if key == "CONTENT_TYPE":
            environ["CONTENT_TYPE"] = value
            continue
        if key == "CONTENT_LENGTH":
            continue
        key = "HTTP_" + key
        if key in environ:
            environ[key] += "," + value
        else:
            environ[key] = value
    if environ.get("HTTP_X_FORWARDED_PROTO") == "https":
        environ["wsgi.url_scheme"] = "https"
    return environ


class Connection:
    """One connection from nginx: bytes received so far, and when it last did something."""

    __slots__ = ("sock", "buf", "last")

    def __init__(self, sock: socket.socket, now: float) -> None:
        self.sock = sock
        self.buf = b""
        self.last = now


def next_request(
    buf: bytes,
) -> tuple[tuple[str, str, str, list[tuple[str, str]], bytes], int] | None:
    """The first whole request in `buf` and the bytes it took, or None if it is not all there.
    BadRequest for anything nginx would not have sent."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > MAX_HEAD:
            raise BadRequest(400, "request head too large")
        return None
    method, target, version, headers = parse_head(buf[:end])
    length = 0
    for name, value in headers:
        low = name.lower()
        if low == "content-length":
            if not value.isdigit():
                raise BadRequest(400, "bad Content-Length")
            length = int(value)
        elif low == "transfer-encoding":
            raise BadRequest(400, "Transfer-Encoding is not accepted here")
    if length > MAX_BODY:
        raise BadRequest(413, "request body too large")
    start = end + 4
    if len(buf) - start < length:
        return None
    return (method, target, version, headers, buf[start : start + length]), start + length


def respond(
    app: Callable[..., Iterable[bytes]], environ: dict[str, Any], log: Any
) -> tuple[bytes, bool]:
    """Call the app; the whole response as bytes, and whether the connection may stay."""
    state: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if exc_info is not None and state.get("sent"):
            raise exc_info[1].with_traceback(exc_info[2])
        state["status"] = status
        state["headers"] = headers
        return lambda data: state.setdefault("early", []).append(data)

    try:
        result = app(environ, start_response)
        try:
            body = b"".join([*state.get("early", ()), *result])
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
    except Exception:  # noqa: BLE001 - one request's failure, logged, answered 500
        log.exception("Error handling request %s", environ.get("RAW_URI"))
        return simple(500, "internal error"), False
    status = state.get("status")
    if status is None:
        log.error("the application did not start a response for %s", environ.get("RAW_URI"))
        return simple(500, "internal error"), False
    lines = [f"HTTP/1.1 {status}"]
    has_length = False
    keep = True
    for name, value in state["headers"]:
        low = name.lower()
        if low == "content-length":
            has_length = True
            if value != str(len(body)):
                value = str(len(body))
        elif low == "connection":
            keep = keep and value.lower() != "close"
            continue
        elif low == "transfer-encoding":
            continue
        lines.append(f"{name}: {value}")
    if not has_length:
        lines.append(f"Content-Length: {len(body)}")
    if not keep:
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if environ["REQUEST_METHOD"] == "HEAD":
        return head, keep
    return head + body, keep


def fast_response(status: int, body: bytes, head_only: bool) -> list[bytes]:
    """A text/plain answer of a fast path, as head and body."""
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    return [head] if head_only else [head, body]


def simple(status: int, message: str) -> bytes:
    body = (message + "\n").encode()
    reason = _REASONS.get(status, "Error")
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


class ProxiedWorker(Worker):
    """`--worker-class provisioner.web.worker.ProxiedWorker`; see the module docstring."""

    def init_process(self) -> None:
        # provisionerd's promise that its tree dies whole (provisioner/daemon.py) reaches the
        # workers too: they go the moment the gunicorn master does, however it goes, rather
        # than when the next heartbeat notices, which on a loaded machine can be seconds.
        _die_with_parent(self.ppid)
        super().init_process()

    def run(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.connections: dict[int, Connection] = {}
        for listener in self.sockets:
            listener.setblocking(False)
            self.selector.register(listener, selectors.EVENT_READ, listener)
        self.selector.register(self.PIPE[0], selectors.EVENT_READ, None)
        server = self._server_name()
        # Paths the app answers without WSGI, from the request's headers (the kickstart).
        self.fast: dict[str, Callable[..., tuple[int, bytes]]] = getattr(
            self.wsgi, "extensions", {}
        ).get("provisioner.fast_paths", {})
        beat = 0.0
        sweep = time.monotonic() + 10
        timeout = min(1.0, self.timeout / 2 if self.timeout else 1.0)
        try:
            while self.alive:
                now = time.monotonic()
                if now - beat >= timeout:
                    # gunicorn's master replaces a worker that goes quiet for `timeout`.
                    self.notify()
                    beat = now
                    if self.ppid != os.getppid():
                        self.log.info("Parent changed, shutting down: %s", self)
                        return
                for key, _ in self.selector.select(timeout):
                    data = key.data
                    if data is None:
                        self._drain_pipe()
                    elif isinstance(data, Connection):
                        self._on_readable(data, server)
                    else:
                        self._accept(data)
                    if not self.alive:
                        break
                if now >= sweep:
                    sweep = now + 10
                    self._close_idle(now)
        finally:
            for conn in list(self.connections.values()):
                self._close(conn)
            self.selector.close()

    def _server_name(self) -> tuple[str, str]:
        name = self.sockets[0].getsockname() if self.sockets else ""
        if isinstance(name, tuple):
            return str(name[0]), str(name[1])
        return "localhost", "80"

    def _drain_pipe(self) -> None:
        try:
            while os.read(self.PIPE[0], 4096):
                pass
        except OSError:
            pass

    def _accept(self, listener: Any) -> None:
        for _ in range(64):
            try:
                sock, _addr = listener.accept()
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.ECONNABORTED):
                    self.log.warning("accept failed: %s", exc)
                return
            if len(self.connections) >= MAX_CONNECTIONS:
                self._close_idle(time.monotonic(), oldest=True)
            sock.setblocking(False)
            conn = Connection(sock, time.monotonic())
            self.connections[sock.fileno()] = conn
            self.selector.register(sock, selectors.EVENT_READ, conn)

    def _on_readable(self, conn: Connection, server: tuple[str, str]) -> None:
        try:
            # 64 KiB: below malloc's mmap threshold, so no mmap and munmap per request.
            data = conn.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            self._close(conn)
            return
        if not data:
            self._close(conn)
            return
        conn.buf += data
        conn.last = time.monotonic()
        while conn.buf and self.alive:
            try:
                found = next_request(conn.buf)
            except BadRequest as exc:
                self._send(conn, [simple(exc.status, str(exc))])
                self._close(conn)
                return
            if found is None:
                return
            (method, target, version, headers, body), used = found
            conn.buf = conn.buf[used:]
            self.nr += 1
            if self.nr >= self.max_requests:
                self.log.info("Autorestarting worker after current request.")
                self.alive = False
            path, _, query = target.partition("?")
            handler = self.fast.get(path) if method in ("GET", "HEAD") else None
            if handler is not None:
                status, data = handler(headers, query)
                parts = fast_response(status, data, method == "HEAD")
                keep = True
            else:
                environ = build_environ(method, target, version, headers, body, server)
                out, keep = respond(self.wsgi, environ, self.log)
                parts = [out]
            connection = next((v for k, v in headers if k.lower() == "connection"), "").lower()
            wants_close = connection == "close" or (
                version == "HTTP/1.0" and "keep-alive" not in connection
            )
            if not self._send(conn, parts) or not keep or wants_close:
                self._close(conn)
                return

    def _send(self, conn: Connection, parts: list[bytes]) -> bool:
        """All of it; nginx takes responses at once, but a large one may fill the socket."""
        if len(parts) == 2:
            # Head and body in one system call, without copying them into one buffer first.
            try:
                sent = conn.sock.sendmsg(parts)
            except BlockingIOError:
                sent = 0
            except OSError:
                return False
            total = len(parts[0]) + len(parts[1])
            if sent == total:
                return True
            data = b"".join(parts)[sent:]
        else:
            data = parts[0]
        view = memoryview(data)
        deadline = time.monotonic() + max(5.0, float(self.timeout or 30))
        while view:
            try:
                sent = conn.sock.send(view)
                view = view[sent:]
            except BlockingIOError:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                sel = selectors.DefaultSelector()
                try:
                    sel.register(conn.sock, selectors.EVENT_WRITE)
                    sel.select(min(1.0, remaining))
                finally:
                    sel.close()
                self.notify()
            except OSError:
                return False
        return True

    def _close(self, conn: Connection) -> None:
        fd = conn.sock.fileno()
        if self.connections.pop(fd, None) is not None:
            try:
                self.selector.unregister(conn.sock)
            except (KeyError, ValueError):
                pass
        conn.sock.close()

    def _close_idle(self, now: float, oldest: bool = False) -> None:
        if oldest and self.connections:
            victim = min(self.connections.values(), key=lambda c: c.last)
            self._close(victim)
            return
        for conn in [c for c in self.connections.values() if now - c.last > IDLE_SECONDS]:
            self._close(conn)


def _die_with_parent(ppid: int) -> None:
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PDEATHSIG
    if os.getppid() != ppid:  # the master died before the prctl: nobody will signal
        os._exit(1)
