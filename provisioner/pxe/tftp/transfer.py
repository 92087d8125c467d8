"""The TFTP transfer machine: `Transfer` (one read transfer and its window) and `TransferLoop`
(the epoll loop that drives them), shared by the service and its helper processes.

Each transfer has its own socket, connected to the client (its own TID, as RFC 1350 asks).
Blocks are resent on timeout and never on a duplicate ACK (no Sorcerer's Apprentice). A
transfer is *unconfirmed* until the client's first ACK (the client may be spoofed or dead) and
*confirmed* after it: an unconfirmed one is resent at most once a second and dropped
`unconfirmed_timeout` (2.5 s) after it started, whatever `timeout` the client asked for; a
confirmed one that gets no new ACK for `max_stall` (10 s) ends at its next retransmission time.

Per-request lines are logged at info at most 20 a second (a quota for clients that never
answered and one of its own for those that did, so a spoofed flood cannot hide them);
refusals, evictions and drops are counted in `stats` and summed up in one info line a second.
"""

from __future__ import annotations

import collections
import logging
import select
import socket
import time
from collections.abc import Callable

from provisioner.pxe.tftp.files import Source
from provisioner.pxe.tftp.packets import ACK, DATA, ERR_UNDEFINED, ERROR, HEADER, error_packet

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
            self.sock.send(HEADER.pack(DATA, k & 0xFFFF) + data)
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
        pack = HEADER.pack
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
            self.sock.send(HEADER.pack(DATA, k & 0xFFFF) + data)
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
