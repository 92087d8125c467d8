"""The DNS service against a real cluster database (SQLite and PostgreSQL), on 127.0.0.1:
zones and records, negative answers, live changes, forwarding to a fake upstream, UDP
truncation, EDNS, TCP, and the multi-process service."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dnslib import AAAA, EDNS0, QTYPE, RCODE, RR, A, DNSRecord
from dnslib.server import BaseResolver, DNSServer

from provisioner.dns import parse_upstreams
from provisioner.dns.resolver import ClusterResolver, DnslibResolver, FastResolver
from provisioner.dns.server import DnsServer
from provisioner.dns.zones import fqdn, reverse_zones

REPO = Path(__file__).resolve().parents[2]


def ask(
    port: int,
    name: str,
    qtype: str = "A",
    *,
    tcp: bool = False,
    edns: int | None = None,
    address: str = "127.0.0.1",
    rd: bool = True,
) -> DNSRecord:
    q = DNSRecord.question(name, qtype)
    q.header.rd = int(rd)
    if edns is not None:
        q.add_ar(EDNS0(udp_len=edns))
    answer = DNSRecord.parse(q.send(address, port, tcp=tcp, timeout=3))
    assert answer.header.id == q.header.id
    assert answer.header.qr == 1
    return answer


def values(reply: DNSRecord, qtype: str | None = None) -> list[str]:
    return [str(rr.rdata) for rr in reply.rr if qtype is None or QTYPE[rr.rtype] == qtype]


@pytest.fixture
def dns(config) -> Iterator:
    """`dns(upstreams=..., **server options)` -> a running DnsServer on 127.0.0.1:0."""
    servers: list[DnsServer] = []

    def start(upstreams=(), forward_timeout: float = 1.0, **kw) -> DnsServer:
        resolver = ClusterResolver(
            config.db_url, upstreams, refresh=0.1, forward_timeout=forward_timeout
        )
        server = DnsServer(resolver, "127.0.0.1", 0, **kw)
        server.start_thread()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def cluster(rocks):
    rocks.ok("add host compute-0-0")
    rocks.ok("add host interface compute-0-0 eth0 52:54:00:00:00:01 ip=10.1.255.254 subnet=private")
    rocks.ok("add host compute-0-1")
    rocks.ok("add host interface compute-0-1 eth0 52:54:00:00:00:02 ip=10.1.255.253 subnet=private")
    rocks.ok("add host interface compute-0-1 ib0 ip=10.1.200.1 subnet=private name=c1-ib")
    rocks.ok("add host alias compute-0-0 storage")
    return rocks


def test_fqdn_and_reverse_zones():
    assert fqdn("Compute-0-0", "local") == "compute-0-0.local."
    assert fqdn("frontend.example.org", "example.org") == "frontend.example.org."
    assert fqdn("bad name", "local") is None
    assert fqdn("-x", "local") is None
    import ipaddress

    assert reverse_zones(ipaddress.ip_network("10.1.0.0/16")) == ["1.10.in-addr.arpa."]
    assert len(reverse_zones(ipaddress.ip_network("10.1.0.0/20"))) == 16
    assert reverse_zones(ipaddress.ip_network("192.168.1.64/26")) == ["1.168.192.in-addr.arpa."]
    assert reverse_zones(ipaddress.ip_network("fd00:1:2:3::/64")) == [
        "3.0.0.0.2.0.0.0.1.0.0.0.0.0.d.f.ip6.arpa."
    ]


def test_parse_upstreams():
    assert parse_upstreams(["10.0.0.1", "127.0.0.2:5353", "[::1]:53", "fd00::1", " "]) == [
        ("10.0.0.1", 53),
        ("127.0.0.2", 5353),
        ("::1", 53),
        ("fd00::1", 53),
    ]


def test_forward_zone(cluster, dns):
    port = dns().port
    reply = ask(port, "compute-0-0.local")
    assert reply.header.aa == 1 and reply.header.rcode == RCODE.NOERROR
    assert values(reply) == ["10.1.255.254"]
    assert reply.rr[0].ttl == 60
    assert values(ask(port, "frontend.local")) == ["10.1.1.1"]
    assert values(ask(port, "c1-ib.local")) == ["10.1.200.1"]
    # interfaces.name is the DNS name of that interface; the host's name is its other one.
    assert values(ask(port, "compute-0-1.local")) == ["10.1.255.253"]


def test_apex_soa_ns_and_glue(cluster, dns):
    port = dns().port
    soa = ask(port, "local", "SOA")
    assert soa.header.aa == 1 and len(soa.rr) == 1
    assert str(soa.rr[0].rdata.mname) == "ns.local."
    ns = ask(port, "local", "NS")
    assert values(ns) == ["ns.local."]
    assert [str(rr.rdata) for rr in ns.ar] == ["10.1.1.1"]
    assert values(ask(port, "ns.local")) == ["10.1.1.1"]
    rev = ask(port, "1.10.in-addr.arpa", "NS")
    assert values(rev) == ["ns.local."]


def test_reverse_zone(cluster, dns):
    port = dns().port
    assert values(ask(port, "254.255.1.10.in-addr.arpa", "PTR")) == ["compute-0-0.local."]
    assert values(ask(port, "1.200.1.10.in-addr.arpa", "PTR")) == ["c1-ib.local."]
    assert values(ask(port, "1.1.1.10.in-addr.arpa", "PTR")) == ["frontend.local."]
    missing = ask(port, "9.9.1.10.in-addr.arpa", "PTR")
    assert missing.header.rcode == RCODE.NXDOMAIN and missing.header.aa == 1


def test_alias_is_a_cname_followed_in_zone(cluster, dns):
    port = dns().port
    reply = ask(port, "storage.local")
    assert [QTYPE[rr.rtype] for rr in reply.rr] == ["CNAME", "A"]
    assert values(reply) == ["compute-0-0.local.", "10.1.255.254"]
    assert values(ask(port, "storage.local", "CNAME")) == ["compute-0-0.local."]


def test_negative_answers(cluster, dns):
    port = dns().port
    for _ in range(2):  # the second time from the table of learned answers
        nx = ask(port, "nope.local")
        assert nx.header.rcode == RCODE.NXDOMAIN and nx.header.aa == 1 and not nx.rr
        assert [QTYPE[rr.rtype] for rr in nx.auth] == ["SOA"]
        nodata = ask(port, "compute-0-0.local", "MX")
        assert nodata.header.rcode == RCODE.NOERROR and not nodata.rr
        assert [QTYPE[rr.rtype] for rr in nodata.auth] == ["SOA"]
        aaaa = ask(port, "compute-0-0.local", "AAAA")
        assert aaaa.header.rcode == RCODE.NOERROR and not aaaa.rr
    # A name that only exists as a parent of others: NODATA, not NXDOMAIN.
    ent = ask(port, "255.1.10.in-addr.arpa", "PTR")
    assert ent.header.rcode == RCODE.NOERROR and not ent.rr


def test_case_is_ignored_and_echoed(cluster, dns):
    port = dns().port
    reply = ask(port, "CoMpUtE-0-0.LoCaL")
    assert values(reply) == ["10.1.255.254"]
    assert str(reply.q.qname) == "CoMpUtE-0-0.LoCaL."


def test_rd_bit_is_copied(cluster, dns):
    port = dns().port
    assert ask(port, "compute-0-0.local", rd=True).header.rd == 1
    assert ask(port, "compute-0-0.local", rd=False).header.rd == 0
    assert ask(port, "compute-0-0.local", rd=False).header.ra == 0  # no upstreams: no recursion


def test_unserved_network_and_other_names_refused_without_upstreams(cluster, dns):
    port = dns().port
    for name in ("frontend.example.org", "example.com", "114.119.110.137.in-addr.arpa"):
        reply = ask(port, name, "PTR" if "arpa" in name else "A")
        assert reply.header.rcode == RCODE.REFUSED and reply.header.aa == 0


def test_servedns_on_public_network(cluster, dns):
    cluster.ok("set network servedns public yes")
    port = dns().port
    assert values(ask(port, "frontend.example.org")) == ["137.110.119.114"]
    assert values(ask(port, "114.119.110.137.in-addr.arpa", "PTR")) == ["frontend.example.org."]
    assert values(ask(port, "example.org", "NS")) == ["ns.example.org."]
    assert values(ask(port, "ns.example.org")) == ["137.110.119.114"]


def test_changes_answered_within_one_second(cluster, dns):
    port = dns().port
    assert ask(port, "compute-0-7.local").header.rcode == RCODE.NXDOMAIN
    cluster.ok("add host compute-0-7")
    cluster.ok("add host interface compute-0-7 eth0 ip=10.1.255.240 subnet=private")
    assert _within(1.0, lambda: values(ask(port, "compute-0-7.local")) == ["10.1.255.240"])
    cluster.ok("set host interface ip compute-0-7 eth0 10.1.255.239")
    assert _within(1.0, lambda: values(ask(port, "compute-0-7.local")) == ["10.1.255.239"])
    assert values(ask(port, "239.255.1.10.in-addr.arpa", "PTR")) == ["compute-0-7.local."]
    cluster.ok("add host alias compute-0-7 web")
    assert _within(1.0, lambda: values(ask(port, "web.local", "CNAME")) == ["compute-0-7.local."])
    cluster.ok("remove host compute-0-7")
    assert _within(1.0, lambda: ask(port, "compute-0-7.local").header.rcode == RCODE.NXDOMAIN)
    assert ask(port, "web.local").header.rcode == RCODE.NXDOMAIN


def _within(seconds: float, check) -> bool:
    """True if `check()` holds within `seconds` of now (the change was just committed)."""
    deadline = time.monotonic() + seconds
    while True:
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def test_tcp_several_queries_on_one_connection(cluster, dns):
    port = dns().port
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        for name, want in (("compute-0-0.local", "10.1.255.254"), ("nope.local", None)):
            q = DNSRecord.question(name).pack()
            s.sendall(struct.pack("!H", len(q)) + q)
            n = struct.unpack("!H", _recv(s, 2))[0]
            reply = DNSRecord.parse(_recv(s, n))
            assert values(reply) == ([want] if want else [])


def _recv(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        assert chunk
        data += chunk
    return data


def test_edns_echoed_on_fast_and_slow_paths(cluster, dns):
    port = dns().port
    for name, qtype in (("compute-0-0.local", "A"), ("nope.local", "A"), ("local", "TXT")):
        reply = ask(port, name, qtype, edns=4096)
        opts = [rr for rr in reply.ar if rr.rtype == QTYPE.OPT]
        assert len(opts) == 1 and opts[0].rclass == 1232


def test_big_answers_truncated_over_udp_whole_over_tcp(cluster, dns):
    lines = []
    for i in range(40):
        lines.append(f"add host compute-1-{i}")
        lines.append(f"add host interface compute-1-{i} eth0 ip=10.1.100.{i + 1} subnet=private")
        lines.append(f"set host interface name compute-1-{i} eth0 rr")
    cluster.ok("batch stop-on-error=yes", stdin="\n".join(lines) + "\n")
    port = dns().port
    udp = ask(port, "rr.local")
    assert udp.header.tc == 1 and not udp.rr
    assert len(values(ask(port, "rr.local", edns=1232))) == 40  # 40 x 16 bytes fit in 1232
    assert sorted(values(ask(port, "rr.local", tcp=True))) == sorted(
        f"10.1.100.{i + 1}" for i in range(40)
    )


class FakeUpstream(BaseResolver):
    """A resolver on 127.0.0.2 that knows one name: it stands for the site's resolver."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, str]] = []

    def resolve(self, request, handler):
        self.seen.append((request.header.id, str(request.q.qname)))
        reply = request.reply()
        if str(request.q.qname) == "www.example.com.":
            reply.add_answer(RR("www.example.com.", QTYPE.A, rdata=A("192.0.2.80"), ttl=300))
        else:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


@pytest.fixture
def upstream() -> Iterator[tuple[FakeUpstream, int]]:
    fake = FakeUpstream()
    server = DNSServer(fake, port=0, address="127.0.0.2", tcp=False, logger=_Quiet())
    server.start_thread()
    yield fake, server.server.server_address[1]
    server.stop()


@pytest.fixture
def upstream_tcp() -> Iterator[int]:
    server = DNSServer(FakeUpstream(), port=0, address="127.0.0.2", tcp=True, logger=_Quiet())
    server.start_thread()
    yield server.server.server_address[1]
    server.stop()


class _Quiet:
    def __getattr__(self, name):
        return lambda *a, **k: None


def test_forwarding_to_upstream(cluster, dns, upstream):
    fake, up_port = upstream
    port = dns(upstreams=[("127.0.0.2", up_port)]).port
    reply = ask(port, "www.example.com")
    assert values(reply) == ["192.0.2.80"] and reply.header.ra == 1 and reply.header.aa == 0
    assert fake.seen[-1][1] == "www.example.com."
    assert ask(port, "nothing.example.com").header.rcode == RCODE.NXDOMAIN
    # Our zones are still ours: never asked upstream.
    assert values(ask(port, "compute-0-0.local")) == ["10.1.255.254"]
    assert all("local" not in name for _, name in fake.seen)


def test_forwarding_over_tcp(cluster, dns, upstream_tcp):
    port = dns(upstreams=[("127.0.0.2", upstream_tcp)]).port
    assert values(ask(port, "www.example.com", tcp=True)) == ["192.0.2.80"]


def test_dead_upstream_then_next_then_servfail(cluster, dns, upstream):
    _, up_port = upstream
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.3", 0))  # receives, never answers
        dead = ("127.0.0.3", silent.getsockname()[1])
        port = dns(upstreams=[dead, ("127.0.0.2", up_port)], forward_timeout=1.0).port
        start = time.monotonic()
        assert values(ask(port, "www.example.com")) == ["192.0.2.80"]
        assert 0.4 < time.monotonic() - start < 2.0
        alone = dns(upstreams=[dead], forward_timeout=0.5).port
        reply = ask(alone, "www.example.com")
        assert reply.header.rcode == RCODE.SERVFAIL


def test_spoofed_upstream_answers_are_ignored(cluster, dns):
    """An answer with the wrong id, or from another address, is dropped; the real one is used."""
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as up,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as spoofer,
    ):
        up.bind(("127.0.0.2", 0))
        spoofer.bind(("127.0.0.4", 0))
        up.settimeout(3)
        port = dns(upstreams=[("127.0.0.2", up.getsockname()[1])]).port
        result: dict[str, DNSRecord] = {}
        t = threading.Thread(target=lambda: result.setdefault("r", ask(port, "www.example.com")))
        t.start()
        data, forwarder = up.recvfrom(4096)
        query = DNSRecord.parse(data)
        evil = query.reply()
        evil.add_answer(RR("www.example.com.", QTYPE.A, rdata=A("6.6.6.6"), ttl=300))
        spoofer.sendto(evil.pack(), forwarder)  # right id, wrong source
        evil.header.id ^= 0x5555
        up.sendto(evil.pack(), forwarder)  # right source, wrong id
        good = query.reply()
        good.add_answer(RR("www.example.com.", QTYPE.A, rdata=A("192.0.2.80"), ttl=300))
        time.sleep(0.1)
        up.sendto(good.pack(), forwarder)
        t.join(5)
    assert values(result["r"]) == ["192.0.2.80"]


def test_resolver_works_under_dnslib_server(cluster, config):
    """The policy object is a plain dnslib resolver: dnslib's own server can run it."""
    resolver = ClusterResolver(config.db_url)
    server = DNSServer(resolver, port=0, address="127.0.0.1", logger=_Quiet())
    server.start_thread()
    try:
        port = server.server.server_address[1]
        assert values(ask(port, "compute-0-0.local")) == ["10.1.255.254"]
        assert ask(port, "example.com").header.rcode == RCODE.REFUSED
    finally:
        server.stop()


def test_ipv6_interfaces_get_aaaa(rocks, dns, engine):
    rocks.ok("add network v6 fd00:1:2:3:: 64 dnszone=v6 servedns=yes")
    rocks.ok("add host compute-0-0")
    # `rocks add host interface` cannot check an address against an IPv6 network yet (the
    # networks service builds fd00:1:2:3::/ffff:ffff:ffff:ffff::), so the row goes in directly.
    from sqlalchemy import select

    from provisioner.db.engine import transaction
    from provisioner.db.models import Host, Interface, Subnet

    with transaction(engine) as session:
        host = session.scalar(select(Host).where(Host.name == "compute-0-0"))
        net = session.scalar(select(Subnet).where(Subnet.name == "v6"))
        session.add(
            Interface(host_id=host.id, device="eth2", ip="fd00:1:2:3::10", subnet_id=net.id)
        )
    port = dns().port
    reply = ask(port, "compute-0-0.v6", "AAAA")
    assert [rr.rdata for rr in reply.rr] == [AAAA("fd00:1:2:3::10")]
    assert ask(port, "compute-0-0.v6", "A").rr == []
    ptr = ask(
        port, "0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.d.f.ip6.arpa", "PTR"
    )
    assert values(ptr) == ["compute-0-0.v6."]


def test_service_with_worker_processes(cluster, config, db_backend):
    """`python -m provisioner.dns --workers 2`: answers, then stops cleanly on SIGTERM."""
    env = {
        **os.environ,
        "PROVISIONER_HOME": str(config.home),
        "PROVISIONER_DATABASE_URL": config.database_url,
        "PROVISIONER_DNS_UPSTREAMS": "",
    }
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.5", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "provisioner.dns", "--address", "127.0.0.5", "--port", str(port),
         "--workers", "2"],
        env=env, cwd=REPO, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("dns listening")
        children = _children(proc.pid)
        assert len(children) == 1
        # Many client sockets, so SO_REUSEPORT spreads them over both processes.
        for i in range(20):
            reply = ask(port, f"compute-0-{i % 2}.local", address="127.0.0.5")
            assert values(reply) == ["10.1.255.254" if i % 2 == 0 else "10.1.255.253"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    assert not any(Path(f"/proc/{c}").exists() for c in children)


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def test_packed_answers_match_dnslib(cluster, config):
    """Every pre-packed answer says what the dnslib path says for the same question."""
    cluster.ok("set network servedns public yes")
    resolver = ClusterResolver(config.db_url)
    assert len(resolver.table) > 20

    def digest(reply: DNSRecord):
        def rrs(section):
            return sorted(
                (str(rr.rname).lower(), rr.rtype, rr.rclass, rr.ttl, str(rr.rdata).lower())
                for rr in section
            )

        h = reply.header
        return (h.qr, h.aa, h.rd, h.ra, h.rcode, rrs(reply.rr), rrs(reply.auth), rrs(reply.ar))

    for key in resolver.table:
        query = bytes.fromhex("beef01000001000000000000") + key
        fast = resolver.lookup(query)
        assert fast is not None and fast[:2] == b"\xbe\xef"
        slow = resolver.answer(DNSRecord.parse(query))
        assert digest(DNSRecord.parse(fast)) == digest(slow), DNSRecord.parse(query).q


def test_server_takes_the_cluster_resolver_itself(cluster, config, dns):
    """ClusterResolver is a FastResolver: the server uses its packed answers and policy, not
    the dnslib adapter (which would still answer, slowly, and block the UDP loop to forward)."""
    resolver = ClusterResolver(config.db_url)
    assert isinstance(resolver, FastResolver)
    server = dns()
    assert isinstance(server.resolver, ClusterResolver)
    assert values(ask(server.port, "compute-0-0.local")) == ["10.1.255.254"]
    assert server.stats["slow"] == 0  # answered from the packed table
    other = DnsServer(BaseResolver(), "127.0.0.1", 0)
    try:
        assert isinstance(other.resolver, DnslibResolver)
    finally:
        other.stop()


def test_recursion_only_for_our_networks(cluster, config, dns, upstream, monkeypatch):
    resolver = ClusterResolver(config.db_url, [("127.0.0.2", 53)])
    assert resolver.may_recurse("10.1.2.3")  # private network
    assert resolver.may_recurse("127.0.0.1") and resolver.may_recurse("::1")
    assert not resolver.may_recurse("137.110.119.5")  # public side: servedns is off there
    assert not resolver.may_recurse("192.0.2.1")
    _, up_port = upstream
    server = dns(upstreams=[("127.0.0.2", up_port)])
    assert values(ask(server.port, "www.example.com")) == ["192.0.2.80"]
    # The same query from a client outside our networks (loopback stands in for it here).
    monkeypatch.setattr(server.resolver, "may_recurse", lambda ip: False)
    for tcp in (False, True):
        reply = ask(server.port, "www.example.com", tcp=tcp)
        assert reply.header.rcode == RCODE.REFUSED
    assert values(ask(server.port, "compute-0-0.local")) == ["10.1.255.254"]  # still ours
