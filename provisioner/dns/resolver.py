"""The DNS policy: what to answer, from an in-memory view of the cluster's zones.

`ClusterResolver` is a dnslib resolver (`resolve(request, handler)`), so it also works under
dnslib's own `DNSServer`. It keeps a `ZoneView` built from the database and rebuilds it when the
database's `generation` changes (checked every `refresh` seconds by a thread with its own
`Reader`), so a `rocks add host ...` is answered within a second. Names in our zones get
authoritative answers (NXDOMAIN for unknown names, NODATA with the SOA for missing types);
anything else is forwarded to the upstreams for clients on our networks, or REFUSED when there
are none (or the client is elsewhere: no open resolver).

For speed it also keeps the answers pre-packed (`wire.Entry`): `lookup(packet)` finds the
answer to a plain query (one question, no other records but an optional bare EDNS OPT) by its
question bytes, with the query's id, RD bit and question case patched in. Answers computed the
slow way (NXDOMAIN, NODATA for rarer types) are added to that table as they are asked, up to a
bound.

`FastResolver` is what `server.DnsServer` asks of a resolver; `ClusterResolver` is one, and
`DnslibResolver` makes one of any other dnslib resolver. The bytes are `wire`'s business, the
upstreams `forward`'s.
"""

from __future__ import annotations

import ipaddress
import logging
import struct
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from dnslib import CLASS, OPCODE, QTYPE, RCODE, DNSHeader, DNSQuestion, DNSRecord
from dnslib.server import BaseResolver

from provisioner.dns.forward import Forwarder
from provisioner.dns.wire import OPT_RR, Entry, Packer, encode_name, entry_of, question_key
from provisioner.dns.zones import ZoneView, build_view

log = logging.getLogger("provisioner.dns")

_CACHE_LIMIT = 20_000


@runtime_checkable
class FastResolver(Protocol):
    """What the server needs of a resolver.

    `table` maps a plain query's question key (`wire.question_key`) to its packed answer; the
    UDP loop reads it directly, and may find the table replaced between two queries. `lookup`
    answers any plain query from it. `respond` answers the rest once parsed: a reply, or None
    to have the server forward the query to `upstreams` (within `forward_timeout` seconds).
    `start` and `stop` bracket serving (a refresh thread, say).
    """

    table: dict[bytes, Entry]
    upstreams: list[tuple[str, int]]
    forward_timeout: float

    def lookup(self, data: bytes) -> bytes | None: ...

    def respond(
        self, request: DNSRecord, data: bytes, client: tuple[str, int], protocol: str
    ) -> DNSRecord | None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class _Handler:
    """What dnslib passes a resolver as `handler`: who asked, and how."""

    def __init__(self, client_address: tuple[str, int], protocol: str) -> None:
        self.client_address = client_address
        self.protocol = protocol


class DnslibResolver:
    """Any dnslib resolver as a `FastResolver`: nothing packed, nothing left to forward;
    every query goes to its `resolve(request, handler)`."""

    def __init__(self, resolver: BaseResolver) -> None:
        self.resolver = resolver
        self.table: dict[bytes, Entry] = {}
        self.upstreams: list[tuple[str, int]] = []
        self.forward_timeout = 0.0

    def lookup(self, data: bytes) -> bytes | None:
        return None

    def respond(
        self, request: DNSRecord, data: bytes, client: tuple[str, int], protocol: str
    ) -> DNSRecord:
        return self.resolver.resolve(request, _Handler(client, protocol))

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


class ClusterResolver(BaseResolver):
    """Authoritative for the cluster's zones, a forwarder for everything else.

    `url` is the database URL (`Config.db_url`); `upstreams` are `(ip, port)` resolvers;
    `ttl` is the TTL of every record and of negative answers; `refresh` is how often the
    database's generation is checked; `forward_timeout` bounds a forwarded query.
    """

    def __init__(
        self,
        url: str,
        upstreams: Sequence[tuple[str, int]] = (),
        *,
        ttl: int = 60,
        refresh: float = 0.25,
        forward_timeout: float = 2.0,
        logger: logging.Logger | None = None,
    ) -> None:
        self.url = url
        self.upstreams = [(str(ip), int(port)) for ip, port in upstreams]
        self.ttl = ttl
        self.refresh_interval = refresh
        self.forward_timeout = forward_timeout
        self.log = logger or log
        self._forwarder = Forwarder(self.upstreams, forward_timeout, self.log)
        self.ra = bool(self.upstreams)
        self.view = ZoneView(-1)
        self.table: dict[bytes, Entry] = {}
        self._learned = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        from provisioner.db.reader import Reader

        with Reader.connect(url, snapshot=False) as reader:
            self.refresh(reader)

    # -- the view -------------------------------------------------------------------------------

    def refresh(self, reader: Any) -> bool:
        """Rebuild the view and the packed answers if the generation moved; True if it did."""
        generation = reader.generation()
        if generation == self.view.generation:
            return False
        started = time.monotonic()
        view = build_view(reader, self.ttl)
        table = self._pack_all(view)
        with self._lock:
            self.view, self.table, self._learned = view, table, 0
        self.log.info(
            "DNS zones rebuilt for generation %d: %d zones, %d names, %d packed answers "
            "in %.3f s%s",
            view.generation,
            len(view.zones),
            len(view.records),
            len(table),
            time.monotonic() - started,
            f", {len(view.skipped)} skipped" if view.skipped else "",
        )
        return True

    def start(self) -> None:
        """Watch the database from a thread of our own (its own connection)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._watch, name="dns-refresh", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        self._thread = None

    def _watch(self) -> None:
        from provisioner.db.reader import Reader

        reader = None
        while not self._stop.wait(self.refresh_interval):
            try:
                if reader is None:
                    reader = Reader.connect(self.url, snapshot=False)
                self.refresh(reader)
            except Exception as exc:  # noqa: BLE001 - keep answering from the last good view
                self.log.warning("DNS cannot refresh its zones: %s", exc)
                if reader is not None:
                    reader.close()
                    reader = None
        if reader is not None:
            reader.close()

    # -- answers --------------------------------------------------------------------------------

    def may_recurse(self, ip: str) -> bool:
        """Forward only for clients on our served networks or this host: a server bound to
        every address must not be an open resolver on the public side."""
        try:
            addr = ipaddress.ip_address(ip.split("%", 1)[0])
        except ValueError:
            return False
        if addr.is_loopback:
            return True
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        return any(addr in net for net in self.view.networks)

    def lookup(self, data: bytes) -> bytes | None:
        """The packed answer to a plain query, or None (then parse and call `answer`)."""
        found = question_key(data)
        if found is None:
            return None
        key, q, edns = found
        entry = self.table.get(key)
        if entry is None:
            return None
        heads, rest = entry
        out = data[:2] + heads[(data[2] & 1) | edns] + q + rest
        return out + OPT_RR if edns else out

    def answer(self, request: DNSRecord, view: ZoneView | None = None) -> DNSRecord | None:
        """The authoritative answer, or None when the name is in none of our zones."""
        view = view or self.view
        q = request.q
        if request.header.opcode != OPCODE.QUERY:
            return self.reply_to(request, rcode=RCODE.NOTIMP, aa=False)
        name = _name(q.qname.label)
        zone = view.zone_of(name)
        if zone is None:
            return None
        if q.qclass not in (CLASS.IN, 255):  # 255: QCLASS ANY (RFC 1035 3.2.5)
            return self.reply_to(request, rcode=RCODE.REFUSED, aa=False)
        reply = self.reply_to(request)
        rrsets = view.records.get(name)
        qtype = q.qtype
        if rrsets is None:
            if name not in view.nonterminals:
                reply.header.rcode = RCODE.NXDOMAIN
            reply.add_auth(zone.soa)
        elif qtype == QTYPE.ANY:
            for rrs in rrsets.values():
                reply.add_answer(*rrs)
        elif qtype in rrsets:
            reply.add_answer(*rrsets[qtype])
            if qtype == QTYPE.NS:
                for ns in rrsets[qtype]:
                    reply.add_ar(*view.glue.get(str(ns.rdata.label).lower(), []))
        elif QTYPE.CNAME in rrsets:
            self._chase(reply, rrsets[QTYPE.CNAME], qtype, view)
        else:
            reply.add_auth(zone.soa)
        return reply

    def _chase(self, reply: DNSRecord, cname: list, qtype: int, view: ZoneView) -> None:
        seen: set[str] = set()
        while cname:
            reply.add_answer(*cname)
            target = str(cname[0].rdata.label).lower()
            if target in seen or len(seen) > 8:
                return
            seen.add(target)
            rrsets = view.records.get(target)
            if rrsets is None:
                return
            if qtype in rrsets:
                reply.add_answer(*rrsets[qtype])
                return
            cname = rrsets.get(QTYPE.CNAME, [])

    def reply_to(
        self, request: DNSRecord, rcode: int = RCODE.NOERROR, aa: bool = True
    ) -> DNSRecord:
        header = DNSHeader(
            id=request.header.id,
            qr=1,
            aa=int(aa),
            rd=request.header.rd,
            ra=int(self.ra),
            rcode=rcode,
        )
        reply = DNSRecord(header, q=request.q)
        return reply

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        """dnslib's resolver protocol: our answer, else the upstreams' (blocking), else
        REFUSED (no upstreams) or SERVFAIL (none answered)."""
        reply = self.answer(request)
        if reply is not None:
            return reply
        client = getattr(handler, "client_address", ("127.0.0.1", 0))[0]
        if not self.upstreams or not self.may_recurse(client):
            return self.reply_to(request, rcode=RCODE.REFUSED, aa=False)
        tcp = getattr(handler, "protocol", "udp") == "tcp"
        data = self.forward(request.pack(), tcp=tcp)
        if data is not None:
            try:
                return DNSRecord.parse(data)
            except Exception:  # noqa: BLE001 - an upstream's garbage is a failure
                pass
        return self.reply_to(request, rcode=RCODE.SERVFAIL, aa=False)

    def forward(self, data: bytes, tcp: bool = False) -> bytes | None:
        """Ask the upstreams in turn (blocking); the raw answer with the query's id, or None."""
        return self._forwarder.ask(data, tcp)

    def respond(
        self, request: DNSRecord, data: bytes, client: tuple[str, int], protocol: str
    ) -> DNSRecord | None:
        """`FastResolver.respond`: our answer (kept packed for the next time it is asked),
        None to forward a name outside our zones for a client we recurse for, else REFUSED."""
        view = self.view
        reply = self.answer(request, view)
        if reply is None:
            if self.upstreams and self.may_recurse(client[0]):
                return None
            return self.reply_to(request, RCODE.REFUSED, aa=False)
        self.learn(request, reply, data, view)
        return reply

    def learn(self, request: DNSRecord, reply: DNSRecord, data: bytes, view: ZoneView) -> None:
        """Keep an authoritative answer packed, so the next identical question is fast.
        `view` is the one the answer came from: an answer from a view replaced meanwhile is
        not kept, or a stale NXDOMAIN could outlive the change that made it wrong."""
        found = question_key(data)
        if found is None or reply.header.tc:
            return
        key = found[0]
        if key in self.table:
            return
        entry = entry_of(reply)
        if entry is None:
            return
        with self._lock:
            if view is not self.view or self._learned >= _CACHE_LIMIT:
                return  # a flood of random names must not grow memory without end
            table = self.table
            table[key] = entry
            self._learned += 1

    def _pack_all(self, view: ZoneView) -> dict[bytes, Entry]:
        """Every positive answer, and NODATA for A/AAAA of forward names. The common shapes
        (one RR set, or NODATA with the SOA) are packed by hand; dnslib packs the rest."""
        table: dict[bytes, Entry] = {}
        forward = {z for z in view.zones if not z.endswith(".arpa.")}
        packer = Packer(self.ra)
        for name, rrsets in view.records.items():
            qtypes = set(rrsets)
            zone = view.zone_of(name)
            if zone is None:
                continue
            if zone.name in forward:
                qtypes |= {QTYPE.A, QTYPE.AAAA}
            qname = encode_name(name)
            for qtype in qtypes:
                key = qname + struct.pack("!HH", qtype, CLASS.IN)
                entry = None
                if QTYPE.CNAME not in rrsets and qtype != QTYPE.NS:
                    rrs = rrsets.get(qtype)
                    entry = packer.answer(rrs) if rrs else packer.nodata(zone.soa)
                if entry is None:
                    request = DNSRecord(DNSHeader(id=0, rd=0), q=DNSQuestion(name, qtype))
                    reply = self.answer(request, view)
                    entry = entry_of(reply) if reply is not None else None
                if entry is not None:
                    table[key] = entry
        return table


def _name(labels: tuple[bytes, ...]) -> str:
    """Lower-case absolute name; a label holding a dot or a non-ASCII byte cannot be one of
    ours, so it becomes a placeholder that matches nothing but keeps the zone suffix."""
    parts = []
    for label in labels:
        if b"." in label or not label.isascii():
            parts.append("\\invalid")
        else:
            parts.append(label.decode("ascii").lower())
    return ".".join(parts) + "." if parts else "."
