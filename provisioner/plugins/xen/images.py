"""Disk images on the container: a missing one made sparse (`ensure_disk`), and copies that
keep the holes, for `rocks move host vm` (`copy_file`).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import BinaryIO

from provisioner.plugins.xen.driver import Progress

COPY_CHUNK = 4 << 20


def ensure_disk(path: str, size_gb: int) -> None:
    """A missing image becomes a sparse file of `size_gb` * 10^9 bytes (rocks-create-vm-disks)."""
    p = Path(path)
    if p.exists():
        return
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "xb") as fh:
        fh.truncate(size_gb * 10**9)


def _copy_range(fi: BinaryIO, fo: BinaryIO, start: int, end: int, step: Progress) -> None:
    fi.seek(start)
    fo.seek(start)
    pos = start
    while pos < end:
        data = fi.read(min(COPY_CHUNK, end - pos))
        if not data:
            break
        fo.write(data)
        pos += len(data)
        step(len(data), 0)


def copy_file(src: str, dst: str, step: Progress) -> None:
    """Copy keeping holes (a 36 GB sparse image costs what it holds). `step(n, skipped)` is
    called for bytes copied and bytes of holes skipped. The copy goes to `dst.part` first,
    so an interrupted copy never looks complete."""
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    part = dst + ".part"
    try:
        with open(src, "rb") as fi, open(part, "wb") as fo:
            size = os.fstat(fi.fileno()).st_size
            pos = 0
            while pos < size:
                try:
                    data = os.lseek(fi.fileno(), pos, os.SEEK_DATA)
                except OSError as exc:
                    if exc.errno != errno.ENXIO:
                        raise
                    data = size  # only a hole remains
                hole = os.lseek(fi.fileno(), data, os.SEEK_HOLE) if data < size else size
                if data > pos:
                    step(0, data - pos)
                _copy_range(fi, fo, data, hole, step)
                pos = hole
            fo.truncate(size)
        os.replace(part, dst)
    except BaseException:
        Path(part).unlink(missing_ok=True)
        raise


def file_size(path: str) -> int:
    """Its size in bytes; 0 if it cannot be read (a copy then only shows less progress)."""
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
