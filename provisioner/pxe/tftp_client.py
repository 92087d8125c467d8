"""A small TFTP read client (RFC 1350, options of RFC 2347-2349 and 7440), for tests, benches
and checking a server by hand: `python -m provisioner.pxe.tftp_client HOST PORT PATH [OUT]`.

It is strict where a server bug would hide: a DATA block out of order is not accepted, packets
from another port than the server's transfer port are answered with error 5 and dropped, and
the size announced in an OACK's tsize must match what arrives.
"""

from __future__ import annotations

import socket
import struct
import sys
import time
from dataclasses import dataclass, field

from provisioner.pxe.tftp import ACK, DATA, ERR_UNKNOWN_TID, ERROR, OACK, RRQ, TftpError

_HEADER = struct.Struct("!HH")


@dataclass
class Fetched:
    data: bytes
    options: dict[str, str] = field(default_factory=dict)
    server_port: int = 0
    blocks: int = 0


def request_packet(
    path: str | bytes, mode: str = "octet", options: dict[str, str | int] | None = None
) -> bytes:
    name = path.encode() if isinstance(path, str) else path
    packet = struct.pack("!H", RRQ) + name + b"\0" + mode.encode() + b"\0"
    for key, value in (options or {}).items():
        packet += key.encode() + b"\0" + str(value).encode() + b"\0"
    return packet


def parse_oack(packet: bytes) -> dict[str, str]:
    fields = packet[2:].split(b"\0")[:-1]
    return {
        fields[i].decode().lower(): fields[i + 1].decode() for i in range(0, len(fields) - 1, 2)
    }


def fetch(
    address: str,
    port: int,
    path: str | bytes,
    *,
    mode: str = "octet",
    options: dict[str, str | int] | None = None,
    timeout: float = 2.0,
    retries: int = 3,
    source: str | None = None,
    limit: int = 1 << 30,
) -> Fetched:
    """Download `path`; raises TftpError for an ERROR packet, TimeoutError when the server
    stops answering, ValueError for a protocol violation."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((source or ("::1" if family == socket.AF_INET6 else "127.0.0.1"), 0))
        sock.settimeout(timeout)
        request = request_packet(path, mode, options)
        sock.sendto(request, (address, port))
        last_sent, last_dest = request, (address, port)
        server: tuple[str, int] | None = None
        negotiated: dict[str, str] = {}
        blksize, window = 512, 1
        expected, chunks, size, tries = 1, [], 0, 0
        deadline = time.monotonic() + timeout * (retries + 1) + 60
        while time.monotonic() < deadline:
            try:
                packet, peer = sock.recvfrom(65536 + 4)
            except TimeoutError:
                tries += 1
                if tries > retries:
                    raise TimeoutError(f"no answer from {address}:{port} for {path!r}") from None
                sock.sendto(last_sent, last_dest)
                continue
            if server is None:
                server = (peer[0], peer[1])
            elif (peer[0], peer[1]) != server:
                sock.sendto(_error(ERR_UNKNOWN_TID, "unknown transfer ID"), peer)
                continue
            if len(packet) < 4:
                raise ValueError(f"short packet {packet!r}")
            opcode, number = _HEADER.unpack_from(packet)
            if opcode == ERROR:
                raise TftpError(number, packet[4:].split(b"\0")[0].decode("ascii", "replace"))
            if opcode == OACK and expected == 1 and not chunks:
                negotiated = parse_oack(packet)
                blksize = int(negotiated.get("blksize", blksize))
                window = int(negotiated.get("windowsize", window))
                last_sent, last_dest = _HEADER.pack(ACK, 0), server
                sock.sendto(last_sent, last_dest)
                tries = 0
                continue
            if opcode != DATA:
                raise ValueError(f"unexpected opcode {opcode}")
            if number != expected & 0xFFFF:
                # A block out of order: ask again from the last one we hold (RFC 7440).
                last_sent = _HEADER.pack(ACK, (expected - 1) & 0xFFFF)
                sock.sendto(last_sent, server)
                continue
            payload = packet[4:]
            if len(payload) > blksize:
                raise ValueError(f"block {number} has {len(payload)} bytes, blksize {blksize}")
            chunks.append(payload)
            size += len(payload)
            if size > limit:
                raise ValueError(f"more than {limit} bytes")
            tries = 0
            done = len(payload) < blksize
            if done or expected % window == 0:
                last_sent, last_dest = _HEADER.pack(ACK, number), server
                sock.sendto(last_sent, last_dest)
            expected += 1
            if done:
                data = b"".join(chunks)
                if "tsize" in negotiated and int(negotiated["tsize"]) != len(data):
                    raise ValueError(f"tsize {negotiated['tsize']} but {len(data)} bytes came")
                return Fetched(data, negotiated, server[1], expected - 1)
        raise TimeoutError(f"transfer of {path!r} did not finish")


def _error(code: int, message: str) -> bytes:
    return _HEADER.pack(ERROR, code) + message.encode() + b"\0"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 3:
        print("usage: python -m provisioner.pxe.tftp_client HOST PORT PATH [OUT]", file=sys.stderr)
        return 2
    try:
        got = fetch(args[0], int(args[1]), args[2], options={"blksize": 1468, "tsize": 0})
    except (TftpError, TimeoutError, ValueError) as exc:
        print(f"tftp: {exc}", file=sys.stderr)
        return 1
    if len(args) > 3:
        with open(args[3], "wb") as fh:
            fh.write(got.data)
    else:
        sys.stdout.buffer.write(got.data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
