"""10,000 malformed, random and mutated DNS packets (UDP, and some over TCP): the service keeps
answering correctly, never answers a response (no reflection loops), and everything it sends
is a well-formed DNS response. The packets are seeded, so a failure reproduces."""

from __future__ import annotations

import random
import select
import socket
import struct
import time

import pytest
from dnslib import EDNS0, QTYPE, RCODE, DNSRecord

from provisioner.dns.resolver import ClusterResolver
from provisioner.dns.server import DnsServer

PACKETS = 10_000
NAMES = [
    "compute-0-0.local", "storage.local", "nope.local", "local", "1.10.in-addr.arpa",
    "254.255.1.10.in-addr.arpa", "example.com", "a.b.c.d.e.f.local", ".", "x" * 63 + ".local",
]  # fmt: skip
TYPES = ["A", "AAAA", "PTR", "NS", "SOA", "CNAME", "MX", "TXT", "ANY", "AXFR", "IXFR", "OPT"]


def seeds(rng: random.Random) -> list[bytes]:
    out = []
    for name in NAMES:
        for qtype in TYPES:
            q = DNSRecord.question(name, qtype)
            if rng.random() < 0.3:
                q.add_ar(EDNS0(udp_len=rng.choice([0, 512, 4096, 65535])))
            out.append(bytes(q.pack()))
    # Opcodes other than QUERY, responses, several questions, compression loops.
    notify = DNSRecord.question("local", "SOA")
    notify.header.opcode = 4
    out.append(bytes(notify.pack()))
    response = DNSRecord.question("compute-0-0.local").reply()
    out.append(bytes(response.pack()))
    two = DNSRecord.question("compute-0-0.local")
    two.add_question(*DNSRecord.question("storage.local").questions)
    out.append(bytes(two.pack()))
    out.append(bytes.fromhex("abcd01000001000000000000") + b"\xc0\x0c\x00\x01\x00\x01")
    out.append(bytes.fromhex("abcd01000001000000000000") + b"\x3f" + b"a" * 10)
    return out


def mutate(rng: random.Random, packet: bytes) -> bytes:
    data = bytearray(packet)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        if op == 0 and data:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif op == 1 and data:
            del data[rng.randrange(len(data)) :]
        elif op == 2:
            i = rng.randint(0, len(data))
            data[i:i] = rng.randbytes(rng.randint(1, 20))
        elif op == 3 and len(data) >= 12:  # header counts
            i = rng.choice([4, 6, 8, 10])
            data[i : i + 2] = struct.pack("!H", rng.choice([0, 1, 2, 255, 65535]))
        elif op == 4 and len(data) > 12:  # label lengths and pointers
            data[rng.randrange(12, len(data))] = rng.choice([0x3F, 0x40, 0xC0, 0xFF, 0x00])
        elif op == 5 and len(data) >= 4:  # flags: QR, opcode, TC
            data[2] = rng.randrange(256)
        else:
            a = rng.randint(0, len(data))
            data[a:a] = data[a : a + rng.randint(1, 40)] * rng.randint(1, 5)
    return bytes(data[:4096])


@pytest.fixture
def server(rocks, config):
    rocks.ok("add host compute-0-0")
    rocks.ok("add host interface compute-0-0 eth0 ip=10.1.255.254 subnet=private")
    rocks.ok("add host alias compute-0-0 storage")
    resolver = ClusterResolver(config.db_url, refresh=0.1)
    server = DnsServer(resolver, "127.0.0.1", 0, tcp_idle=0.5)
    thread = server.start_thread()
    yield server, thread
    server.stop()


def check_answers(port: int) -> None:
    for tcp in (False, True):
        reply = DNSRecord.parse(
            DNSRecord.question("compute-0-0.local").send("127.0.0.1", port, tcp=tcp, timeout=3)
        )
        assert [str(rr.rdata) for rr in reply.rr] == ["10.1.255.254"]
        nx = DNSRecord.parse(DNSRecord.question("zz.local").send("127.0.0.1", port, timeout=3))
        assert nx.header.rcode == RCODE.NXDOMAIN
        cname = DNSRecord.parse(DNSRecord.question("storage.local").send("127.0.0.1", port))
        assert [QTYPE[rr.rtype] for rr in cname.rr] == ["CNAME", "A"]


def test_malformed_packets(server):
    server, thread = server
    port = server.port
    rng = random.Random(53_2026)
    pool = seeds(rng)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    replies: list[bytes] = []
    sent_responses = 0

    def drain() -> None:
        while True:
            try:
                replies.append(sock.recv(65535))
            except BlockingIOError:
                return

    deadline = time.monotonic() + 60
    try:
        for i in range(PACKETS):
            assert time.monotonic() < deadline, "fuzzing took too long"
            kind = rng.random()
            if kind < 0.1:
                packet = rng.randbytes(rng.randint(0, 600))
            elif kind < 0.2:
                packet = rng.choice(pool)
            else:
                packet = mutate(rng, rng.choice(pool))
            sent_responses += len(packet) >= 3 and bool(packet[2] & 0x80)
            sock.sendto(packet, ("127.0.0.1", port))
            if i % 25 == 0:
                drain()
                select.select([sock], [], [], 0.001)
        # Some over TCP: lengths that lie, garbage, half messages, then hang-ups.
        for _ in range(100):
            with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
                packet = mutate(rng, rng.choice(pool))
                length = rng.choice([len(packet), 0, 1, 11, len(packet) + 5, 65535])
                conn.sendall(struct.pack("!H", length) + packet)
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            select.select([sock], [], [], 0.05)
            drain()
    finally:
        sock.close()

    assert thread.is_alive()
    assert len(replies) > PACKETS // 3  # most parseable queries got an answer
    for reply in replies:
        parsed = DNSRecord.parse(reply)  # everything we sent is well-formed
        assert parsed.header.qr == 1
    assert sent_responses > 100  # the mix held responses, and none got an answer:
    assert len(replies) <= PACKETS - sent_responses
    check_answers(port)
    server.stop()
    thread.join(5)
    assert not thread.is_alive()
