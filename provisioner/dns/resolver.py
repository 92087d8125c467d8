"""The DNS policy: what to answer, from an in-memory view of the cluster's zones.

`ClusterResolver` is a dnslib resolver (`resolve(request, handler)`), so it also works under
dnslib's own `DNSServer`. It keeps a `ZoneView` built from the database and rebuilds it when the
database's `generation` changes (checked every `refresh` seconds by a thread with its own
`Reader`), so a `rocks add host ...` is answered within a second. Names in our zones get
authoritative answers (NXDOMAIN for unknown names, NODATA with the SOA for missing types);
anything else is forwarded to the upstreams for clients on our networks, or REFUSED when there
are none (or the client is elsewhere: no open resolver).

For speed it also keeps the answers pre-packed: `lookup(packet)` finds the answer to a plain
query (one question, no other records but an optional bare EDNS OPT) by its question bytes,
with the query's id, RD bit and question case patched in. Answers computed the slow way
(NXDOMAIN, NODATA for rarer types) are added to that table as they are asked, up to a bound.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import socket
import struct
import threading
import time
from collections.abc import Sequence
from typing import Any

from dnslib import CLASS, OPCODE, QTYPE, RCODE, RR, DNSHeader, DNSQuestion, DNSRecord
from dnslib.server import BaseResolver

from provisioner.dns.zones import ZoneView, build_view

log = logging.getLogger("provisioner.dns")

# Our EDNS OPT record: root name, type 41, UDP payload 1232, extended rcode 0, version 0,
# flags 0 (no DO: nothing is signed), no options.
OPT_RR = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"
UDP_PAYLOAD = 1232
_PLAIN_COUNTS = b"\x00\x01\x00\x00\x00\x00"
_CACHE_LIMIT = 20_000

Entry = tuple[tuple[bytes, bytes, bytes, bytes], bytes]


def question_key(data: bytes) -> tuple[bytes, bytes, int] | None:
    """For a plain query: (table key, question as sent, EDNS flag 0 or 2); else None.

    Plain means QR=0, opcode QUERY, one question, no answer or authority records, and either
    no additional record or one bare OPT (version 0, no options) at the end. The key is the
    question with the name in lower case (only the name: type 65 is 'A' in ASCII).
    """
    n = len(data)
    if n < 17 or data[2] & 0xF8 or data[4:10] != _PLAIN_COUNTS:
        return None
    ar = data[10:12]
    if ar == b"\x00\x00":
        q = data[12:]
        edns = 0
    elif (
        ar == b"\x00\x01"
        and n >= 28
        and data[-11] == 0
        and data[-10:-8] == b"\x00\x29"
        and data[-5] == 0
        and data[-2:] == b"\x00\x00"
    ):
        q = data[12:-11]
        edns = 2
    else:
        return None
    return q[:-4].lower() + q[-4:], q, edns


class _Handler:
    """What dnslib passes a resolver as `handler`: who asked, and how."""

    def __init__(self, client_address: tuple[str, int], protocol: str) -> None:
        self.client_address = client_address
        self.protocol = protocol


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
        per = self.forward_timeout / max(1, len(self.upstreams))
        qid = data[:2]
        for ip, port in self.upstreams:
            new_id = struct.pack("!H", random.getrandbits(16))
            query = new_id + data[2:]
            try:
                answer = _ask_tcp(query, ip, port, per) if tcp else _ask_udp(query, ip, port, per)
                if answer is not None and not tcp and answer[2] & 0x02:
                    answer = _ask_tcp(query, ip, port, per)  # truncated: again over TCP
            except OSError:
                continue
            if answer is not None and answer[:2] == new_id and same_question(answer, query):
                return qid + relayed(answer)[2:]
        return None

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
        entry = _entry(reply, self.ra)
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
        packer = _Packer(self.ra)
        for name, rrsets in view.records.items():
            qtypes = set(rrsets)
            zone = view.zone_of(name)
            if zone is None:
                continue
            if zone.name in forward:
                qtypes |= {QTYPE.A, QTYPE.AAAA}
            qname = _encode_name(name)
            for qtype in qtypes:
                key = qname + struct.pack("!HH", qtype, CLASS.IN)
                entry = None
                if QTYPE.CNAME not in rrsets and qtype != QTYPE.NS:
                    rrs = rrsets.get(qtype)
                    entry = packer.answer(rrs) if rrs else packer.nodata(zone.soa)
                if entry is None:
                    request = DNSRecord(DNSHeader(id=0, rd=0), q=DNSQuestion(name, qtype))
                    reply = self.answer(request, view)
                    entry = _entry(reply, self.ra) if reply is not None else None
                if entry is not None:
                    table[key] = entry
        return table


class _Packer:
    """Hand-packed answers: the owner of every answer RR is the question's name (a pointer
    to offset 12), record data names are written in full (no compression needed)."""

    def __init__(self, ra: bool) -> None:
        self.flags = bytes((0x84, 0x80 if ra else 0x00))  # QR AA / RA
        self._rdata: dict[int, bytes] = {}

    def answer(self, rrs: list[RR]) -> Entry | None:
        rest = b"".join(b"\xc0\x0c" + self._rr_tail(rr) for rr in rrs)
        return self._entry(len(rrs), 0, rest)

    def nodata(self, soa: RR) -> Entry | None:
        return self._entry(0, 1, _encode_name(str(soa.rname)) + self._rr_tail(soa))

    def _rr_tail(self, rr: RR) -> bytes:
        rdata = self._rdata.get(id(rr))
        if rdata is None:
            rdata = self._rdata[id(rr)] = _rdata_wire(rr)
        return struct.pack("!HHIH", rr.rtype, rr.rclass, rr.ttl, len(rdata)) + rdata

    def _entry(self, an: int, ns: int, rest: bytes) -> Entry | None:
        if 12 + 255 + 4 + len(rest) > 512:
            return None  # might need truncation: left to dnslib and the slow path
        counts = struct.pack("!HHHH", 1, an, ns, 0)
        counts_edns = struct.pack("!HHHH", 1, an, ns, 1)
        flags, rd1 = self.flags, bytes((self.flags[0] | 0x01, self.flags[1]))
        return (flags + counts, rd1 + counts, flags + counts_edns, rd1 + counts_edns), rest


def _encode_name(name: str) -> bytes:
    labels = [label for label in name.rstrip(".").split(".") if label]
    return b"".join(bytes((len(label),)) + label.encode("ascii") for label in labels) + b"\x00"


def _rdata_wire(rr: RR) -> bytes:
    if rr.rtype == QTYPE.A:
        return socket.inet_aton(str(rr.rdata))
    if rr.rtype == QTYPE.AAAA:
        return socket.inet_pton(socket.AF_INET6, str(rr.rdata))
    if rr.rtype in (QTYPE.PTR, QTYPE.CNAME, QTYPE.NS):
        return _encode_name(str(rr.rdata.label))
    if rr.rtype == QTYPE.SOA:
        soa = rr.rdata
        return (
            _encode_name(str(soa.mname))
            + _encode_name(str(soa.rname))
            + struct.pack("!IIIII", *soa.times)
        )
    raise ValueError(f"no hand packing for {QTYPE[rr.rtype]}")


def _entry(reply: DNSRecord, ra: bool) -> Entry | None:
    """Header variants (RD 0/1, with/without our OPT) and the bytes after the question."""
    saved = reply.header.id, reply.header.rd
    reply.header.id, reply.header.rd = 0, 0
    try:
        wire = bytes(reply.pack())
    finally:
        reply.header.id, reply.header.rd = saved
    if len(wire) > 512:
        return None  # needs truncation rules: the slow path applies them
    qlen = _question_length(wire)
    flags = wire[2:4]
    counts = wire[4:12]
    ar = struct.unpack("!H", counts[6:8])[0]
    counts_edns = counts[:6] + struct.pack("!H", ar + 1)
    rd1 = bytes((flags[0] | 0x01, flags[1]))
    heads = (flags + counts, rd1 + counts, flags + counts_edns, rd1 + counts_edns)
    return heads, wire[12 + qlen :]


def relayed(answer: bytes) -> bytes:
    """An upstream's answer as we pass it on: not authoritative (it is not ours), recursion
    available (we just did it for the client)."""
    return answer[:2] + bytes((answer[2] & ~0x04 & 0xFF, answer[3] | 0x80)) + answer[4:]


def _question_length(wire: bytes) -> int:
    """Length of the first question (an uncompressed name, type and class) at offset 12."""
    i = 12
    while wire[i]:
        i += wire[i] + 1
    return i + 1 + 4 - 12


def same_question(answer: bytes, query: bytes) -> bool:
    """The answer repeats the query's question (the name compared without case)."""
    found = question_key(query)
    if found is None:
        try:
            return DNSRecord.parse(answer).q == DNSRecord.parse(query).q
        except Exception:  # noqa: BLE001
            return False
    q = found[1]
    part = answer[12 : 12 + len(q)]
    return len(answer) >= 12 + len(q) and part[:-4].lower() + part[-4:] == found[0]


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
        head = _recv_exact(s, 2)
        if head is None:
            return None
        return _recv_exact(s, struct.unpack("!H", head)[0])


def _recv_exact(s: socket.socket, n: int) -> bytes | None:
    """Exactly n bytes from a stream socket (the TCP transport reads with it too), or None."""
    chunks, got = [], 0
    while got < n:
        chunk = s.recv(n - got)
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def refused(data: bytes, rcode: int = RCODE.REFUSED, ra: bool = False) -> bytes | None:
    """A bare error answer built from the raw query: the question is echoed except for
    FORMERR (a question we could not parse is not repeated); None for a packet too short to
    answer or that is itself a response (never answer those: no loops, no reflection)."""
    if len(data) < 12 or data[2] & 0x80:
        return None
    flags = bytes((0x80 | (data[2] & 0x79), (0x80 if ra else 0) | rcode))
    found = question_key(data) if rcode != RCODE.FORMERR else None
    if found is not None:
        return data[:2] + flags + _PLAIN_COUNTS[:2] + b"\x00\x00" * 3 + found[1]
    return data[:2] + flags + b"\x00\x00" * 4


def handler_for(client: tuple[str, int], protocol: str) -> _Handler:
    return _Handler(client, protocol)
