"""TFTP: read-only TFTP (RFC 1350) with options blksize, tsize, timeout and windowsize
(RFC 2347, 2348, 2349, 7440), serving computed files first and a tftpboot root second.

Policy and transport are separate, one module each:
- `packets`: the wire (parsing requests, ERROR and OACK packets, option negotiation, netascii);
- `files`: what a path names (the path policy, the `dynamic` callable and its worker thread,
  the byte sources a transfer reads);
- `transfer`: the epoll state machine that moves blocks (`Transfer`, `TransferLoop`);
- `helpers`: helper processes, and the hand-over of a transfer's socket and file to them;
- `intake`: what comes in on the request socket before a transfer exists (the backlog of
  requests, what a request packet asks for or why it is refused);
- `service`: `TftpService`, the front: the request socket, the limits against floods, and
  which process drives each transfer;
- `client`: a strict small client for tests and benches; `python -m provisioner.pxe.tftp`
  serves a directory by hand.

Why not tftpy, as the design first said: tftpy's server handles each packet through several
layers of objects, logging calls and a select() over every socket, and in bench/tftp.py
(16 clients x 32 MB at blksize 1468) it took about 3.7 times as long as tftpd-hpa, where the
target is 1.5 times. Its interface is kept: a root plus a callable for dynamic files
(`dyn_file_func` there, `dynamic` here) and the bound port read back with `getsockname()`.
tftpy's client is one of the independent clients of the interoperability tests.

`TftpService`, `TftpError` and `default_workers` can be imported from here. They are loaded on
first use: a helper process runs `python -m provisioner.pxe.tftp.helpers`, which must not find
its own module already imported by this package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from provisioner.pxe.tftp.packets import TftpError
    from provisioner.pxe.tftp.service import TftpService, default_workers

__all__ = ["TftpError", "TftpService", "default_workers"]

_HOMES = {
    "TftpError": "provisioner.pxe.tftp.packets",
    "TftpService": "provisioner.pxe.tftp.service",
    "default_workers": "provisioner.pxe.tftp.service",
}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
