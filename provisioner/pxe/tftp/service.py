"""The TFTP service: read-only TFTP (RFC 1350) with options blksize, tsize, timeout and
windowsize (RFC 2347, 2348, 2349, 7440), serving computed files first and a tftpboot root second.

Policy and transport are separate. `TftpFiles` decides what a path names: the `dynamic`
callable (boot configs computed from the database per request, never written to disk) is asked
first, then a regular file under the root; any path that would leave the root (`..`, symlink
escape found by `realpath`, control characters) is refused with a TFTP error and no data.
`TftpService` is the network loop: one UDP socket for requests, one connected socket per
transfer (its own TID, as RFC 1350 asks), driven by one epoll loop (`TransferLoop`), with
retransmission on timeout and none on duplicate ACKs (no Sorcerer's Apprentice). With
`workers` > 1, helper processes (`tftp_worker`) run loops of their own for part of the
transfers; requests, paths and `dynamic` always stay in the service's process, and a transfer
moves to a helper only after its first ACK, so the unconfirmed ones (below) are all here.

Why not tftpy, as the design first said: tftpy's server handles each packet through several
layers of objects, logging calls and a select() over every socket, and in bench/tftp.py
(16 clients x 32 MB at blksize 1468) it took about 3.7 times as long as tftpd-hpa, where the
target is 1.5 times. Its interface is kept: a root plus a callable for dynamic files
(`dyn_file_func` there, `dynamic` here) and the bound port read back with `getsockname()`.

The `dynamic` callable runs in one worker thread of the service, never concurrently with itself,
so a slow database never stalls running transfers and the callable may keep a `Reader` it opened
on its first call. It gets the cleaned relative path (`pxelinux.cfg/0A01FFFE`: leading `/`
stripped, `\\` read as `/`, empty and `.` parts dropped) and the client's `(ip, port)`, and
returns the file's bytes or None to fall through to the root.

Limits, so that a flood of requests (spoofed, or from clients that never answer) cannot deny
the service to real nodes (issue 9). A transfer is *unconfirmed* until the client's first ACK
(the client may be spoofed or dead), *confirmed* after it:

- at most `max_per_client` (8) transfers and queued requests per client address; more are
  refused with an error. A PXE client has one or two at a time (a tsize probe, then the file);
- at most `max_transfers` (1024) confirmed transfers; a request beyond them is refused with
  "server busy" (only clients that answer can hold these, at most 8 per address);
- at most `max_unconfirmed` (4096, fewer if open files are short) unconfirmed transfers; when
  full, a new request evicts the oldest one instead of being refused, so a flood churns among
  its own requests and a real node, which answers within milliseconds, always gets a slot
  (requests not yet handled are kept to the newest `max_unconfirmed` too);
- an unconfirmed transfer is resent at most once a second and dropped `unconfirmed_timeout`
  (2.5 s) after it started, whatever `timeout` the client asked for;
- the `timeout` option is accepted up to `max_timeout` (5 s; a larger one is left out of the
  OACK, as RFC 2347 allows), and a confirmed transfer that gets no new ACK for `max_stall`
  (10 s) ends at its next retransmission time, so within 15 s;
- at most `max_pending` (256) requests wait for the `dynamic` worker (every request does, when
  `dynamic` is set); when full the oldest waiting one is dropped unanswered (its client
  retransmits), so a burst never queues without bound ahead of a real node.

Each transfer holds a socket and often an open file, so the service raises its soft limit of
open files to the hard one. Per-request lines are logged at info at most 20 a second; refusals,
evictions and drops are counted in `stats` and summed up in one info line a second.
"""

from __future__ import annotations

import collections
import errno
import json
import logging
import os
import re
import select
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

DynamicFunc = Callable[[str, tuple[str, int]], "bytes | None"]

RRQ, WRQ, DATA, ACK, ERROR, OACK = 1, 2, 3, 4, 5, 6

ERR_UNDEFINED = 0
ERR_NOT_FOUND = 1
ERR_ACCESS = 2
ERR_ILLEGAL = 4
ERR_UNKNOWN_TID = 5
ERR_OPTIONS = 8

MAX_BLKSIZE = 65464
# Linux's value; the socket module does not export it.
_IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
_PKTINFO = struct.Struct("@I4s4s")
_HEADER = struct.Struct("!HH")
_READ_CHUNK = 64 * 1024
_NETASCII_LIMIT = 64 * 1024 * 1024
_CONTROL = re.compile("[\x00-\x1f\x7f]")
# Requests read from the socket per wake-up, and handled before the transfers get a turn.
_READ_BATCH = 1024
_HANDLE_BATCH = 64
# An unconfirmed transfer is resent at most this often, whatever timeout was negotiated.
_UNCONFIRMED_RESEND = 1.0
# Per-request info lines allowed a second, for clients that never answered and (a quota of its
# own, so a spoofed flood cannot hide them) for transfers that got an ACK; the rest are counted
# in stats["quiet"].
_LOG_LINES_PER_SECOND = 20
_REPORTED = {
    "client_limit": "refused over the per-address limit",
    "busy": "refused busy",
    "evicted": "unconfirmed transfers evicted",
    "unacknowledged": "dropped unacknowledged",
    "pending_dropped": "queued requests dropped",
    "overflow": "requests dropped unread",
    "quiet": "log lines left out",
}


class TftpError(Exception):
    """A TFTP error to send to the client: an RFC 1350 code and a short message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Request:
    """A parsed RRQ or WRQ: option names are lower-cased, the first of a repeated one wins."""

    opcode: int
    filename: str
    mode: str
    options: dict[str, str] = field(default_factory=dict)


def parse_request(packet: bytes) -> Request:
    """`opcode filename NUL mode NUL [name NUL value NUL]...`, or TftpError(ERR_ILLEGAL)."""
    if len(packet) < 6:
        raise TftpError(ERR_ILLEGAL, "malformed request")
    opcode = (packet[0] << 8) | packet[1]
    fields = packet[2:].split(b"\0")
    if len(fields) < 3 or fields[-1] != b"" or not fields[0]:
        raise TftpError(ERR_ILLEGAL, "malformed request")
    try:
        filename = fields[0].decode("utf-8")
    except UnicodeDecodeError:
        raise TftpError(ERR_ACCESS, "file name is not UTF-8") from None
    mode = fields[1].decode("ascii", "replace").lower()
    options: dict[str, str] = {}
    rest = fields[2:-1]
    for i in range(0, len(rest) - 1, 2):
        name = rest[i].decode("ascii", "replace").lower()
        if name and name not in options:
            options[name] = rest[i + 1].decode("ascii", "replace")
    return Request(opcode, filename, mode, options)


def error_packet(code: int, message: str) -> bytes:
    return _HEADER.pack(ERROR, code) + message.encode("ascii", "replace")[:200] + b"\0"


def oack_packet(options: dict[str, str]) -> bytes:
    body = b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in options.items())
    return struct.pack("!H", OACK) + body


def clean_path(name: str) -> str:
    """The relative path a client's file name means, or TftpError(ERR_ACCESS).

    PXE clients send `/pxelinux.0` or `pxelinux.0`, Windows ones `boot\\x86\\wdsnbp.com`; all
    are relative to the root. A `..` part is refused outright rather than resolved, so no
    spelling of it can climb out.
    """
    if "\\" in name:
        name = name.replace("\\", "/")
    if _CONTROL.search(name):
        raise TftpError(ERR_ACCESS, "bad file name")
    parts = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise TftpError(ERR_ACCESS, "path leaves the TFTP root")
        parts.append(part)
    if not parts:
        raise TftpError(ERR_NOT_FOUND, "no file name")
    return "/".join(parts)


def to_netascii(data: bytes) -> bytes:
    """RFC 1350 netascii: CR becomes CR NUL, LF becomes CR LF."""
    return data.replace(b"\r", b"\r\0").replace(b"\n", b"\r\n")


class BytesSource:
    """A file held in memory (computed content, netascii conversions). It shares
    FileSource's buffer attributes (`_buf`, `_off`, `_eof`), which the transfer loop reads
    directly: the whole content is one buffer that never needs refilling."""

    __slots__ = ("data", "size", "_buf", "_off", "_eof")

    def __init__(self, data: bytes) -> None:
        self.data = self._buf = data
        self.size = len(data)
        self._off = 0
        self._eof = True

    def read(self, offset: int, length: int) -> bytes:
        return self.data[offset : offset + length]

    def fill(self, offset: int, length: int) -> bytes:
        return self.data[offset : offset + length]

    def close(self) -> None:
        pass


class FileSource:
    """An open regular file, read ahead in chunks so most blocks cost no system call. pread
    rather than mmap: a file truncated under a transfer must not SIGBUS the server."""

    __slots__ = ("fd", "size", "_buf", "_off", "_eof")

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.size = size
        self._buf = b""
        self._off = 0
        self._eof = False

    def read(self, offset: int, length: int) -> bytes:
        rel = offset - self._off
        buf = self._buf
        if rel < 0 or (rel + length > len(buf) and not self._eof):
            return self.fill(offset, length)[:length]
        return buf[rel : rel + length]

    def fill(self, offset: int, length: int) -> bytes:
        """Read ahead from `offset`; the new buffer starts there."""
        want = max(length, _READ_CHUNK // length * length)
        buf = self._buf = os.pread(self.fd, want, offset)
        self._off = offset
        self._eof = len(buf) < want
        return buf

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


Source = BytesSource | FileSource


class TftpFiles:
    """What a requested path names: `dynamic(path, client)` first, then a regular file under
    `root`. Only regular files are served, and only if their real path is inside the root."""

    def __init__(self, root: Path | str, dynamic: DynamicFunc | None = None) -> None:
        self.root = Path(os.path.realpath(root))
        if not self.root.is_dir():
            raise NotADirectoryError(f"TFTP root {root} is not a directory")
        self.dynamic = dynamic
        self._root = str(self.root)
        self._prefix = self._root.rstrip("/") + "/"

    def computed(self, path: str, client: tuple[str, int]) -> bytes | None:
        if self.dynamic is None:
            return None
        content = self.dynamic(path, client)
        if content is None:
            return None
        if not isinstance(content, bytes | bytearray | memoryview):
            raise TypeError(f"dynamic TFTP content for {path} is {type(content).__name__}")
        return bytes(content)

    def open_file(self, path: str) -> FileSource:
        """`path` comes from `clean_path`. Raises TftpError for anything not served."""
        real = os.path.realpath(os.path.join(self._root, path))
        if not real.startswith(self._prefix):
            raise TftpError(ERR_ACCESS, "path leaves the TFTP root")
        try:
            # O_NOFOLLOW: a symlink swapped in after realpath is refused, not followed.
            # O_NONBLOCK: opening a FIFO must not hang the server.
            fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise TftpError(ERR_NOT_FOUND, "file not found") from None
        except PermissionError:
            raise TftpError(ERR_ACCESS, "permission denied") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise TftpError(ERR_ACCESS, "path leaves the TFTP root") from None
            raise TftpError(ERR_NOT_FOUND, "file not found") from None
        try:
            st = os.fstat(fd)
        except OSError:
            os.close(fd)
            raise TftpError(ERR_NOT_FOUND, "file not found") from None
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise TftpError(ERR_NOT_FOUND, "not a regular file")
        return FileSource(fd, st.st_size)


class Transfer:
    """One read transfer: its socket (connected to the client), the source and the window.
    Internal to the TFTP service and its helper processes.

    Blocks are counted from 1 without wrapping; the wire carries the count modulo 65536, so
    files above 65535 blocks roll over to block 0 like tftpd-hpa. `acked` is -1 while an OACK
    waits for its ACK 0; `last` is known once a short block has been sent. `fresh` (unconfirmed)
    until the client's first ACK.
    """

    __slots__ = (
        "sock",
        "client",
        "path",
        "source",
        "blksize",
        "window",
        "timeout",
        "acked",
        "sent",
        "last",
        "deadline",
        "retries",
        "oack",
        "started",
        "fresh",
    )

    def __init__(
        self,
        sock: socket.socket,
        client: tuple[str, int],
        path: str,
        source: Source,
        blksize: int,
        window: int,
        timeout: float,
        oack: bytes | None,
        now: float,
    ) -> None:
        self.sock = sock
        self.client = client
        self.path = path
        self.source = source
        self.blksize = blksize
        self.window = window
        self.timeout = timeout
        self.oack = oack
        self.acked = -1 if oack else 0
        self.sent = 0
        self.last: int | None = None
        self.deadline = now + timeout
        self.retries = 0
        self.started = now
        self.fresh = True

    def send_window(self, now: float) -> None:
        if self.window == 1 and self.last is None:
            # Lock-step, the common case: one block, no loop.
            k = self.acked + 1
            bs = self.blksize
            data = self.source.read((k - 1) * bs, bs)
            self.sock.send(_HEADER.pack(DATA, k & 0xFFFF) + data)
            if len(data) < bs:
                self.last = k
            if k > self.sent:
                self.sent = k
            self.deadline = now + self.timeout
            return
        bs = self.blksize
        first = self.acked + 1
        end = first + self.window
        if self.last is not None and end > self.last + 1:
            end = self.last + 1
        send = self.sock.send
        read = self.source.read
        pack = _HEADER.pack
        k = first - 1
        for k in range(first, end):
            data = read((k - 1) * bs, bs)
            send(pack(DATA, k & 0xFFFF) + data)
            if len(data) < bs:
                self.last = k
                break
        if k > self.sent:
            self.sent = k
        self.deadline = now + self.timeout

    def on_ack(self, block: int, now: float) -> bool:
        """Advance on a new ACK; True when the last block is acknowledged. Duplicate and
        out-of-window ACKs are ignored: the timeout, not a duplicate, triggers a resend."""
        acked = self.acked + 1
        if self.window == 1 and block == acked & 0xFFFF and self.sent == acked > 0:
            # Lock-step and in order, nearly every packet of a transfer: the general code
            # below, inlined (this is where the server spends its time).
            self.acked = acked
            self.retries = 0
            last = self.last
            if last is not None:
                return acked >= last
            bs = self.blksize
            src = self.source
            off = acked * bs
            rel = off - src._off
            buf = src._buf
            if rel < 0 or (rel + bs > len(buf) and not src._eof):
                buf, rel = src.fill(off, bs), 0
            data = buf[rel : rel + bs]
            k = acked + 1
            self.sock.send(_HEADER.pack(DATA, k & 0xFFFF) + data)
            if len(data) < bs:
                self.last = k
            self.sent = k
            self.deadline = now + self.timeout
            return False
        diff = (block - (self.acked & 0xFFFF)) & 0xFFFF
        if diff == 0 or diff > self.sent - self.acked:
            return False
        self.acked += diff
        self.retries = 0
        if self.last is not None and self.acked >= self.last:
            return True
        self.send_window(now)
        return False

    def resend(self, now: float) -> None:
        if self.acked < 0 and self.oack is not None:
            self.sock.send(self.oack)
            self.deadline = now + self.timeout
        else:
            self.send_window(now)

    def close(self) -> None:
        self.source.close()
        self.sock.close()


class TransferLoop:
    """The epoll loop that drives transfers: ACKs in, DATA out, retransmission on timeout.
    Other file descriptors (the request socket, a wake-up pipe, helper control sockets) are
    watched with a handler each. Used by `TftpService` and by its helper processes.

    A fresh (unconfirmed) transfer is resent at most once a second and dropped
    `unconfirmed_timeout` after it started; a confirmed one ends after `retries` resends or
    once it has had no new ACK for `max_stall`, at its next retransmission time. `on_confirm`
    is called at a transfer's first ACK, `on_leave` when it leaves the loop. Once a second,
    one info line sums up the counters of `_REPORTED` that moved.
    """

    def __init__(
        self,
        log: logging.Logger,
        retries: int,
        tick: float,
        *,
        max_stall: float = 10.0,
        unconfirmed_timeout: float = 2.5,
    ) -> None:
        self.log = log
        self.retries = retries
        self.tick = tick
        self.max_stall = max_stall
        self.unconfirmed_timeout = unconfirmed_timeout
        self.ep = select.epoll()
        self.transfers: dict[int, Transfer] = {}
        self.handlers: dict[int, Callable[[float], None]] = {}
        self.on_leave: Callable[[Transfer, bool], None] | None = None
        self.on_confirm: Callable[[Transfer, float, bool], None] | None = None
        self.on_report: Callable[[], str] | None = None
        self.stats: collections.Counter[str] = collections.Counter()
        self._quota = [_LOG_LINES_PER_SECOND, _LOG_LINES_PER_SECOND]
        self._reported: dict[str, int] = {}
        self._last_report = time.monotonic()

    def watch(self, fd: int, handler: Callable[[float], None]) -> None:
        self.handlers[fd] = handler
        self.ep.register(fd, select.EPOLLIN)

    def unwatch(self, fd: int) -> None:
        if self.handlers.pop(fd, None) is not None:
            try:
                self.ep.unregister(fd)
            except (OSError, ValueError):
                pass

    def note(self, level: int, msg: str, *args: object, answered: bool = False) -> None:
        """Log a per-request line, unless this second's quota is spent (then count it): a
        flood of requests must not become a flood of log lines. `answered`: the line is about
        a transfer the client has acknowledged."""
        if self._quota[answered] > 0:
            self._quota[answered] -= 1
            self.log.log(level, msg, *args)
        elif self.log.isEnabledFor(level):
            self.stats["quiet"] += 1

    def add(self, t: Transfer, now: float) -> None:
        """Start a transfer: register its socket and send the OACK or the first block."""
        self.attach(t)
        self.stats["transfers"] += 1
        try:
            t.resend(now)
        except OSError as exc:
            self.end(t, f"network error: {exc.strerror}")
            return
        if t.fresh:
            self._pace(t, now)

    def attach(self, t: Transfer) -> None:
        """Drive a transfer whose last packets have been sent (one handed over mid-way)."""
        fd = t.sock.fileno()
        self.transfers[fd] = t
        self.ep.register(fd, select.EPOLLIN)

    def detach(self, t: Transfer) -> None:
        """Stop driving a transfer without closing it (it is being handed over)."""
        fd = t.sock.fileno()
        if self.transfers.get(fd) is t:
            del self.transfers[fd]
            try:
                self.ep.unregister(fd)
            except (OSError, ValueError):
                pass

    def _pace(self, t: Transfer, now: float) -> None:
        """An unconfirmed transfer's next resend: at most a second away, never past its end,
        whatever timeout the client asked for."""
        t.deadline = min(
            now + min(t.timeout, _UNCONFIRMED_RESEND), t.started + self.unconfirmed_timeout
        )

    def run(self, stopping: Callable[[], bool]) -> None:
        ep = self.ep
        transfers = self.transfers
        handlers = self.handlers
        monotonic = time.monotonic
        tick = self.tick
        next_sweep = monotonic() + tick
        # Only the first four bytes of a client packet matter; the rest is truncated away.
        buf = bytearray(4)
        while not stopping():
            events = ep.poll(tick)
            now = monotonic()
            for fd, _ in events:
                t = transfers.get(fd)
                if t is not None:
                    try:
                        n = t.sock.recv_into(buf)
                        if n == 4 and buf[1] == ACK and buf[0] == 0:
                            done = t.on_ack((buf[2] << 8) | buf[3], now)
                            if t.fresh and t.acked > (-1 if t.oack is not None else 0):
                                t.fresh = False
                                if self.on_confirm is not None:
                                    self.on_confirm(t, now, done)
                            if done:
                                self.finish(t, now)
                        elif n >= 2 and buf[1] == ERROR and buf[0] == 0:
                            self.end(t, "aborted by the client")
                    except BlockingIOError:
                        pass
                    except OSError as exc:
                        # ECONNREFUSED: the client's port is gone (ICMP port unreachable).
                        self.end(t, f"network error: {exc.strerror}")
                    except Exception:  # noqa: BLE001 - one transfer's bug must not stop the loop
                        self.log.exception("TFTP transfer of %s failed", t.path)
                        self.end(t, "internal error", send_error=True)
                else:
                    handler = handlers.get(fd)
                    if handler is not None:
                        try:
                            handler(now)
                        except Exception:  # noqa: BLE001 - same for requests and control
                            self.log.exception("TFTP service error")
            if now >= next_sweep:
                next_sweep = now + tick
                self.sweep(now)
                if now - self._last_report >= 1.0:
                    self.report(now)

    def finish(self, t: Transfer, now: float) -> None:
        self.stats["served"] += 1
        self.log.debug("TFTP sent %s to %s in %.3f s", t.path, t.client[0], now - t.started)
        self.forget(t, True)

    def end(self, t: Transfer, why: str, send_error: bool = False) -> None:
        """End a transfer. One that never had an ACK is logged at debug only: a flood's
        requests end that way by the thousand, and the summary line counts them."""
        self.stats["aborted"] += 1
        if t.fresh:
            self.log.debug("TFTP transfer of %s to %s ended: %s", t.path, t.client[0], why)
        else:
            self.note(
                logging.INFO,
                "TFTP transfer of %s to %s ended: %s",
                t.path,
                t.client[0],
                why,
                answered=True,
            )
        if send_error:
            try:
                t.sock.send(error_packet(ERR_UNDEFINED, why))
            except OSError:
                pass
        self.forget(t, False)

    def forget(self, t: Transfer, ok: bool) -> None:
        self.detach(t)
        t.close()
        if self.on_leave is not None:
            self.on_leave(t, ok)

    def sweep(self, now: float) -> None:
        for t in [t for t in self.transfers.values() if now >= t.deadline]:
            t.retries += 1
            if t.fresh:
                if t.retries > self.retries or now >= t.started + self.unconfirmed_timeout:
                    self.stats["unacknowledged"] += 1
                    self.end(t, "timed out", send_error=True)
                    continue
            elif t.retries > self.retries or t.retries * t.timeout >= self.max_stall:
                self.end(t, "timed out", send_error=True)
                continue
            try:
                t.resend(now)
            except OSError as exc:
                self.end(t, f"network error: {exc.strerror}")
                continue
            if t.fresh:
                self._pace(t, now)

    def report(self, now: float) -> None:
        """Refill the log quota; one line for the counters that moved since the last one."""
        self._quota = [_LOG_LINES_PER_SECOND, _LOG_LINES_PER_SECOND]
        stats = self.stats
        moved = [(stats[k] - self._reported.get(k, 0), label) for k, label in _REPORTED.items()]
        if any(n for n, _ in moved):
            self._reported = {k: stats[k] for k in _REPORTED}
            state = self.on_report() if self.on_report is not None else ""
            self.log.info(
                "TFTP in the last %.1f s: %s%s",
                now - self._last_report,
                ", ".join(f"{n} {label}" for n, label in moved if n),
                f"; {state}" if state else "",
            )
        self._last_report = now

    def close(self) -> None:
        for t in list(self.transfers.values()):
            t.close()
        self.transfers.clear()
        self.ep.close()


@dataclass
class _Job:
    """A request on its way: waiting for the dynamic worker, or for a transfer to start."""

    path: str
    client: tuple[str, int]
    local: str | None
    request: Request
    content: bytes | None = None
    error: TftpError | None = None


@dataclass
class _Helper:
    """A helper process serving transfers handed over on its control socket."""

    proc: subprocess.Popen[bytes]
    ctrl: socket.socket
    active: int = 0
    remote: dict[tuple[str, int], str] = field(default_factory=dict)
    per_ip: collections.Counter[str] = field(default_factory=collections.Counter)


def default_workers() -> int:
    """One process per core but one, at most four. Measured with bench/tftp.py on two cores:
    a second process costs more CPU (fewer ACKs per wake-up) than it gains, and the clients
    and the other services need the other core."""
    return max(1, min(4, (os.cpu_count() or 1) - 1))


class TftpService:
    """A read-only TFTP server. The socket is bound in the constructor, so `.port` is known
    at once (port 0 picks a free one) and privileges can be dropped before `start()`.

    `start()` serves in the calling thread until `stop()`; `start_thread()` serves in a daemon
    thread. `timeout` and `retries` govern retransmission; a client's `timeout` option
    overrides the first up to `max_timeout` (a larger one is left out of the OACK).
    `max_transfers`, `max_unconfirmed`, `max_per_client`, `max_pending`, `unconfirmed_timeout`
    and `max_stall` are the limits the module docstring describes; `stats` counts what they
    refused, evicted and dropped.
    `workers` > 1 starts `workers - 1` helper processes (`provisioner.pxe.tftp_worker`) that
    share the transfers with this one, so large files use every core: requests, paths and the
    `dynamic` callable stay here, and a helper gets the open file and the connected socket of
    a transfer once the client has acknowledged its first packet.
    """

    def __init__(
        self,
        root: Path | str,
        address: str = "0.0.0.0",
        port: int = 69,
        dynamic: DynamicFunc | None = None,
        logger: logging.Logger | None = None,
        *,
        timeout: float = 1.0,
        retries: int = 5,
        max_blksize: int = MAX_BLKSIZE,
        max_windowsize: int = 64,
        max_transfers: int = 1024,
        max_unconfirmed: int = 4096,
        max_per_client: int = 8,
        max_pending: int = 256,
        max_timeout: int = 5,
        unconfirmed_timeout: float = 2.5,
        max_stall: float = 10.0,
        workers: int = 1,
    ) -> None:
        self.files = TftpFiles(root, dynamic)
        self.log = logger or logging.getLogger("provisioner.tftp")
        self.timeout = timeout
        self.retries = retries
        self.max_blksize = max(8, min(max_blksize, MAX_BLKSIZE))
        self.max_windowsize = max(1, max_windowsize)
        self.max_transfers = max_transfers
        self.max_per_client = max(1, max_per_client)
        self.max_pending = max(1, max_pending)
        self.max_timeout = max_timeout
        self.max_stall = max_stall
        self.workers = max(1, workers)
        # Each transfer holds a socket and an open file; keep 256 descriptors for the rest.
        files = _raise_open_files_limit()
        room = max(64, (files - 256) // 2 - max_transfers)
        self.max_unconfirmed = max(1, min(max_unconfirmed, room))
        if self.max_unconfirmed < max_unconfirmed:
            self.log.warning(
                "TFTP: %d open files allowed, so at most %d unconfirmed transfers (not %d)",
                files,
                self.max_unconfirmed,
                max_unconfirmed,
            )
        self._family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self._sock = socket.socket(self._family, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        _big_receive_buffer(self._sock)
        self._sock.bind((address, port))
        self._sock.setblocking(False)
        # Bound to every address: learn which one each request was sent to, so the transfer
        # and error replies come from that address (clients ignore other sources).
        self._pktinfo = self._family == socket.AF_INET and address in ("", "0.0.0.0")
        if self._pktinfo:
            self._sock.setsockopt(socket.IPPROTO_IP, _IP_PKTINFO, 1)
        self.address = self._sock.getsockname()[0]
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._loop = TransferLoop(
            self.log,
            retries,
            max(0.01, min(0.1, timeout / 4)),
            max_stall=max_stall,
            unconfirmed_timeout=unconfirmed_timeout,
        )
        self._loop.on_leave = self._left
        self._loop.on_confirm = self._confirmed
        self._loop.on_report = self._state
        self.stats = self._loop.stats
        # The latest transfer or request of each client (ip, port), to recognise a
        # retransmitted request; and per address, how many transfers and requests it has
        # (here, queued or in helpers), for the per-address limit.
        self._by_client: dict[tuple[str, int], Transfer | _Job | _Helper] = {}
        self._per_ip: dict[str, int] = {}
        # Unconfirmed transfers of this process, oldest first: the next to evict.
        self._unconfirmed: collections.OrderedDict[Transfer, None] = collections.OrderedDict()
        self._helpers: list[_Helper] = []
        self._pending = 0
        self._queue: collections.deque[_Job] = collections.deque()
        self._queue_cv = threading.Condition()
        self._worker_stop = False
        self._done: collections.deque[_Job] = collections.deque()
        self._backlog: collections.deque[tuple[bytes, tuple[str, int], str | None]] = (
            collections.deque()
        )
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()
        self._loop_thread: threading.Thread | None = None
        self._closed = False

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    @property
    def active_transfers(self) -> int:
        return len(self._loop.transfers) + sum(h.active for h in self._helpers)

    @property
    def unconfirmed_transfers(self) -> int:
        """Transfers whose client has not acknowledged anything yet."""
        return len(self._unconfirmed)

    @property
    def confirmed_transfers(self) -> int:
        """Transfers the client has acknowledged at least once, here and in helpers."""
        return (
            len(self._loop.transfers)
            - len(self._unconfirmed)
            + sum(h.active for h in self._helpers)
        )

    @property
    def pending_requests(self) -> int:
        """Requests waiting for the `dynamic` worker or for their transfer to start."""
        return self._pending

    def requests_from(self, ip: str) -> int:
        """Transfers and requests on their way for one client address (its limit's count)."""
        return self._per_ip.get(ip, 0)

    def __enter__(self) -> TftpService:
        self.start_thread()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start_thread(self) -> threading.Thread:
        self._stopped.clear()
        thread = threading.Thread(target=self.start, name="tftp", daemon=True)
        thread.start()
        return thread

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving: running transfers are dropped, sockets, files and helpers closed.
        Safe from a signal handler in the serving thread (it returns before the loop ends)."""
        self._stopping.set()
        self._wake()
        if self._loop_thread is None:
            self._close()
        elif self._loop_thread is not threading.current_thread():
            self._stopped.wait(timeout)

    def start(self) -> None:
        """Serve until `stop()`; blocking."""
        if self._closed or self._loop_thread is not None:
            raise RuntimeError("a TftpService is started once")
        self._loop_thread = threading.current_thread()
        self._stopped.clear()
        worker = None
        try:
            if self.files.dynamic is not None:
                worker = threading.Thread(
                    target=self._dynamic_worker, name="tftp-dynamic", daemon=True
                )
                worker.start()
            for _ in range(self.workers - 1):
                self._start_helper()
            self._loop.watch(self._sock.fileno(), self._on_requests)
            self._loop.watch(self._wake_r, self._on_wake)
            self.log.info(
                "TFTP serving %s on %s port %d (%d process%s)",
                self.files.root,
                self.address or "*",
                self.port,
                self.workers,
                "es" if self.workers > 1 else "",
            )
            self._loop.run(self._stopping.is_set)
        finally:
            if worker is not None:
                with self._queue_cv:
                    self._worker_stop = True
                    self._queue_cv.notify()
                worker.join(5)
            self._close()
            self._stopped.set()

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._loop.close()
        for helper in self._helpers:
            helper.ctrl.close()  # the helper exits on end of file
        for helper in self._helpers:
            try:
                helper.proc.wait(2)
            except subprocess.TimeoutExpired:
                helper.proc.kill()
                helper.proc.wait()
        self._helpers.clear()
        self._by_client.clear()
        self._per_ip.clear()
        self._unconfirmed.clear()
        self._sock.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass  # full (a wake-up is pending anyway) or closed

    def _count(self, ip: str, n: int) -> None:
        count = self._per_ip.get(ip, 0) + n
        if count > 0:
            self._per_ip[ip] = count
        else:
            self._per_ip.pop(ip, None)

    def _state(self) -> str:
        return (
            f"now {self.unconfirmed_transfers} unconfirmed, {self.confirmed_transfers} "
            f"confirmed, {self._pending} queued"
        )

    def _start_helper(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        argv = [
            sys.executable,
            "-m",
            "provisioner.pxe.tftp_worker",
            str(theirs.fileno()),
            str(self.retries),
            logging.getLevelName(self.log.getEffectiveLevel()),
            str(self.max_stall),
        ]
        try:
            proc = subprocess.Popen(argv, pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL)
        finally:
            theirs.close()
        # Never block on a helper: a full control socket means "serve it here instead".
        ours.setblocking(False)
        helper = _Helper(proc, ours)
        self._helpers.append(helper)
        self._loop.watch(ours.fileno(), lambda now: self._on_helper(helper))

    def _on_helper(self, helper: _Helper) -> None:
        """A helper reports each transfer that left it, as `ip port`."""
        while True:
            try:
                msg = helper.ctrl.recv(256)
            except BlockingIOError:
                return
            except OSError:
                msg = b""
            if not msg:
                if not self._stopping.is_set():
                    self.log.error("TFTP helper process %d is gone", helper.proc.pid)
                self._loop.unwatch(helper.ctrl.fileno())
                self._helpers.remove(helper)
                helper.ctrl.close()
                for client in helper.remote:
                    if self._by_client.get(client) is helper:
                        del self._by_client[client]
                for ip, n in helper.per_ip.items():
                    self._count(ip, -n)
                return
            ip, _, port = msg.decode().rpartition(" ")
            client = (ip, int(port))
            helper.active -= 1
            helper.remote.pop(client, None)
            if self._by_client.get(client) is helper:
                del self._by_client[client]
            if helper.per_ip[ip] > 0:
                helper.per_ip[ip] -= 1
                self._count(ip, -1)

    def _on_requests(self, now: float) -> None:
        """Read what the socket holds into the backlog (reading is cheap), keeping the newest
        `max_unconfirmed`: older ones would only start transfers that the newer ones evict
        before a client could answer. Then handle a batch of them."""
        sock = self._sock
        backlog = self._backlog
        for _ in range(_READ_BATCH):
            local: str | None = None
            try:
                if self._pktinfo:
                    data, anc, flags, addr = sock.recvmsg(2048, socket.CMSG_SPACE(_PKTINFO.size))
                    for level, kind, value in anc:
                        if level == socket.IPPROTO_IP and kind == _IP_PKTINFO:
                            local = socket.inet_ntoa(_PKTINFO.unpack(value[: _PKTINFO.size])[1])
                    if flags & socket.MSG_TRUNC:
                        continue
                else:
                    data, addr = sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                continue
            self.stats["packets"] += 1
            backlog.append((data, (addr[0], addr[1]), local))
        excess = len(backlog) - self.max_unconfirmed
        if excess > 0:
            self.stats["overflow"] += excess
            for _ in range(excess):
                backlog.popleft()
        self._handle_backlog(now)

    def _handle_backlog(self, now: float) -> None:
        """A batch of requests, oldest first; if some are left, come back (through the wake-up
        pipe) after the transfers' ACKs had their turn."""
        backlog = self._backlog
        for _ in range(_HANDLE_BATCH):
            if not backlog:
                return
            data, client, local = backlog.popleft()
            try:
                self._on_request(data, client, local, now)
            except Exception:  # noqa: BLE001 - one bad packet must not stop the service
                self.log.exception("TFTP request from %s:%d failed", client[0], client[1])
        if backlog:
            self._wake()

    def _on_request(
        self, data: bytes, client: tuple[str, int], local: str | None, now: float
    ) -> None:
        if len(data) < 2 or data[0] != 0:
            self.stats["garbage"] += 1
            return
        opcode = data[1]
        if opcode == ERROR:
            return  # never answer an error, or two servers could ping-pong forever
        if opcode == WRQ:
            self.stats["refused"] += 1
            self._send_error(client, local, ERR_ACCESS, "write requests are refused")
            return
        if opcode != RRQ:
            self.stats["garbage"] += 1
            self._send_error(client, local, ERR_ILLEGAL, "illegal TFTP operation")
            return
        try:
            request = parse_request(data)
            if request.mode not in ("octet", "netascii"):
                raise TftpError(ERR_ILLEGAL, "unsupported mode")
            path = clean_path(request.filename)
        except TftpError as exc:
            self.stats["refused"] += 1
            self._loop.note(
                logging.INFO, "TFTP refused %r from %s: %s", data[2:66], client[0], exc.message
            )
            self._send_error(client, local, exc.code, exc.message)
            return
        self.stats["requests"] += 1
        previous = self._by_client.get(client)
        if previous is not None:
            if isinstance(previous, _Helper):
                if previous.remote.get(client) == path:
                    return  # a retransmitted request: the running transfer answers it
            elif previous.path == path:
                return
            elif isinstance(previous, Transfer):
                self._loop.end(previous, "superseded by a new request")
        if self._per_ip.get(client[0], 0) >= self.max_per_client:
            self.stats["refused"] += 1
            self.stats["client_limit"] += 1
            self._send_error(client, local, ERR_UNDEFINED, "too many requests from you")
            return
        if self.confirmed_transfers >= self.max_transfers:
            self.stats["refused"] += 1
            self.stats["busy"] += 1
            self._send_error(client, local, ERR_UNDEFINED, "server busy, try again")
            return
        job = _Job(path, client, local, request)
        if self.files.dynamic is None:
            self._begin(job, now)
            return
        self._by_client[client] = job
        self._count(client[0], 1)
        self._pending += 1
        dropped = None
        with self._queue_cv:
            if len(self._queue) >= self.max_pending:
                # The oldest waiting request goes, unanswered: its client retransmits, and a
                # burst never queues more than max_pending ahead of a real node's request.
                dropped = self._queue.popleft()
            self._queue.append(job)
            self._queue_cv.notify()
        if dropped is not None:
            self._pending -= 1
            self.stats["pending_dropped"] += 1
            self._count(dropped.client[0], -1)
            if self._by_client.get(dropped.client) is dropped:
                del self._by_client[dropped.client]

    def _dynamic_worker(self) -> None:
        cv, jobs = self._queue_cv, self._queue
        while True:
            with cv:
                while not jobs:
                    if self._worker_stop:
                        return
                    cv.wait()
                job = jobs.popleft()
            try:
                job.content = self.files.computed(job.path, job.client)
            except Exception:  # noqa: BLE001 - a renderer bug costs one request, not the server
                self.log.exception("TFTP dynamic file %s for %s failed", job.path, job.client[0])
                job.error = TftpError(ERR_UNDEFINED, "internal error")
            self._done.append(job)
            self._wake()

    def _on_wake(self, now: float) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        while self._done:
            job = self._done.popleft()
            self._pending -= 1
            self._count(job.client[0], -1)
            if self._by_client.get(job.client) is job:
                del self._by_client[job.client]
            if not self._stopping.is_set():
                self._begin(job, now)
        if self._backlog:
            self._handle_backlog(now)

    def _begin(self, job: _Job, now: float) -> None:
        """Open what the path names, negotiate, and start the transfer (unconfirmed, here)."""
        client, local = job.client, job.local
        source: Source | None = None
        sock: socket.socket | None = None
        try:
            if job.error is not None:
                raise job.error
            if job.content is not None:
                source = BytesSource(job.content)
            else:
                source = self.files.open_file(job.path)
            if job.request.mode == "netascii":
                if source.size > _NETASCII_LIMIT:
                    raise TftpError(ERR_UNDEFINED, "file too large for netascii, use octet")
                whole = source.read(0, source.size)
                source.close()
                source = BytesSource(to_netascii(whole))
            blksize, window, timeout, accepted = self._negotiate(job.request.options, source)
            self._make_room()
            sock = socket.socket(self._family, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.bind((local or self.address, 0))
            sock.connect(client)
        except TftpError as exc:
            self.stats["refused"] += 1
            self._loop.note(
                logging.INFO, "TFTP refused %s to %s: %s", job.path, client[0], exc.message
            )
            if source is not None:
                source.close()
            self._send_error(client, local, exc.code, exc.message)
            return
        except OSError as exc:
            self._loop.note(
                logging.WARNING, "TFTP cannot send %s to %s: %s", job.path, client[0], exc
            )
            if source is not None:
                source.close()
            if sock is not None:
                sock.close()
            self._send_error(client, local, ERR_UNDEFINED, "server error")
            return
        previous = self._by_client.get(client)
        if isinstance(previous, Transfer):
            # Requests for two paths from one port crossed in the dynamic queue: the newest
            # transfer wins, so one port never holds more than one here.
            self._loop.end(previous, "superseded by a new request")
        oack = oack_packet(accepted) if accepted else None
        self.log.debug(
            "TFTP offering %s (%d bytes%s) to %s:%d",
            job.path,
            source.size,
            ", computed" if job.content is not None else "",
            client[0],
            client[1],
        )
        t = Transfer(sock, client, job.path, source, blksize, window, timeout, oack, now)
        self._unconfirmed[t] = None
        self._by_client[client] = t
        self._count(client[0], 1)
        self._loop.add(t, now)

    def _make_room(self) -> None:
        """Evict the oldest unconfirmed transfers while there are `max_unconfirmed`."""
        while len(self._unconfirmed) >= self.max_unconfirmed:
            oldest, _ = self._unconfirmed.popitem(last=False)
            self.stats["evicted"] += 1
            self._loop.end(oldest, "evicted unconfirmed")

    def _confirmed(self, t: Transfer, now: float, done: bool) -> None:
        """The client's first ACK: the transfer counts as confirmed, and may move to a helper."""
        self._unconfirmed.pop(t, None)
        self._loop.note(
            logging.INFO,
            "TFTP sending %s (%d bytes) to %s:%d",
            t.path,
            t.source.size,
            t.client[0],
            t.client[1],
            answered=True,
        )
        if done:
            return
        if self.confirmed_transfers > self.max_transfers:
            self.stats["busy"] += 1
            self._loop.end(t, "server busy, try again", send_error=True)
            return
        helper = self._pick_helper()
        if helper is not None:
            self._hand_over(helper, t)

    def _pick_helper(self) -> _Helper | None:
        """The least busy process, this one first on a tie; None means this one. This
        process's count leaves out the transfer being placed."""
        best: _Helper | None = None
        load = len(self._loop.transfers) - len(self._unconfirmed) - 1
        for helper in self._helpers:
            if helper.active < load:
                best, load = helper, helper.active
        return best

    def _hand_over(self, helper: _Helper, t: Transfer) -> bool:
        """Give the helper the connected socket, the file (computed content goes through a
        memfd) and where the transfer stands; False if its control socket is full, and the
        transfer stays here."""
        source = t.source
        if isinstance(source, FileSource):
            fd = source.fd
        else:
            fd = os.memfd_create("tftp", os.MFD_CLOEXEC)
            _write_all(fd, source)
        header = {
            "path": t.path,
            "client": list(t.client),
            "size": source.size,
            "blksize": t.blksize,
            "window": t.window,
            "timeout": t.timeout,
            "acked": t.acked,
            "sent": t.sent,
            "last": t.last,
        }
        self._loop.detach(t)
        try:
            socket.send_fds(helper.ctrl, [json.dumps(header).encode()], [t.sock.fileno(), fd])
        except OSError:
            if fd != getattr(source, "fd", None):
                os.close(fd)
            self._loop.attach(t)
            return False
        if fd != getattr(source, "fd", None):
            os.close(fd)
        t.close()
        helper.active += 1
        helper.remote[t.client] = t.path
        helper.per_ip[t.client[0]] += 1  # the count moves with the transfer
        if self._by_client.get(t.client) is t:
            self._by_client[t.client] = helper
        self.stats["handed_over"] += 1
        return True

    def _left(self, t: Transfer, ok: bool) -> None:
        self._unconfirmed.pop(t, None)
        self._count(t.client[0], -1)
        if self._by_client.get(t.client) is t:
            del self._by_client[t.client]

    def _negotiate(
        self, options: dict[str, str], source: Source
    ) -> tuple[int, int, float, dict[str, str]]:
        """Options we honour, with the values we answer; invalid ones are left out (RFC 2347
        lets a server ignore what it does not accept)."""
        blksize, window, timeout = 512, 1, self.timeout
        accepted: dict[str, str] = {}
        for name, value in options.items():
            # Plain digits only: int() would also take " 25", "+25" and "2_5".
            if not (value.isascii() and value.isdigit() and len(value) <= 12):
                continue
            number = int(value)
            if name == "blksize" and number >= 8:
                blksize = min(number, self.max_blksize)
                accepted[name] = str(blksize)
            elif name == "tsize" and number >= 0:
                accepted[name] = str(source.size)
            elif name == "timeout" and 1 <= number <= min(255, self.max_timeout):
                timeout = float(number)
                accepted[name] = str(number)
            elif name == "windowsize" and 1 <= number <= 65535:
                window = min(number, self.max_windowsize)
                accepted[name] = str(window)
        return blksize, window, timeout, accepted

    def _send_error(self, client: tuple[str, int], local: str | None, code: int, msg: str) -> None:
        packet = error_packet(code, msg)
        try:
            if self._pktinfo and local:
                info = _PKTINFO.pack(0, socket.inet_aton(local), b"\0\0\0\0")
                self._sock.sendmsg([packet], [(socket.IPPROTO_IP, _IP_PKTINFO, info)], 0, client)
            else:
                self._sock.sendto(packet, client)
        except OSError:
            pass  # an error reply is best effort


def _big_receive_buffer(sock: socket.socket, size: int = 16 << 20) -> None:
    """Room for a burst of requests (a rack powering on at once, or a flood: each small request
    takes about 830 bytes of it, so 16 MB, which Linux doubles, holds some 40,000, and a node
    asking after a burst is not dropped before the service reads it). FORCE passes the
    system's rmem_max when we may (root, as a server on port 69 usually is); the memory is
    only used while requests wait."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), size)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


def _raise_open_files_limit() -> int:
    """Raise the soft limit of open files to the hard one (each transfer holds a socket and
    often a file); the soft limit in force after."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 16)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ValueError, OSError):
            pass
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def _write_all(fd: int, source: BytesSource) -> None:
    view = memoryview(source.data)
    while view:
        view = view[os.write(fd, view) :]


def main(argv: list[str] | None = None) -> int:
    """`python -m provisioner.pxe.tftp ROOT [ADDRESS [PORT]] [--workers N]
    [--max-per-client N]`: serve a directory."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(prog="python -m provisioner.pxe.tftp")
    parser.add_argument("root")
    parser.add_argument("address", nargs="?", default="127.0.0.1")
    parser.add_argument("port", nargs="?", type=int, default=6969)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--max-per-client", type=int, default=8)
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(message)s")
    service = TftpService(
        Path(args.root),
        args.address,
        args.port,
        workers=args.workers,
        max_per_client=args.max_per_client,
    )
    signal.signal(signal.SIGTERM, lambda *_: service.stop())
    print(f"serving {args.root} on {service.address}:{service.port}", flush=True)
    try:
        service.start()
    except KeyboardInterrupt:
        service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
