"""What comes in on the TFTP request socket before a transfer exists: the requests read but not
handled yet (`Backlog`: read and handled in batches, only the newest kept), and what a request
packet asks for (`read_request`: a request and its clean path, or a `Refusal`).
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from dataclasses import dataclass

from provisioner.pxe.tftp.files import clean_path
from provisioner.pxe.tftp.packets import (
    ERR_ACCESS,
    ERR_ILLEGAL,
    ERROR,
    RRQ,
    WRQ,
    Request,
    TftpError,
    parse_request,
)

# Requests read from the socket per wake-up, and handled before the transfers get a turn.
_READ_BATCH = 1024
_HANDLE_BATCH = 64

Datagram = tuple[bytes, tuple[str, int], str | None]


@dataclass(frozen=True)
class Refusal:
    """Why a packet starts no transfer: the counter it adds to (if any) and the error to answer
    (none for garbage and for ERROR packets). `logged`: the refusal of a read request, which
    the service notes."""

    stat: str | None
    error: TftpError | None = None
    logged: bool = False


def read_request(data: bytes) -> tuple[Request, str] | Refusal:
    """A read request and the path it names, or why it is refused."""
    if len(data) < 2 or data[0] != 0:
        return Refusal("garbage")
    opcode = data[1]
    if opcode == ERROR:
        return Refusal(None)  # never answer an error, or two servers could ping-pong forever
    if opcode == WRQ:
        return Refusal("refused", TftpError(ERR_ACCESS, "write requests are refused"))
    if opcode != RRQ:
        return Refusal("garbage", TftpError(ERR_ILLEGAL, "illegal TFTP operation"))
    try:
        request = parse_request(data)
        if request.mode not in ("octet", "netascii"):
            raise TftpError(ERR_ILLEGAL, "unsupported mode")
        return request, clean_path(request.filename)
    except TftpError as exc:
        return Refusal("refused", exc, logged=True)


class Backlog:
    """Requests read from the socket and not handled yet, oldest first."""

    def __init__(
        self,
        receive: Callable[[], Datagram | None],
        stats: collections.Counter[str],
        log: logging.Logger,
    ) -> None:
        self.receive = receive
        self.stats = stats
        self.log = log
        self.queue: collections.deque[Datagram] = collections.deque()

    def __len__(self) -> int:
        return len(self.queue)

    def read(self, keep: int) -> None:
        """Read what the socket holds (reading is cheap), keeping the newest `keep`: older
        ones would only start transfers that the newer ones evict before a client could
        answer."""
        receive = self.receive
        queue = self.queue
        for _ in range(_READ_BATCH):
            try:
                got = receive()
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                continue
            if got is not None:
                self.stats["packets"] += 1
                queue.append(got)
        excess = len(queue) - keep
        if excess > 0:
            self.stats["overflow"] += excess
            for _ in range(excess):
                queue.popleft()

    def handle(self, handle: Callable[[bytes, tuple[str, int], str | None], None]) -> bool:
        """A batch of requests, oldest first; True if some are left."""
        queue = self.queue
        for _ in range(_HANDLE_BATCH):
            if not queue:
                return False
            data, client, local = queue.popleft()
            try:
                handle(data, client, local)
            except Exception:  # noqa: BLE001 - one bad packet must not stop the service
                self.log.exception("TFTP request from %s:%d failed", client[0], client[1])
        return bool(queue)
