"""TFTP helper processes: with `workers` > 1 the service runs `workers - 1` of them, each with
a transfer loop of its own, so large files use every core. This module has both sides of the
hand-over: `Helper` (in the service: start one, hand it a transfer) and `serve`/`main` (in the
helper process).

The service starts a helper as `python -m provisioner.pxe.tftp.helpers FD RETRIES LEVEL
MAX_STALL`. Each message on the control socket (AF_UNIX, SOCK_SEQPACKET) is a JSON header with
two file descriptors: the transfer's socket, already bound and connected to the client, and the
file to send (a regular file or a memfd holding computed content). The service hands a transfer
over only after the client's first ACK, so the header says where it stands (`acked`, `sent`,
`last`): the blocks up to `sent` are out, and the helper goes on from the client's next ACK or
the next timeout. Requests, paths, the root, the database and the unconfirmed transfers stay in
the service; a helper only moves blocks. It reports each transfer that leaves as `ip port` and
exits when the service closes the control socket.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

from provisioner.pxe.tftp.files import BytesSource, FileSource
from provisioner.pxe.tftp.transfer import Transfer, TransferLoop


@dataclass
class Helper:
    """A helper process serving transfers handed over on its control socket, as the service
    sees it: how many transfers it has, which clients, and how many per address (the
    per-address limit's count moves with the transfer)."""

    proc: subprocess.Popen[bytes]
    ctrl: socket.socket
    active: int = 0
    remote: dict[tuple[str, int], str] = field(default_factory=dict)
    per_ip: collections.Counter[str] = field(default_factory=collections.Counter)

    @classmethod
    def start(cls, retries: int, level: str, max_stall: float) -> Helper:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        argv = [
            sys.executable,
            "-m",
            "provisioner.pxe.tftp.helpers",
            str(theirs.fileno()),
            str(retries),
            level,
            str(max_stall),
        ]
        try:
            proc = subprocess.Popen(argv, pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL)
        finally:
            theirs.close()
        # Never block on a helper: a full control socket means "serve it here instead".
        ours.setblocking(False)
        return cls(proc, ours)

    def take(self, t: Transfer, loop: TransferLoop) -> bool:
        """Give this helper the connected socket, the file (computed content goes through a
        memfd) and where the transfer stands, taking it out of `loop`; False if the control
        socket is full, and the transfer stays in `loop`."""
        source = t.source
        if isinstance(source, FileSource):
            fd = source.fd
        else:
            fd = os.memfd_create("tftp", os.MFD_CLOEXEC)
            _write_all(fd, source)
        header = {
            "path": t.path,
            "client": list(t.client),
            "size": source.size,
            "blksize": t.blksize,
            "window": t.window,
            "timeout": t.timeout,
            "acked": t.acked,
            "sent": t.sent,
            "last": t.last,
        }
        loop.detach(t)
        try:
            socket.send_fds(self.ctrl, [json.dumps(header).encode()], [t.sock.fileno(), fd])
        except OSError:
            if fd != getattr(source, "fd", None):
                os.close(fd)
            loop.attach(t)
            return False
        if fd != getattr(source, "fd", None):
            os.close(fd)
        t.close()
        self.active += 1
        self.remote[t.client] = t.path
        self.per_ip[t.client[0]] += 1
        return True

    def finished(self) -> tuple[list[tuple[tuple[str, int], bool]], bool]:
        """The transfers that left this helper since the last call (it reports each as
        `ip port`), each with whether it still counted for its address; and whether the
        helper is gone (its control socket closed)."""
        left = []
        while True:
            try:
                msg = self.ctrl.recv(256)
            except BlockingIOError:
                return left, False
            except OSError:
                msg = b""
            if not msg:
                return left, True
            ip, _, port = msg.decode().rpartition(" ")
            client = (ip, int(port))
            self.active -= 1
            self.remote.pop(client, None)
            counted = self.per_ip[ip] > 0
            if counted:
                self.per_ip[ip] -= 1
            left.append((client, counted))


def least_busy(helpers: list[Helper], load: int) -> Helper | None:
    """The helper with fewer transfers than `load` (the service's own count) and than the
    others, the first on a tie; None: none has fewer, the service keeps the transfer."""
    best: Helper | None = None
    for helper in helpers:
        if helper.active < load:
            best, load = helper, helper.active
    return best


def stop_helpers(helpers: list[Helper]) -> None:
    """Close the control sockets (a helper exits on end of file) and wait for the processes."""
    for helper in helpers:
        helper.ctrl.close()
    for helper in helpers:
        try:
            helper.proc.wait(2)
        except subprocess.TimeoutExpired:
            helper.proc.kill()
            helper.proc.wait()
    helpers.clear()


def _write_all(fd: int, source: BytesSource) -> None:
    view = memoryview(source.data)
    while view:
        view = view[os.write(fd, view) :]


def serve(ctrl: socket.socket, retries: int, log: logging.Logger, max_stall: float = 10.0) -> None:
    loop = TransferLoop(log, retries, 0.05, max_stall=max_stall)
    done = False

    def on_leave(t: Transfer, ok: bool) -> None:
        try:
            ctrl.send(f"{t.client[0]} {t.client[1]}".encode())
        except OSError:
            pass

    def on_ctrl(now: float) -> None:
        nonlocal done
        while True:
            try:
                msg, fds, _, _ = socket.recv_fds(ctrl, 65536, 2)
            except BlockingIOError:
                return
            if not msg:
                for fd in fds:
                    os.close(fd)
                done = True
                return
            if len(fds) != 2:
                for fd in fds:
                    os.close(fd)
                log.error("TFTP helper: a job without its two descriptors")
                continue
            head = json.loads(msg)
            sock = socket.socket(fileno=fds[0])
            sock.setblocking(False)
            now = time.monotonic()
            t = Transfer(
                sock,
                (head["client"][0], int(head["client"][1])),
                head["path"],
                FileSource(fds[1], int(head["size"])),
                int(head["blksize"]),
                int(head["window"]),
                float(head["timeout"]),
                None,
                now,
            )
            t.acked, t.sent, t.fresh = int(head["acked"]), int(head["sent"]), False
            t.last = None if head["last"] is None else int(head["last"])
            loop.attach(t)

    ctrl.setblocking(False)
    loop.on_leave = on_leave
    loop.watch(ctrl.fileno(), on_ctrl)
    try:
        loop.run(lambda: done)
    finally:
        loop.close()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    fd, retries, level = int(args[0]), int(args[1]), args[2] if len(args) > 2 else "WARNING"
    max_stall = float(args[3]) if len(args) > 3 else 10.0
    # The parent decides when to stop (it closes the control socket, or dies): a TERM sent to
    # the whole process group must not cut running transfers before the parent has ended them.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s tftp-worker %(message)s")
    ctrl = socket.socket(fileno=fd)
    try:
        serve(ctrl, retries, logging.getLogger("provisioner.tftp"), max_stall)
    finally:
        ctrl.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
