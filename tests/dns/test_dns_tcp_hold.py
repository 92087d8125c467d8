"""DNS over TCP that held connections cannot lock out (issue 9): every slot held by a client
trickling a byte at a time, a flood of reconnecting clients, a connection that trickles past
its deadline or its idle time, and the bookkeeping once they are gone."""

from __future__ import annotations

import os
import select
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Iterator

import pytest
from dnslib import QTYPE, RR, A, DNSRecord
from dnslib.server import BaseResolver

from provisioner.dns.server import DnsServer

PARTIAL = b"\x01\x00"  # announces a 256-byte message, of which the trickle sends a byte a time


class Fixed(BaseResolver):
    def resolve(self, request, handler):
        reply = request.reply()
        reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A("192.0.2.1"), ttl=60))
        return reply


@pytest.fixture
def dns() -> Iterator:
    """`dns(**server options)` -> a running DnsServer on 127.0.0.1:0 answering 192.0.2.1."""
    servers: list[DnsServer] = []

    def start(**kw) -> DnsServer:
        server = DnsServer(Fixed(), "127.0.0.1", 0, **kw)
        server.start_thread()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source, 0))
    s.settimeout(2)
    s.connect(("127.0.0.1", port))
    return s


def ask_on(s: socket.socket, name: str, timeout: float = 1.0) -> list[str]:
    q = DNSRecord.question(name)
    wire = q.pack()
    s.settimeout(timeout)
    s.sendall(struct.pack("!H", len(wire)) + wire)
    head = recv_all(s, 2)
    reply = DNSRecord.parse(recv_all(s, struct.unpack("!H", head)[0]))
    assert reply.header.id == q.header.id
    return [str(rr.rdata) for rr in reply.rr]


def ask_tcp(port: int, name: str, source: str = "127.0.0.1") -> list[str]:
    with connect(port, source) as s:
        return ask_on(s, name)


def ask_udp(port: int, name: str) -> list[str]:
    reply = DNSRecord.parse(DNSRecord.question(name).send("127.0.0.1", port, timeout=1))
    return [str(rr.rdata) for rr in reply.rr]


def recv_all(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        assert chunk, "the server closed the connection"
        data += chunk
    return data


def hold(port: int, count: int, source: str = "127.0.0.1") -> list[socket.socket]:
    socks = []
    for _ in range(count):
        s = connect(port, source)
        s.sendall(PARTIAL)
        socks.append(s)
    return socks


def trickle(socks: list[socket.socket]) -> None:
    """One more byte of the partial message on every connection still open."""
    for s in socks:
        try:
            s.send(b"x")
        except OSError:
            pass


def closed_by_server(s: socket.socket, wait: float) -> bool:
    if not select.select([s], [], [], wait)[0]:
        return False
    try:
        return s.recv(4096) == b""
    except OSError:
        return True  # reset


def wait_for(check, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.02)
    return check()


def tcp_client_threads() -> int:
    return sum(t.name == "dns-tcp-client" for t in threading.enumerate())


def socket_fds() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return count


def test_all_slots_held_by_tricklers_a_new_query_is_still_answered(dns):
    server = dns(tcp_idle=30.0, tcp_lifetime=30.0)  # neither may end the holders here
    port = server.port
    holders = hold(port, server.max_tcp_clients)
    stop = threading.Event()

    def keep_trickling() -> None:
        end = time.monotonic() + 10
        while not stop.wait(1.0) and time.monotonic() < end:
            trickle(holders)

    trickler = threading.Thread(target=keep_trickling)
    trickler.start()
    try:
        assert wait_for(lambda: server.tcp_clients == server.max_tcp_clients, 2)
        time.sleep(1.2)  # a byte each: held, not idle
        assert server.tcp_clients == server.max_tcp_clients
        assert ask_udp(port, "during.hold.") == ["192.0.2.1"]

        start = time.monotonic()
        assert ask_tcp(port, "fresh.example.") == ["192.0.2.1"]
        assert time.monotonic() - start < 1.0
        assert ask_udp(port, "still.during.hold.") == ["192.0.2.1"]
        assert server.stats["tcp_evicted"] == 1
        assert server.tcp_clients <= server.max_tcp_clients
    finally:
        stop.set()
        trickler.join()
        for s in holders:
            s.close()


def test_a_reconnecting_flood_does_not_starve_a_client_that_asks_at_once(dns):
    server = dns(max_tcp_clients=16, tcp_idle=30.0, tcp_lifetime=30.0)
    port = server.port
    stop = threading.Event()
    opened = [0] * 4

    def flood(i: int) -> None:
        # Reconnects as fast as it can, each connection holding a half message: bounded in
        # count and time, and in descriptors (its oldest closed beyond 16).
        socks: deque[socket.socket] = deque()
        end = time.monotonic() + 5
        try:
            while not stop.is_set() and opened[i] < 5000 and time.monotonic() < end:
                try:
                    socks.append(hold(port, 1)[0])
                except OSError:
                    continue
                opened[i] += 1
                if len(socks) > 16:
                    socks.popleft().close()
        finally:
            for s in socks:
                s.close()

    flooders = [threading.Thread(target=flood, args=(i,)) for i in range(4)]
    for thread in flooders:
        thread.start()
    try:
        assert wait_for(lambda: server.tcp_clients == 16, 2)
        evicted = server.stats["tcp_evicted"]
        asked, end = 0, time.monotonic() + 1.5
        while time.monotonic() < end:
            # Timed from the connection: under a flood the kernel may drop a SYN from a full
            # listen queue (a 1 s retransmit) whatever the server does.
            with connect(port, "127.0.0.2") as s:
                start = time.monotonic()
                assert ask_on(s, f"legit{asked}.example.") == ["192.0.2.1"]
                assert time.monotonic() - start < 1.0
            asked += 1
        # The flood went on meanwhile: it replaced every one of the 16 slots at least once (a
        # busier figure depends on how much CPU its threads get on a loaded machine).
        assert server.stats["tcp_evicted"] - evicted > 16
    finally:
        stop.set()
        for thread in flooders:
            thread.join()


def test_a_trickling_connection_is_closed_at_its_deadline(dns):
    server = dns(tcp_idle=30.0, tcp_lifetime=1.0)
    with connect(server.port) as s:
        start = time.monotonic()
        assert ask_on(s, "first.example.") == ["192.0.2.1"]  # served, then held
        s.sendall(PARTIAL)
        closed = None
        while time.monotonic() - start < 3:
            trickle([s])
            if closed_by_server(s, 0.25):
                closed = time.monotonic() - start
                break
    assert closed is not None, "still open 3 s after accept, with a 1 s deadline"
    assert 0.8 < closed < 1.6


def test_a_message_trickled_a_byte_at_a_time_is_bounded_by_the_idle_time(dns):
    server = dns(tcp_idle=0.6, tcp_lifetime=30.0)
    with connect(server.port) as s:
        assert ask_on(s, "first.example.") == ["192.0.2.1"]
        answered = time.monotonic()
        s.sendall(PARTIAL)
        closed = None
        while time.monotonic() - answered < 3:
            trickle([s])  # every 0.2 s: a timeout per recv would never fire
            if closed_by_server(s, 0.2):
                closed = time.monotonic() - answered
                break
    assert closed is not None, "a half message kept alive for 3 s with a 0.6 s idle time"
    assert 0.4 < closed < 1.2


def test_tcp_bookkeeping_back_to_zero_after_evictions_and_deadlines(dns):
    server = dns(max_tcp_clients=8, tcp_idle=30.0, tcp_lifetime=1.0)
    port = server.port
    assert ask_tcp(port, "warm.example.") == ["192.0.2.1"]
    assert wait_for(lambda: server.tcp_clients == 0 and tcp_client_threads() == 0, 1)
    sockets_before = socket_fds()

    answered = connect(port)
    assert ask_on(answered, "held.example.") == ["192.0.2.1"]
    holders = [answered, *hold(port, 20)]  # 13 evictions
    try:
        end = time.monotonic() + 4
        while time.monotonic() < end and (server.tcp_clients or server.tcp_threads):
            trickle(holders)  # the clients never let go: the deadline must
            time.sleep(0.2)
        assert server.tcp_clients == 0
        assert server.tcp_threads == 0
        assert wait_for(lambda: tcp_client_threads() == 0, 1)
        assert server.stats["tcp_evicted"] >= 12
        assert all(closed_by_server(s, 0) for s in holders)
    finally:
        for s in holders:
            s.close()
    assert wait_for(lambda: socket_fds() == sockets_before, 1), (socket_fds(), sockets_before)
    assert ask_tcp(port, "after.example.") == ["192.0.2.1"]
