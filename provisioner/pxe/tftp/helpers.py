"""A TFTP helper process: serves the transfers `TftpService` hands over on a control socket.

Started by `TftpService(workers=N)` as
`python -m provisioner.pxe.tftp_worker FD RETRIES LEVEL MAX_STALL`. Each message on the control
socket (AF_UNIX, SOCK_SEQPACKET) is a JSON header with two file descriptors: the transfer's
socket, already bound and connected to the client, and the file to send (a regular file or a
memfd holding computed content). The parent hands a transfer over only after the client's first
ACK, so the header says where it stands (`acked`, `sent`, `last`): the blocks up to `sent` are
out, and this process goes on from the client's next ACK or the next timeout. Paths, the root,
the database and the unconfirmed transfers stay in the parent; this process only moves blocks.
It reports each transfer that leaves as `ip port` and exits when the parent closes the control
socket.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import time

from provisioner.pxe.tftp import FileSource, Transfer, TransferLoop


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
