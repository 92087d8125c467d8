"""A small TFTP read client (RFC 1350, options of RFC 2347-2349 and 7440), for tests, benches
and checking a server by hand: `python -m provisioner.pxe.tftp.client HOST PORT PATH [OUT]`.

It is strict where a server bug would hide: a DATA block out of order is not accepted, packets
from another port than the server's transfer port are answered with error 5 and dropped, and
the size announced in an OACK's tsize must match what arrives.

`StalledRequests` (and `python -m provisioner.pxe.tftp.client --hold N HOST PORT PATH...`)
plays a flood for tests and benches: N read requests from many loopback source addresses whose
sockets stay open and silent (a closed one would make the kernel answer ICMP port unreachable,
which ends a transfer at once), or that acknowledge the first packet only.
"""

from __future__ import annotations

import ipaddress
import json
import os
import select
import socket
import struct
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

from provisioner.pxe.tftp.packets import ACK, DATA, ERR_UNKNOWN_TID, ERROR, OACK, RRQ, TftpError

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


class StalledRequests:
    """`count` read requests to a server, `per_source` from each of consecutive loopback
    addresses from `network` on (`count` from one address if `per_source` >= `count`), for
    `paths` in turn. The sockets stay open; with `acknowledge`, each acknowledges the server's
    first packet (OACK or DATA 1) and nothing after, so the transfer is confirmed and stalls."""

    def __init__(
        self,
        address: str,
        port: int,
        count: int,
        paths: list[str],
        *,
        network: str = "127.9.0.0",
        per_source: int = 4,
        options: dict[str, str | int] | None = None,
        acknowledge: bool = False,
    ) -> None:
        _raise_open_files_limit(count + 64)
        self.server = (address, port)
        self.acknowledge = acknowledge
        self.replies: Counter[str] = Counter()
        self.socks: list[socket.socket] = []
        self._packets = [request_packet(path, "octet", options) for path in paths]
        self._acked: set[int] = set()
        self._ep = select.epoll()
        self._by_fd: dict[int, socket.socket] = {}
        base = int(ipaddress.IPv4Address(network))
        n = 0
        try:
            while len(self.socks) < count:
                n += 1
                if (base + n) & 0xFF in (0, 255):
                    continue
                source = str(ipaddress.IPv4Address(base + n))
                for _ in range(min(per_source, count - len(self.socks))):
                    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    self.socks.append(sock)
                    sock.setblocking(False)
                    sock.bind((source, 0))
                    self._by_fd[sock.fileno()] = sock
                    self._ep.register(sock.fileno(), select.EPOLLIN)
        except BaseException:
            self.close()
            raise

    def send(self) -> float:
        """Send every request once, as fast as the loop goes; the seconds it took."""
        start = time.perf_counter()
        packets, dest = self._packets, self.server
        for i, sock in enumerate(self.socks):
            try:
                sock.sendto(packets[i % len(packets)], dest)
            except BlockingIOError:
                self.replies["send_dropped"] += 1
        return time.perf_counter() - start

    def drain(self, seconds: float = 0.0) -> Counter[str]:
        """Read what the server sent for `seconds` (0: what is there now), acknowledging first
        packets if asked; counts of replies by kind."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            events = self._ep.poll(max(0.0, min(left, 0.05)))
            for fd, _ in events:
                sock = self._by_fd[fd]
                while True:
                    try:
                        packet, peer = sock.recvfrom(70000)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        self.replies["socket_error"] += 1
                        break
                    kind = {DATA: "data", OACK: "oack", ERROR: "error"}.get(
                        _HEADER.unpack_from(packet)[0] if len(packet) >= 4 else 0, "other"
                    )
                    self.replies[kind] += 1
                    if self.acknowledge and fd not in self._acked and kind in ("data", "oack"):
                        self._acked.add(fd)
                        block = 0 if kind == "oack" else _HEADER.unpack_from(packet)[1]
                        try:
                            sock.sendto(_HEADER.pack(ACK, block), peer)
                        except OSError:
                            pass
            if left <= 0 and not events:
                return self.replies

    def close(self) -> None:
        for sock in self.socks:
            sock.close()
        self.socks.clear()
        self._by_fd.clear()
        self._ep.close()

    def __enter__(self) -> StalledRequests:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _raise_open_files_limit(need: int) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))


def hold(argv: list[str]) -> int:
    """`--hold COUNT [--network A] [--per-source N] [--option K=V]... [--ack] [--seconds S]
    HOST PORT PATH...`: send the requests, print `{"sent": n, "seconds": s}`, keep the sockets
    until standard input closes (or S seconds, 60 by default), then print the reply counts."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m provisioner.pxe.tftp.client --hold")
    parser.add_argument("--hold", type=int, required=True)
    parser.add_argument("--network", default="127.9.0.0")
    parser.add_argument("--per-source", type=int, default=4)
    parser.add_argument("--option", action="append", default=[])
    parser.add_argument("--ack", action="store_true")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("paths", nargs="+")
    args = parser.parse_args(argv)
    options: dict[str, str | int] = dict(o.split("=", 1) for o in args.option)
    with StalledRequests(
        args.host,
        args.port,
        args.hold,
        args.paths,
        network=args.network,
        per_source=args.per_source,
        options=options,
        acknowledge=args.ack,
    ) as held:
        seconds = held.send()
        print(json.dumps({"sent": len(held.socks), "seconds": round(seconds, 4)}), flush=True)
        deadline = time.monotonic() + args.seconds
        stdin = sys.stdin.fileno()
        while time.monotonic() < deadline:
            held.drain(0.0)
            ready, _, _ = select.select([stdin], [], [], 0.05)
            if ready and not os.read(stdin, 4096):
                break
        print(json.dumps(held.drain(0.0)), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0].startswith("--hold"):
        return hold(args)
    if len(args) < 3:
        print("usage: python -m provisioner.pxe.tftp.client HOST PORT PATH [OUT]", file=sys.stderr)
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
