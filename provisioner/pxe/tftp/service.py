"""The TFTP service's front (`TftpService`): the request socket, the limits below, the
`dynamic` worker, and which process drives each transfer. With `workers` > 1, helper
processes (`helpers`) run loops of their own for part of the transfers; requests, paths and
`dynamic` always stay in the service's process, and a transfer moves to a helper only after
its first ACK, so the unconfirmed ones (below) are all here.

Limits, so that a flood of requests (spoofed, or from clients that never answer) cannot deny
the service to real nodes (issue 9). A transfer is *unconfirmed* until the client's first ACK
(the client may be spoofed or dead), *confirmed* after it:

- at most `max_per_client` (8) transfers and queued requests per client address; more are
  refused with an error. A PXE client has one or two at a time (a tsize probe, then the file);
- at most `max_transfers` (1024) confirmed transfers; a request beyond them is refused with
  "server busy" (only clients that answer can hold these, at most 8 per address);
- at most `max_unconfirmed` (4096, fewer if open files are short) unconfirmed transfers; when
  full, a new request evicts the oldest one instead of being refused, so a flood churns among
  its own requests and a real node, which answers within milliseconds, always gets a slot
  (requests not yet handled are kept to the newest `max_unconfirmed` too);
- an unconfirmed transfer is resent at most once a second and dropped `unconfirmed_timeout`
  (2.5 s) after it started, whatever `timeout` the client asked for;
- the `timeout` option is accepted up to `max_timeout` (5 s; a larger one is left out of the
  OACK, as RFC 2347 allows), and a confirmed transfer that gets no new ACK for `max_stall`
  (10 s) ends at its next retransmission time, so within 15 s;
- at most `max_pending` (256) requests wait for the `dynamic` worker (every request does, when
  `dynamic` is set); when full the oldest waiting one is dropped unanswered (its client
  retransmits), so a burst never queues without bound ahead of a real node.

Each transfer holds a socket and often an open file, so the service raises its soft limit of
open files to the hard one. Per-request lines are logged at most 20 a second, and what the
limits refused, evicted and dropped is summed up once a second (see `transfer`).
"""

from __future__ import annotations

import collections
import logging
import os
import socket
import threading
from pathlib import Path

from provisioner.pxe.tftp.files import DynamicFunc, DynamicWorker, Job, Source, TftpFiles
from provisioner.pxe.tftp.helpers import Helper, least_busy, stop_helpers
from provisioner.pxe.tftp.intake import Backlog, Refusal, read_request
from provisioner.pxe.tftp.packets import (
    ERR_UNDEFINED,
    MAX_BLKSIZE,
    TftpError,
    error_packet,
    negotiate,
    oack_packet,
)
from provisioner.pxe.tftp.transfer import Transfer, TransferLoop
from provisioner.udp import ServerSocket, UdpService, default_workers, raise_open_files_limit

__all__ = ["TftpService", "default_workers"]

# Room for a burst of requests (a rack powering on at once, or a flood): each small request
# takes about 830 bytes of it, so 16 MB, which Linux doubles, holds some 40,000.
_RECEIVE_BUFFER = 16 << 20


class TftpService(UdpService):
    """A read-only TFTP server. The socket is bound in the constructor, so `.port` is known
    at once (port 0 picks a free one) and privileges can be dropped before `start()`.

    `start()` serves in the calling thread until `stop()`; `start_thread()` serves in a daemon
    thread; `stop()` drops running transfers and closes sockets, files and helpers. `timeout`
    and `retries` govern retransmission; a client's `timeout` option overrides the first up to
    `max_timeout` (a larger one is left out of the OACK).
    `max_transfers`, `max_unconfirmed`, `max_per_client`, `max_pending`, `unconfirmed_timeout`
    and `max_stall` are the limits the module docstring describes; `stats` counts what they
    refused, evicted and dropped.
    `workers` > 1 starts `workers - 1` helper processes (`provisioner.pxe.tftp.helpers`) that
    share the transfers with this one, so large files use every core: requests, paths and the
    `dynamic` callable stay here, and a helper gets the open file and the connected socket of
    a transfer once the client has acknowledged its first packet.
    """

    thread_name = "tftp"

    def __init__(
        self,
        root: Path | str,
        address: str = "0.0.0.0",
        port: int = 69,
        dynamic: DynamicFunc | None = None,
        logger: logging.Logger | None = None,
        *,
        timeout: float = 1.0,
        retries: int = 5,
        max_blksize: int = MAX_BLKSIZE,
        max_windowsize: int = 64,
        max_transfers: int = 1024,
        max_unconfirmed: int = 4096,
        max_per_client: int = 8,
        max_pending: int = 256,
        max_timeout: int = 5,
        unconfirmed_timeout: float = 2.5,
        max_stall: float = 10.0,
        workers: int = 1,
    ) -> None:
        super().__init__()
        self.files = TftpFiles(root, dynamic)
        self.log = logger or logging.getLogger("provisioner.tftp")
        self.timeout = timeout
        self.retries = retries
        self.max_blksize = max(8, min(max_blksize, MAX_BLKSIZE))
        self.max_windowsize = max(1, max_windowsize)
        self.max_transfers = max_transfers
        self.max_per_client = max(1, max_per_client)
        self.max_pending = max(1, max_pending)
        self.max_timeout = max_timeout
        self.max_stall = max_stall
        self.workers = max(1, workers)
        # Each transfer holds a socket and an open file; keep 256 descriptors for the rest.
        files = raise_open_files_limit()
        room = max(64, (files - 256) // 2 - max_transfers)
        self.max_unconfirmed = max(1, min(max_unconfirmed, room))
        if self.max_unconfirmed < max_unconfirmed:
            self.log.warning(
                "TFTP: %d open files allowed, so at most %d unconfirmed transfers (not %d)",
                files,
                self.max_unconfirmed,
                max_unconfirmed,
            )
        self._requests = ServerSocket(address, port, _RECEIVE_BUFFER)
        self._sock = self._requests.sock
        self._family = self._requests.family
        self.address = self._requests.address
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._loop = TransferLoop(
            self.log,
            retries,
            max(0.01, min(0.1, timeout / 4)),
            max_stall=max_stall,
            unconfirmed_timeout=unconfirmed_timeout,
        )
        self._loop.on_leave = self._left
        self._loop.on_confirm = self._confirmed
        self._loop.on_report = self._state
        self.stats = self._loop.stats
        # The latest transfer or request of each client (ip, port), to recognise a
        # retransmitted request; and per address, how many transfers and requests it has
        # (here, queued or in helpers), for the per-address limit.
        self._by_client: dict[tuple[str, int], Transfer | Job | Helper] = {}
        self._per_ip: dict[str, int] = {}
        # Unconfirmed transfers of this process, oldest first: the next to evict.
        self._unconfirmed: collections.OrderedDict[Transfer, None] = collections.OrderedDict()
        self._helpers: list[Helper] = []
        self._pending = 0
        self._worker = DynamicWorker(self.files, self.max_pending, self._wake, self.log)
        self._backlog = Backlog(self._requests.receive, self.stats, self.log)
        self._closed = False

    @property
    def active_transfers(self) -> int:
        return len(self._loop.transfers) + sum(h.active for h in self._helpers)

    @property
    def unconfirmed_transfers(self) -> int:
        """Transfers whose client has not acknowledged anything yet."""
        return len(self._unconfirmed)

    @property
    def confirmed_transfers(self) -> int:
        """Transfers the client has acknowledged at least once, here and in helpers."""
        return (
            len(self._loop.transfers)
            - len(self._unconfirmed)
            + sum(h.active for h in self._helpers)
        )

    @property
    def pending_requests(self) -> int:
        """Requests waiting for the `dynamic` worker or for their transfer to start."""
        return self._pending

    def requests_from(self, ip: str) -> int:
        """Transfers and requests on their way for one client address (its limit's count)."""
        return self._per_ip.get(ip, 0)

    def start(self) -> None:
        """Serve until `stop()`; blocking."""
        if self._closed or self._loop_thread is not None:
            raise RuntimeError("a TftpService is started once")
        self._loop_thread = threading.current_thread()
        self._stopped.clear()
        try:
            if self.files.dynamic is not None:
                self._worker.start()
            for _ in range(self.workers - 1):
                self._start_helper()
            self._loop.watch(self._sock.fileno(), self._on_requests)
            self._loop.watch(self._wake_r, self._on_wake)
            self.log.info(
                "TFTP serving %s on %s port %d (%d process%s)",
                self.files.root,
                self.address or "*",
                self.port,
                self.workers,
                "es" if self.workers > 1 else "",
            )
            self._loop.run(self._stopping.is_set)
        finally:
            self._worker.stop()
            self._close()
            self._stopped.set()

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._loop.close()
        stop_helpers(self._helpers)
        self._by_client.clear()
        self._per_ip.clear()
        self._unconfirmed.clear()
        self._sock.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass  # full (a wake-up is pending anyway) or closed

    def _count(self, ip: str, n: int) -> None:
        count = self._per_ip.get(ip, 0) + n
        if count > 0:
            self._per_ip[ip] = count
        else:
            self._per_ip.pop(ip, None)

    def _state(self) -> str:
        return (
            f"now {self.unconfirmed_transfers} unconfirmed, {self.confirmed_transfers} "
            f"confirmed, {self._pending} queued"
        )

    def _start_helper(self) -> None:
        level = logging.getLevelName(self.log.getEffectiveLevel())
        helper = Helper.start(self.retries, level, self.max_stall)
        self._helpers.append(helper)
        self._loop.watch(helper.ctrl.fileno(), lambda now: self._on_helper(helper))

    def _on_helper(self, helper: Helper) -> None:
        """Transfers that left a helper no longer count for their client; a helper that is
        gone takes its transfers with it."""
        left, gone = helper.finished()
        for client, counted in left:
            if self._by_client.get(client) is helper:
                del self._by_client[client]
            if counted:
                self._count(client[0], -1)
        if not gone:
            return
        if not self._stopping.is_set():
            self.log.error("TFTP helper process %d is gone", helper.proc.pid)
        self._loop.unwatch(helper.ctrl.fileno())
        self._helpers.remove(helper)
        helper.ctrl.close()
        for client in helper.remote:
            if self._by_client.get(client) is helper:
                del self._by_client[client]
        for ip, n in helper.per_ip.items():
            self._count(ip, -n)

    def _on_requests(self, now: float) -> None:
        """Read what the socket holds into the backlog, keeping the newest `max_unconfirmed`
        (`intake.Backlog`). Then handle a batch of them."""
        self._backlog.read(self.max_unconfirmed)
        self._handle_backlog(now)

    def _handle_backlog(self, now: float) -> None:
        """A batch of requests, oldest first; if some are left, come back (through the wake-up
        pipe) after the transfers' ACKs had their turn."""
        if self._backlog.handle(
            lambda data, client, local: self._on_request(data, client, local, now)
        ):
            self._wake()

    def _on_request(
        self, data: bytes, client: tuple[str, int], local: str | None, now: float
    ) -> None:
        got = read_request(data)
        if isinstance(got, Refusal):
            self._refuse(got, data, client, local)
            return
        request, path = got
        self.stats["requests"] += 1
        previous = self._by_client.get(client)
        if previous is not None:
            if isinstance(previous, Helper):
                if previous.remote.get(client) == path:
                    return  # a retransmitted request: the running transfer answers it
            elif previous.path == path:
                return
            elif isinstance(previous, Transfer):
                self._loop.end(previous, "superseded by a new request")
        if self._per_ip.get(client[0], 0) >= self.max_per_client:
            self.stats["refused"] += 1
            self.stats["client_limit"] += 1
            self._send_error(client, local, ERR_UNDEFINED, "too many requests from you")
            return
        if self.confirmed_transfers >= self.max_transfers:
            self.stats["refused"] += 1
            self.stats["busy"] += 1
            self._send_error(client, local, ERR_UNDEFINED, "server busy, try again")
            return
        job = Job(path, client, local, request)
        if self.files.dynamic is None:
            self._begin(job, now)
            return
        self._by_client[client] = job
        self._count(client[0], 1)
        self._pending += 1
        dropped = self._worker.put(job)
        if dropped is not None:
            self._pending -= 1
            self.stats["pending_dropped"] += 1
            self._count(dropped.client[0], -1)
            if self._by_client.get(dropped.client) is dropped:
                del self._by_client[dropped.client]

    def _on_wake(self, now: float) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        done = self._worker.done
        while done:
            job = done.popleft()
            self._pending -= 1
            self._count(job.client[0], -1)
            if self._by_client.get(job.client) is job:
                del self._by_client[job.client]
            if not self._stopping.is_set():
                self._begin(job, now)
        if self._backlog:
            self._handle_backlog(now)

    def _begin(self, job: Job, now: float) -> None:
        """Open what the path names, negotiate, and start the transfer (unconfirmed, here)."""
        client, local = job.client, job.local
        source: Source | None = None
        sock: socket.socket | None = None
        try:
            source = self.files.source(job)
            blksize, window, timeout, accepted = negotiate(
                job.request.options,
                source.size,
                self.timeout,
                self.max_blksize,
                self.max_windowsize,
                self.max_timeout,
            )
            self._make_room()
            sock = socket.socket(self._family, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.bind((local or self.address, 0))
            sock.connect(client)
        except TftpError as exc:
            self.stats["refused"] += 1
            self._loop.note(
                logging.INFO, "TFTP refused %s to %s: %s", job.path, client[0], exc.message
            )
            if source is not None:
                source.close()
            self._send_error(client, local, exc.code, exc.message)
            return
        except OSError as exc:
            self._loop.note(
                logging.WARNING, "TFTP cannot send %s to %s: %s", job.path, client[0], exc
            )
            if source is not None:
                source.close()
            if sock is not None:
                sock.close()
            self._send_error(client, local, ERR_UNDEFINED, "server error")
            return
        previous = self._by_client.get(client)
        if isinstance(previous, Transfer):
            # Requests for two paths from one port crossed in the dynamic queue: the newest
            # transfer wins, so one port never holds more than one here.
            self._loop.end(previous, "superseded by a new request")
        oack = oack_packet(accepted) if accepted else None
        self.log.debug(
            "TFTP offering %s (%d bytes%s) to %s:%d",
            job.path,
            source.size,
            ", computed" if job.content is not None else "",
            client[0],
            client[1],
        )
        t = Transfer(sock, client, job.path, source, blksize, window, timeout, oack, now)
        self._unconfirmed[t] = None
        self._by_client[client] = t
        self._count(client[0], 1)
        self._loop.add(t, now)

    def _make_room(self) -> None:
        """Evict the oldest unconfirmed transfers while there are `max_unconfirmed`."""
        while len(self._unconfirmed) >= self.max_unconfirmed:
            oldest, _ = self._unconfirmed.popitem(last=False)
            self.stats["evicted"] += 1
            self._loop.end(oldest, "evicted unconfirmed")

    def _confirmed(self, t: Transfer, now: float, done: bool) -> None:
        """The client's first ACK: the transfer counts as confirmed, and may move to a helper."""
        self._unconfirmed.pop(t, None)
        self._loop.note(
            logging.INFO,
            "TFTP sending %s (%d bytes) to %s:%d",
            t.path,
            t.source.size,
            t.client[0],
            t.client[1],
            answered=True,
        )
        if done:
            return
        if self.confirmed_transfers > self.max_transfers:
            self.stats["busy"] += 1
            self._loop.end(t, "server busy, try again", send_error=True)
            return
        # This process's count leaves out the transfer being placed.
        helper = least_busy(self._helpers, len(self._loop.transfers) - len(self._unconfirmed) - 1)
        if helper is not None and helper.take(t, self._loop):
            if self._by_client.get(t.client) is t:
                self._by_client[t.client] = helper
            self.stats["handed_over"] += 1

    def _left(self, t: Transfer, ok: bool) -> None:
        self._unconfirmed.pop(t, None)
        self._count(t.client[0], -1)
        if self._by_client.get(t.client) is t:
            del self._by_client[t.client]

    def _refuse(
        self, why: Refusal, data: bytes, client: tuple[str, int], local: str | None
    ) -> None:
        if why.stat is not None:
            self.stats[why.stat] += 1
        if why.error is None:
            return
        if why.logged:
            self._loop.note(
                logging.INFO,
                "TFTP refused %r from %s: %s",
                data[2:66],
                client[0],
                why.error.message,
            )
        self._send_error(client, local, why.error.code, why.error.message)

    def _send_error(self, client: tuple[str, int], local: str | None, code: int, msg: str) -> None:
        try:
            self._requests.send(error_packet(code, msg), client, local)
        except OSError:
            pass  # an error reply is best effort
