"""The DNS transport: UDP and TCP sockets around a dnslib-style resolver.

`DnsServer(resolver, address, port, tcp, logger)` mirrors dnslib's `DNSServer` and its
`start()` / `start_thread()` / `stop()`, but not its thread per request: the UDP side is one
tight `recvfrom`/`sendto` loop that answers plain queries from the resolver's packed answers
(`resolver.table`, see `ClusterResolver.lookup`) without parsing them, and parses with dnslib
only what it does not find there. Queries for names outside our zones are forwarded without
blocking the loop (a forwarder thread matches upstream answers by a fresh random id and the
question). TCP (RFC 7766: length-prefixed, several queries per connection) gets a thread per
connection, at most `max_tcp_clients` of them; a connection lives at most `tcp_lifetime`
seconds however it trickles, each query must arrive whole within `tcp_idle` seconds, and when
every slot is taken a newcomer evicts a held connection instead of being refused. With
`reuse_port`, several processes can share one port (`serve()` uses that to put a server on
every core).

The server takes a `resolver.FastResolver` (a `ClusterResolver`); any other dnslib resolver
(`resolve(request, handler)`) works too, wrapped in a `resolver.DnslibResolver`. Packing is
`wire`'s, forwarding `forward.Forwarder`'s (one for the UDP loop and the TCP threads).
"""

from __future__ import annotations

import logging
import os
import select
import socket
import struct
import threading
import time
from typing import Any

from dnslib import RCODE, DNSRecord
from dnslib.server import BaseResolver

from provisioner.dns.forward import Forwarder
from provisioner.dns.resolver import DnslibResolver, FastResolver
from provisioner.dns.wire import PLAIN_COUNTS, pack_reply, recv_exact, refused
from provisioner.udp import UdpService, big_receive_buffer

log = logging.getLogger("provisioner.dns")

_FORWARD = object()


class DnsServer(UdpService):
    """Serves `resolver` over UDP (and TCP on the same port) on `address`:`port`; port 0
    picks a free one, read back from `.port`. Sockets are bound in the constructor. The
    service frame (`port`, `start_thread`, `stop`, the context manager) is provisioner/udp.py's,
    shared with TFTP."""

    thread_name = "dns"

    def __init__(
        self,
        resolver: FastResolver | BaseResolver,
        address: str = "0.0.0.0",
        port: int = 53,
        tcp: bool = True,
        logger: logging.Logger | None = None,
        *,
        reuse_port: bool = False,
        max_tcp_clients: int = 64,
        tcp_idle: float = 2.0,
        tcp_lifetime: float = 10.0,
        max_forwards: int = 4096,
    ) -> None:
        self.resolver: FastResolver = (
            resolver if isinstance(resolver, FastResolver) else DnslibResolver(resolver)
        )
        self.log = logger or log
        self.max_tcp_clients = max(1, max_tcp_clients)
        # RFC 7766 (6.2.3) lets a server close idle or long connections; clients reconnect. A
        # query on a LAN arrives within milliseconds of the connection or of the previous
        # answer, so 2 s is generous; 10 s covers a forwarded query waiting out the upstreams'
        # whole timeout (2 s by default) several times over, and caps what one client, however
        # it trickles, can hold a slot for.
        self.tcp_idle = tcp_idle
        self.tcp_lifetime = tcp_lifetime
        self._family = socket.AF_INET6 if ":" in address else socket.AF_INET
        super().__init__()
        self._udp, self._tcp = self._bind(address, port, tcp, reuse_port)
        self._sock = self._udp
        self.address = self._udp.getsockname()[0]
        self._wake_r, self._wake_w = os.pipe()
        self._tcp_lock = threading.Condition()
        self._tcp_clients: dict[socket.socket, _TcpClient] = {}
        self._tcp_hosts: dict[str, int] = {}
        self._tcp_threads = 0
        self._threads: list[threading.Thread] = []
        self.stats = {
            "udp": 0,
            "tcp": 0,
            "slow": 0,
            "forwarded": 0,
            "malformed": 0,
            "tcp_evicted": 0,
        }
        self._forwarder: Forwarder | None = None
        if self.resolver.upstreams:
            self._forwarder = Forwarder(
                self.resolver.upstreams, self.resolver.forward_timeout, self.log, max_forwards
            )
            self._forwarder.open(self._udp)

    def _bind(
        self, address: str, port: int, tcp: bool, reuse_port: bool
    ) -> tuple[socket.socket, socket.socket | None]:
        # Port 0 picks a UDP port; TCP needs the same one, so try again if it is taken there.
        for _ in range(20):
            udp = socket.socket(self._family, socket.SOCK_DGRAM)
            if reuse_port:
                udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            big_receive_buffer(udp, 4 << 20)
            udp.bind((address, port))
            udp.setblocking(False)
            if not tcp:
                return udp, None
            listener = socket.socket(self._family, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            try:
                listener.bind((address, udp.getsockname()[1]))
            except OSError:
                listener.close()
                udp.close()
                if port:
                    raise
                continue
            listener.listen(128)
            listener.settimeout(0.25)
            return udp, listener
        raise OSError(f"no port free for both UDP and TCP on {address}")

    @property
    def tcp_clients(self) -> int:
        """TCP connections held now."""
        with self._tcp_lock:
            return len(self._tcp_clients)

    @property
    def tcp_threads(self) -> int:
        """Threads serving TCP connections now: `tcp_clients` plus evicted ones finishing."""
        with self._tcp_lock:
            return self._tcp_threads

    def start(self) -> None:
        """Serve until `stop()` (blocking): UDP in this thread, TCP and forwarding in others."""
        if self._loop_thread is not None:
            raise RuntimeError("a DnsServer is started once")
        self._loop_thread = threading.current_thread()
        self._stopped.clear()
        self.resolver.start()
        if self._tcp is not None:
            self._spawn(self._serve_tcp, "dns-tcp")
        forwarder = self._forwarder
        if forwarder is not None:
            self._spawn(lambda: forwarder.run(self._stopping), "dns-forward")
        self.log.info("DNS serving on %s port %d", self.address, self.port)
        try:
            self._serve_udp()
        finally:
            self._stopping.set()
            for thread in self._threads:
                thread.join(2)
            self._end_tcp_clients(2.0)
            self.resolver.stop()
            self._udp.close()
            if self._tcp is not None:
                self._tcp.close()
            if self._forwarder is not None:
                self._forwarder.close()
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._stopped.set()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def _close(self) -> None:
        self._udp.close()
        if self._tcp is not None:
            self._tcp.close()

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    # -- UDP ------------------------------------------------------------------------------------

    def _serve_udp(self) -> None:
        sock = self._udp
        recvfrom, sendto = sock.recvfrom, sock.sendto
        resolver = self.resolver
        stopping = self._stopping.is_set
        ep = select.epoll()
        ep.register(sock.fileno(), select.EPOLLIN)
        ep.register(self._wake_r, select.EPOLLIN)
        count = 0
        try:
            while True:
                try:
                    data, addr = recvfrom(4096)
                except BlockingIOError:
                    if stopping():
                        return
                    ep.poll(0.5)
                    continue
                except OSError:
                    continue
                count += 1
                if not count & 0x3FFF and stopping():
                    return
                # The fast path of ClusterResolver.lookup, inlined: this loop is the bottleneck.
                if len(data) >= 17 and not data[2] & 0xF8 and data[4:10] == PLAIN_COUNTS:
                    ar = data[10:12]
                    if ar == b"\x00\x00":
                        q = data[12:]
                        entry = resolver.table.get(q[:-4].lower() + q[-4:])
                        if entry is not None:
                            try:
                                sendto(data[:2] + entry[0][data[2] & 1] + q + entry[1], addr)
                            except OSError:
                                pass
                            continue
                    else:
                        out = resolver.lookup(data)
                        if out is not None:
                            try:
                                sendto(out, addr)
                            except OSError:
                                pass
                            continue
                try:
                    out = self._slow(data, addr, "udp")
                except Exception:  # noqa: BLE001 - one query's bug must not stop the server
                    self.log.exception("DNS query from %s failed", addr[0])
                    out = refused(data, RCODE.SERVFAIL)
                if out is _FORWARD:
                    if self._forwarder is not None:
                        self._forwarder.submit(data, addr)
                        continue
                    out = refused(data, RCODE.SERVFAIL, ra=True)
                if out is not None:
                    try:
                        sendto(out, addr)  # type: ignore[arg-type]
                    except OSError:
                        pass
        finally:
            self.stats["udp"] += count
            ep.close()

    def _slow(self, data: bytes, client: tuple[str, int], protocol: str) -> Any:
        """Parse and answer: packed bytes, None (send nothing) or _FORWARD."""
        self.stats["slow"] += 1
        if len(data) < 12 or data[2] & 0x80:
            return None  # not a query: never answer a response
        try:
            request = DNSRecord.parse(data)
        except Exception:  # noqa: BLE001 - dnslib raises several types on garbage
            self.stats["malformed"] += 1
            return refused(data, RCODE.FORMERR)
        if len(request.questions) != 1:
            return refused(data, RCODE.FORMERR)
        reply = self.resolver.respond(request, data, client, protocol)
        if reply is None:
            return _FORWARD
        return pack_reply(reply, request, udp=protocol == "udp")

    # -- TCP ------------------------------------------------------------------------------------

    def _serve_tcp(self) -> None:
        listener = self._tcp
        assert listener is not None
        while not self._stopping.is_set():
            try:
                conn, addr = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stopping.is_set():
                    return
                time.sleep(0.05)  # EMFILE and friends: do not spin
                continue
            client = _TcpClient(conn, addr[0], time.monotonic())
            with self._tcp_lock:
                admitted = self._admit(client)
            if not admitted:
                _close(conn)
                continue
            thread = threading.Thread(
                target=self._tcp_client, args=(client, addr), name="dns-tcp-client", daemon=True
            )
            try:
                thread.start()
            except RuntimeError:  # no thread to be had: give the slot back
                self._release(client)

    def _admit(self, client: _TcpClient) -> bool:
        """Take a slot for `client` (under `_tcp_lock`), evicting a held connection if all
        are taken: refusing the newcomer would let whoever holds the slots lock everyone out.

        The victim comes from the peer address holding the most connections, so a flood from
        one address, or a few, reconnecting as fast as it can, only evicts its own connections
        while anyone else holds fewer. Within that address it is the connection that has waited
        longest for its next whole query (a trickle, a half message, an idle keep-alive;
        waiting restarts at each answer). A client that sends its query at once is the most
        recent waiter, so only a flood from its own address that opens `max_tcp_clients`
        connections before its thread reads that query can evict it. A connection computing
        an answer is never evicted (its thread would outlive its slot); if every slot is doing
        that, which lasts at most a forward timeout, the newcomer is refused."""
        if self._tcp_threads >= 2 * self.max_tcp_clients:
            return False  # evicted threads not yet gone: bound the threads regardless
        if len(self._tcp_clients) >= self.max_tcp_clients:
            hosts = self._tcp_hosts
            victim = max(
                (c for c in self._tcp_clients.values() if not c.answering),
                key=lambda c: (hosts[c.host], -c.waiting_since),
                default=None,
            )
            if victim is None:
                return False
            victim.evicted = True
            self._forget(victim)
            self.stats["tcp_evicted"] += 1
            # Under the lock: the victim's thread closes its socket only after taking the lock,
            # so this cannot hit a reused descriptor. Its blocked recv or send returns at once.
            _shutdown(victim.sock)
        self._tcp_clients[client.sock] = client
        self._tcp_hosts[client.host] = self._tcp_hosts.get(client.host, 0) + 1
        self._tcp_threads += 1
        return True

    def _forget(self, client: _TcpClient) -> None:
        if self._tcp_clients.pop(client.sock, None) is None:
            return
        left = self._tcp_hosts[client.host] - 1
        if left:
            self._tcp_hosts[client.host] = left
        else:
            del self._tcp_hosts[client.host]

    def _end_tcp_clients(self, timeout: float) -> None:
        with self._tcp_lock:
            for client in self._tcp_clients.values():
                client.evicted = True
                _shutdown(client.sock)
            self._tcp_lock.wait_for(lambda: self._tcp_threads == 0, timeout)

    def _tcp_client(self, client: _TcpClient, addr: tuple[str, int]) -> None:
        conn = client.sock
        deadline = client.accepted + self.tcp_lifetime
        try:
            for _ in range(1000):
                until = min(deadline, client.waiting_since + self.tcp_idle)
                head = recv_exact(conn, 2, until)
                if head is None:
                    return
                data = recv_exact(conn, struct.unpack("!H", head)[0], until)
                if data is None:
                    return
                with self._tcp_lock:
                    if client.evicted:
                        return
                    client.answering = True
                try:
                    out = self._tcp_answer(data, addr)
                finally:
                    client.answering = False
                left = deadline - time.monotonic()
                if out is None or left <= 0:
                    return
                conn.settimeout(left)  # sendall's timeout bounds the whole answer
                conn.sendall(struct.pack("!H", len(out)) + out)
                client.waiting_since = time.monotonic()
        except OSError:
            pass
        finally:
            self._release(client)

    def _release(self, client: _TcpClient) -> None:
        with self._tcp_lock:
            self._forget(client)
            self._tcp_threads -= 1
            self._tcp_lock.notify_all()
        _close(client.sock)  # only now: see _admit

    def _tcp_answer(self, data: bytes, addr: tuple[str, int]) -> bytes | None:
        self.stats["tcp"] += 1
        out = self.resolver.lookup(data)
        if out is None:
            try:
                out = self._slow(data, addr, "tcp")
            except Exception:  # noqa: BLE001
                self.log.exception("DNS query from %s failed", addr[0])
                out = refused(data, RCODE.SERVFAIL)
            if out is _FORWARD:
                forwarder = self._forwarder
                answer = forwarder.ask(data, tcp=True) if forwarder is not None else None
                out = answer or refused(data, RCODE.SERVFAIL, ra=True)
        return out


class _TcpClient:
    __slots__ = ("sock", "host", "accepted", "waiting_since", "answering", "evicted")

    def __init__(self, sock: socket.socket, host: str, accepted: float) -> None:
        self.sock = sock
        self.host = host
        self.accepted = accepted
        self.waiting_since = accepted
        self.answering = False
        self.evicted = False


def _shutdown(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _close(conn: socket.socket) -> None:
    _shutdown(conn)
    conn.close()
