"""What the UDP services (TFTP, DNS) share: how many processes to run, a receive buffer that
holds a burst, the open-files limit, `ServerSocket` (which answers from the address a request
was sent to) and `UdpService`, the start/stop/port frame of a service that serves one UDP
socket from a loop in one thread.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
from abc import ABC, abstractmethod
from typing import Self

# Linux's value; the socket module does not export it.
_IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
_PKTINFO = struct.Struct("@I4s4s")


def default_workers() -> int:
    """One process per core but one (left to HTTP, the database and the other services), at
    most four. Measured with bench/tftp.py and bench/dns.py on two cores: a second process
    costs more CPU than it gains (a TFTP loop gets fewer ACKs per wake-up; one DNS process
    answers about as many plain queries as dnsmasq on a quiet core), and the clients and the
    other services need the other core."""
    return max(1, min(4, (os.cpu_count() or 1) - 1))


def big_receive_buffer(sock: socket.socket, size: int) -> None:
    """Room for `size` bytes of requests waiting to be read (a burst, or a flood, must not drop
    a real client's request before the service reads it). FORCE passes the system's rmem_max
    when we may (root, as a server on a low port usually is); the memory is only used while
    requests wait."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), size)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


def raise_open_files_limit() -> int:
    """Raise the soft limit of open files to the hard one (a server holding a socket and often
    a file per client needs many); the soft limit in force after."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 16)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ValueError, OSError):
            pass
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


class ServerSocket:
    """A non-blocking UDP socket bound to `address`:`port`, with a receive buffer of
    `receive_buffer` bytes. Bound to every IPv4 address, it learns which one each datagram was
    sent to, so that replies come from that address (clients ignore other sources)."""

    def __init__(self, address: str, port: int, receive_buffer: int) -> None:
        self.family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self.sock = socket.socket(self.family, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        big_receive_buffer(self.sock, receive_buffer)
        self.sock.bind((address, port))
        self.sock.setblocking(False)
        self.pktinfo = self.family == socket.AF_INET and address in ("", "0.0.0.0")
        if self.pktinfo:
            self.sock.setsockopt(socket.IPPROTO_IP, _IP_PKTINFO, 1)
        self.address: str = self.sock.getsockname()[0]

    def receive(self, size: int = 2048) -> tuple[bytes, tuple[str, int], str | None] | None:
        """One datagram: its bytes, its sender and the local address it was sent to (None
        unless bound to every address); None if it was longer than `size`. Raises
        BlockingIOError when none waits."""
        if not self.pktinfo:
            data, addr = self.sock.recvfrom(size)
            return data, (addr[0], addr[1]), None
        local: str | None = None
        data, anc, flags, addr = self.sock.recvmsg(size, socket.CMSG_SPACE(_PKTINFO.size))
        for level, kind, value in anc:
            if level == socket.IPPROTO_IP and kind == _IP_PKTINFO:
                local = socket.inet_ntoa(_PKTINFO.unpack(value[: _PKTINFO.size])[1])
        if flags & socket.MSG_TRUNC:
            return None
        return data, (addr[0], addr[1]), local

    def send(self, packet: bytes, client: tuple[str, int], local: str | None) -> None:
        """Send to `client` from `local` when it is known; raises OSError."""
        if self.pktinfo and local:
            info = _PKTINFO.pack(0, socket.inet_aton(local), b"\0\0\0\0")
            self.sock.sendmsg([packet], [(socket.IPPROTO_IP, _IP_PKTINFO, info)], 0, client)
        else:
            self.sock.sendto(packet, client)


class UdpService(ABC):
    """The frame of a UDP service: the subclass binds `_sock` in its constructor (so `.port` is
    known at once, port 0 picking a free one), serves in `start()` until `_stopping` is set, and
    sets `_stopped` when done. `_wake()` makes its loop look at `_stopping` now; `_close()`
    releases what a service that never started holds.

    `start_thread()` serves in a daemon thread; as a context manager the service serves for the
    block. `stop()` is safe from a signal handler in the serving thread (it returns before the
    loop ends)."""

    thread_name = "udp"
    _sock: socket.socket

    def __init__(self) -> None:
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()
        self._loop_thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    def __enter__(self) -> Self:
        self.start_thread()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @abstractmethod
    def start(self) -> None:
        """Serve until `_stopping` is set, then set `_stopped` (blocking)."""

    @abstractmethod
    def _wake(self) -> None:
        """Make the serving loop look at `_stopping` now."""

    @abstractmethod
    def _close(self) -> None:
        """Release the sockets of a service that never started."""

    def start_thread(self) -> threading.Thread:
        self._stopped.clear()
        thread = threading.Thread(target=self.start, name=self.thread_name, daemon=True)
        thread.start()
        return thread

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, waiting up to `timeout` for the loop to end (unless called from it)."""
        self._stopping.set()
        self._wake()
        if self._loop_thread is None:
            self._close()
        elif self._loop_thread is not threading.current_thread():
            self._stopped.wait(timeout)
