"""DNS wire format: the bytes of questions and answers, without any policy.

It owns the pre-packed answers the fast path serves (`Entry`: header variants and the bytes
after the question; `Packer` packs the common shapes by hand, `entry_of` takes dnslib's
packing apart), reading a raw query without parsing it (`question_key`, `same_question`),
answers built from raw bytes (`refused`, `relayed`) and a dnslib reply's final wire form
(`pack_reply`: EDNS echoed, UDP truncation). What to answer is the resolver's business.
"""

from __future__ import annotations

import socket
import struct
import time

from dnslib import EDNS0, QTYPE, RCODE, RR, DNSRecord

# Our EDNS OPT record: root name, type 41, UDP payload 1232, extended rcode 0, version 0,
# flags 0 (no DO: nothing is signed), no options.
OPT_RR = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"
UDP_PAYLOAD = 1232
# QDCOUNT 1, ANCOUNT 0, NSCOUNT 0: the counts of a plain query before its ARCOUNT.
PLAIN_COUNTS = b"\x00\x01\x00\x00\x00\x00"

Entry = tuple[tuple[bytes, bytes, bytes, bytes], bytes]


def question_key(data: bytes) -> tuple[bytes, bytes, int] | None:
    """For a plain query: (table key, question as sent, EDNS flag 0 or 2); else None.

    Plain means QR=0, opcode QUERY, one question, no answer or authority records, and either
    no additional record or one bare OPT (version 0, no options) at the end. The key is the
    question with the name in lower case (only the name: type 65 is 'A' in ASCII).
    """
    n = len(data)
    if n < 17 or data[2] & 0xF8 or data[4:10] != PLAIN_COUNTS:
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


class Packer:
    """Hand-packed answers: the owner of every answer RR is the question's name (a pointer
    to offset 12), record data names are written in full (no compression needed)."""

    def __init__(self, ra: bool) -> None:
        self.flags = bytes((0x84, 0x80 if ra else 0x00))  # QR AA / RA
        self._rdata: dict[int, bytes] = {}

    def answer(self, rrs: list[RR]) -> Entry | None:
        rest = b"".join(b"\xc0\x0c" + self._rr_tail(rr) for rr in rrs)
        return self._entry(len(rrs), 0, rest)

    def nodata(self, soa: RR) -> Entry | None:
        return self._entry(0, 1, encode_name(str(soa.rname)) + self._rr_tail(soa))

    def _rr_tail(self, rr: RR) -> bytes:
        rdata = self._rdata.get(id(rr))
        if rdata is None:
            rdata = self._rdata[id(rr)] = rdata_wire(rr)
        return struct.pack("!HHIH", rr.rtype, rr.rclass, rr.ttl, len(rdata)) + rdata

    def _entry(self, an: int, ns: int, rest: bytes) -> Entry | None:
        if 12 + 255 + 4 + len(rest) > 512:
            return None  # might need truncation: left to dnslib and the slow path
        counts = struct.pack("!HHHH", 1, an, ns, 0)
        counts_edns = struct.pack("!HHHH", 1, an, ns, 1)
        flags, rd1 = self.flags, bytes((self.flags[0] | 0x01, self.flags[1]))
        return (flags + counts, rd1 + counts, flags + counts_edns, rd1 + counts_edns), rest


def encode_name(name: str) -> bytes:
    labels = [label for label in name.rstrip(".").split(".") if label]
    return b"".join(bytes((len(label),)) + label.encode("ascii") for label in labels) + b"\x00"


def rdata_wire(rr: RR) -> bytes:
    if rr.rtype == QTYPE.A:
        return socket.inet_aton(str(rr.rdata))
    if rr.rtype == QTYPE.AAAA:
        return socket.inet_pton(socket.AF_INET6, str(rr.rdata))
    if rr.rtype in (QTYPE.PTR, QTYPE.CNAME, QTYPE.NS):
        return encode_name(str(rr.rdata.label))
    if rr.rtype == QTYPE.SOA:
        soa = rr.rdata
        return (
            encode_name(str(soa.mname))
            + encode_name(str(soa.rname))
            + struct.pack("!IIIII", *soa.times)
        )
    raise ValueError(f"no hand packing for {QTYPE[rr.rtype]}")


def entry_of(reply: DNSRecord) -> Entry | None:
    """Header variants (RD 0/1, with/without our OPT) and the bytes after the question."""
    saved = reply.header.id, reply.header.rd
    reply.header.id, reply.header.rd = 0, 0
    try:
        wire = bytes(reply.pack())
    finally:
        reply.header.id, reply.header.rd = saved
    if len(wire) > 512:
        return None  # needs truncation rules: the slow path applies them
    qlen = question_length(wire)
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


def question_length(wire: bytes) -> int:
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


def refused(data: bytes, rcode: int = RCODE.REFUSED, ra: bool = False) -> bytes | None:
    """A bare error answer built from the raw query: the question is echoed except for
    FORMERR (a question we could not parse is not repeated); None for a packet too short to
    answer or that is itself a response (never answer those: no loops, no reflection)."""
    if len(data) < 12 or data[2] & 0x80:
        return None
    flags = bytes((0x80 | (data[2] & 0x79), (0x80 if ra else 0) | rcode))
    found = question_key(data) if rcode != RCODE.FORMERR else None
    if found is not None:
        return data[:2] + flags + PLAIN_COUNTS[:2] + b"\x00\x00" * 3 + found[1]
    return data[:2] + flags + b"\x00\x00" * 4


def pack_reply(reply: DNSRecord, request: DNSRecord, udp: bool) -> bytes:
    """Wire form with EDNS echoed and UDP truncation (TC, question only) when too long."""
    opt = next((rr for rr in request.ar if rr.rtype == QTYPE.OPT), None)
    limit = 65535
    if udp:
        limit = max(512, min(opt.rclass, UDP_PAYLOAD)) if opt is not None else 512
    if opt is not None and not any(rr.rtype == QTYPE.OPT for rr in reply.ar):
        reply.add_ar(EDNS0(udp_len=UDP_PAYLOAD))
    wire = reply.pack()
    if len(wire) > limit:
        short = reply.truncate()
        if opt is not None:
            short.add_ar(EDNS0(udp_len=UDP_PAYLOAD))
        wire = short.pack()
    return wire


def recv_exact(conn: socket.socket, n: int, until: float | None = None) -> bytes | None:
    """Exactly n bytes of a TCP message (RFC 7766 framing) or None if the peer closes first.
    With `until` (monotonic time), None past it too: a peer trickling a byte at a time cannot
    stretch a message beyond it, as a timeout per recv would let it."""
    chunks, got = [], 0
    while got < n:
        if until is not None:
            left = until - time.monotonic()
            if left <= 0:
                return None
            conn.settimeout(left)
        chunk = conn.recv(n - got)
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)
