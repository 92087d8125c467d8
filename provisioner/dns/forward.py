"""Forwarding to the upstream resolvers: the one place a query leaves for another server.

`Forwarder(upstreams, timeout)` asks the upstreams in turn, each for its share of `timeout`,
under a fresh random id, and accepts an answer only with that id and the query's question
(`wire.same_question`); what it passes on is `wire.relayed` with the client's id. Two ways
use the same rules:

- `ask(data, tcp)` blocks until an answer or the last upstream's share is over (TCP clients,
  and dnslib's `resolve`); a truncated UDP answer is asked again over TCP.
- `open(reply_sock)`, then `submit(data, client)` and `run(stopping)` in a thread of its own:
  UDP queries forwarded without blocking the UDP loop, at most `limit` at once, the answer
  taken only from the upstream asked and sent to the client from `reply_sock`; when all
  upstreams fail, or too many are waiting, the client gets SERVFAIL.
"""

from __future__ import annotations

import logging
import random
import select
import socket
import struct
import threading
import time
from collections.abc import Sequence
from typing import Any

from dnslib import RCODE

from provisioner.dns.wire import recv_exact, refused, relayed, same_question

log = logging.getLogger("provisioner.dns")


class Forwarder:
    """Forwards queries to `upstreams` (`(ip, port)` resolvers, asked in order); a query
    takes at most `timeout` seconds over all of them."""

    def __init__(
        self,
        upstreams: Sequence[tuple[str, int]],
        timeout: float,
        logger: logging.Logger | None = None,
        limit: int = 4096,
    ) -> None:
        self.upstreams = [(str(ip), int(port)) for ip, port in upstreams]
        self.share = timeout / max(1, len(self.upstreams))
        self.log = logger or log
        self.limit = limit
        self.lock = threading.Lock()
        # id -> [client, query, upstream index, deadline]
        self.pending: dict[int, list[Any]] = {}
        self.reply_sock: socket.socket | None = None
        self.socks: dict[int, socket.socket] = {}

    # -- blocking -------------------------------------------------------------------------------

    def ask(self, data: bytes, tcp: bool = False) -> bytes | None:
        """Ask the upstreams in turn (blocking); the raw answer with the query's id, or None."""
        qid = data[:2]
        for ip, port in self.upstreams:
            query = struct.pack("!H", random.getrandbits(16)) + data[2:]
            try:
                if tcp:
                    answer = _ask_tcp(query, ip, port, self.share)
                else:
                    answer = _ask_udp(query, ip, port, self.share)
                    if answer is not None and answer[2] & 0x02:
                        answer = _ask_tcp(query, ip, port, self.share)  # truncated: again
            except OSError:
                continue
            if answer is not None and answer[:2] == query[:2] and same_question(answer, query):
                return qid + relayed(answer)[2:]
        return None

    # -- non-blocking, for the UDP loop ---------------------------------------------------------

    def open(self, reply_sock: socket.socket) -> None:
        """Get ready to `submit`: answers go to clients from `reply_sock`."""
        self.reply_sock = reply_sock
        families = {socket.AF_INET6 if ":" in ip else socket.AF_INET for ip, _ in self.upstreams}
        self.socks = {family: socket.socket(family, socket.SOCK_DGRAM) for family in families}
        for sock in self.socks.values():
            sock.setblocking(False)

    def submit(self, data: bytes, client: tuple[str, int]) -> None:
        with self.lock:
            if len(self.pending) >= self.limit:
                qid = None
            else:
                qid = random.getrandbits(16)
                while qid in self.pending:
                    qid = random.getrandbits(16)
                self.pending[qid] = [client, data, 0, time.monotonic() + self.share]
        if qid is None:
            self._fail(data, client)
            return
        self._send(qid, data, 0)

    def _send(self, qid: int, data: bytes, index: int) -> None:
        ip, port = self.upstreams[index]
        sock = self.socks[socket.AF_INET6 if ":" in ip else socket.AF_INET]
        try:
            sock.sendto(struct.pack("!H", qid) + data[2:], (ip, port))
        except OSError as exc:
            self.log.debug("DNS forward to %s:%d failed: %s", ip, port, exc)

    def _reply(self, out: bytes | None, client: tuple[str, int]) -> None:
        if out is not None and self.reply_sock is not None:
            try:
                self.reply_sock.sendto(out, client)
            except OSError:
                pass

    def _fail(self, data: bytes, client: tuple[str, int]) -> None:
        self._reply(refused(data, RCODE.SERVFAIL, ra=True), client)

    def run(self, stopping: threading.Event) -> None:
        """Receive upstream answers and move on from late ones until `stopping` is set."""
        socks = list(self.socks.values())
        while not stopping.is_set():
            try:
                ready, _, _ = select.select(socks, [], [], 0.05)
            except (OSError, ValueError):
                return
            for sock in ready:
                while True:
                    try:
                        answer, peer = sock.recvfrom(65535)
                    except OSError:
                        break  # drained (EAGAIN), or an ICMP error from an upstream
                    self._on_answer(answer, (peer[0], peer[1]))
            self._sweep(time.monotonic())

    def _on_answer(self, answer: bytes, peer: tuple[str, int]) -> None:
        if len(answer) < 12:
            return
        qid = struct.unpack("!H", answer[:2])[0]
        with self.lock:
            item = self.pending.get(qid)
            if item is None or self.upstreams[item[2]] != peer:
                return
            if not same_question(answer, item[1]):
                return
            del self.pending[qid]
        client, data = item[0], item[1]
        self._reply(data[:2] + relayed(answer)[2:], client)

    def _sweep(self, now: float) -> None:
        retry, failed = [], []
        with self.lock:
            for qid, item in list(self.pending.items()):
                if now < item[3]:
                    continue
                if item[2] + 1 < len(self.upstreams):
                    item[2] += 1
                    item[3] = now + self.share
                    retry.append((qid, item[1], item[2]))
                else:
                    del self.pending[qid]
                    failed.append((item[1], item[0]))
        for qid, data, index in retry:
            self._send(qid, data, index)
        for data, client in failed:
            self._fail(data, client)

    def close(self) -> None:
        for sock in self.socks.values():
            sock.close()


def _ask_udp(query: bytes, ip: str, port: int, timeout: float) -> bytes | None:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.connect((ip, port))
        s.send(query)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                answer = s.recv(65535)
            except TimeoutError:
                return None
            if answer[:2] == query[:2]:
                return answer
        return None


def _ask_tcp(query: bytes, ip: str, port: int, timeout: float) -> bytes | None:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect((ip, port))
        s.sendall(struct.pack("!H", len(query)) + query)
        head = recv_exact(s, 2)
        if head is None:
            return None
        return recv_exact(s, struct.unpack("!H", head)[0])
