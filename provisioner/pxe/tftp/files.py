"""What a TFTP path names, and the bytes a transfer reads from.

`TftpFiles` is the path policy: the `dynamic` callable (boot configs computed from the database
per request, never written to disk) is asked first, then a regular file under the root; any
path that would leave the root (`..`, symlink escape found by `realpath`, control characters)
is refused with a TFTP error and no data.

The `dynamic` callable runs in one worker thread of the service (`DynamicWorker`), never
concurrently with itself, so a slow database never stalls running transfers and the callable
may keep a `Reader` it opened on its first call. It gets the cleaned relative path
(`pxelinux.cfg/0A01FFFE`: leading `/` stripped, `\\` read as `/`, empty and `.` parts dropped)
and the client's `(ip, port)`, and returns the file's bytes or None to fall through to the root.

`BytesSource` (computed content) and `FileSource` (an open file) are what a transfer reads its
blocks from; the transfer loop reads their buffers directly.
"""

from __future__ import annotations

import collections
import errno
import logging
import os
import re
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from provisioner.pxe.tftp.packets import (
    ERR_ACCESS,
    ERR_NOT_FOUND,
    ERR_UNDEFINED,
    NETASCII_LIMIT,
    Request,
    TftpError,
    to_netascii,
)

DynamicFunc = Callable[[str, tuple[str, int]], "bytes | None"]

_READ_CHUNK = 64 * 1024
_CONTROL = re.compile("[\x00-\x1f\x7f]")


def clean_path(name: str) -> str:
    """The relative path a client's file name means, or TftpError(ERR_ACCESS).

    PXE clients send `/pxelinux.0` or `pxelinux.0`, Windows ones `boot\\x86\\wdsnbp.com`; all
    are relative to the root. A `..` part is refused outright rather than resolved, so no
    spelling of it can climb out.
    """
    if "\\" in name:
        name = name.replace("\\", "/")
    if _CONTROL.search(name):
        raise TftpError(ERR_ACCESS, "bad file name")
    parts = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise TftpError(ERR_ACCESS, "path leaves the TFTP root")
        parts.append(part)
    if not parts:
        raise TftpError(ERR_NOT_FOUND, "no file name")
    return "/".join(parts)


class BytesSource:
    """A file held in memory (computed content, netascii conversions). It shares
    FileSource's buffer attributes (`_buf`, `_off`, `_eof`), which the transfer loop reads
    directly: the whole content is one buffer that never needs refilling."""

    __slots__ = ("data", "size", "_buf", "_off", "_eof")

    def __init__(self, data: bytes) -> None:
        self.data = self._buf = data
        self.size = len(data)
        self._off = 0
        self._eof = True

    def read(self, offset: int, length: int) -> bytes:
        return self.data[offset : offset + length]

    def fill(self, offset: int, length: int) -> bytes:
        return self.data[offset : offset + length]

    def close(self) -> None:
        pass


class FileSource:
    """An open regular file, read ahead in chunks so most blocks cost no system call. pread
    rather than mmap: a file truncated under a transfer must not SIGBUS the server."""

    __slots__ = ("fd", "size", "_buf", "_off", "_eof")

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.size = size
        self._buf = b""
        self._off = 0
        self._eof = False

    def read(self, offset: int, length: int) -> bytes:
        rel = offset - self._off
        buf = self._buf
        if rel < 0 or (rel + length > len(buf) and not self._eof):
            return self.fill(offset, length)[:length]
        return buf[rel : rel + length]

    def fill(self, offset: int, length: int) -> bytes:
        """Read ahead from `offset`; the new buffer starts there."""
        want = max(length, _READ_CHUNK // length * length)
        buf = self._buf = os.pread(self.fd, want, offset)
        self._off = offset
        self._eof = len(buf) < want
        return buf

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


Source = BytesSource | FileSource


class TftpFiles:
    """What a requested path names: `dynamic(path, client)` first, then a regular file under
    `root`. Only regular files are served, and only if their real path is inside the root."""

    def __init__(self, root: Path | str, dynamic: DynamicFunc | None = None) -> None:
        self.root = Path(os.path.realpath(root))
        if not self.root.is_dir():
            raise NotADirectoryError(f"TFTP root {root} is not a directory")
        self.dynamic = dynamic
        self._root = str(self.root)
        self._prefix = self._root.rstrip("/") + "/"

    def computed(self, path: str, client: tuple[str, int]) -> bytes | None:
        if self.dynamic is None:
            return None
        content = self.dynamic(path, client)
        if content is None:
            return None
        if not isinstance(content, bytes | bytearray | memoryview):
            raise TypeError(f"dynamic TFTP content for {path} is {type(content).__name__}")
        return bytes(content)

    def open_file(self, path: str) -> FileSource:
        """`path` comes from `clean_path`. Raises TftpError for anything not served."""
        real = os.path.realpath(os.path.join(self._root, path))
        if not real.startswith(self._prefix):
            raise TftpError(ERR_ACCESS, "path leaves the TFTP root")
        try:
            # O_NOFOLLOW: a symlink swapped in after realpath is refused, not followed.
            # O_NONBLOCK: opening a FIFO must not hang the server.
            fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise TftpError(ERR_NOT_FOUND, "file not found") from None
        except PermissionError:
            raise TftpError(ERR_ACCESS, "permission denied") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise TftpError(ERR_ACCESS, "path leaves the TFTP root") from None
            raise TftpError(ERR_NOT_FOUND, "file not found") from None
        try:
            st = os.fstat(fd)
        except OSError:
            os.close(fd)
            raise TftpError(ERR_NOT_FOUND, "file not found") from None
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise TftpError(ERR_NOT_FOUND, "not a regular file")
        return FileSource(fd, st.st_size)

    def source(self, job: Job) -> Source:
        """What a job's transfer reads: its computed content, else the file its path names,
        converted to netascii if the request asks. Raises TftpError for anything not served
        (or the job's own error)."""
        if job.error is not None:
            raise job.error
        source: Source
        source = BytesSource(job.content) if job.content is not None else self.open_file(job.path)
        if job.request.mode != "netascii":
            return source
        try:
            if source.size > NETASCII_LIMIT:
                raise TftpError(ERR_UNDEFINED, "file too large for netascii, use octet")
            whole = source.read(0, source.size)
        finally:
            source.close()
        return BytesSource(to_netascii(whole))


@dataclass
class Job:
    """A request on its way: waiting for the dynamic worker, or for a transfer to start."""

    path: str
    client: tuple[str, int]
    local: str | None
    request: Request
    content: bytes | None = None
    error: TftpError | None = None


class DynamicWorker:
    """The thread that asks `files.computed` for each queued job in turn, sets its `content`
    (or `error`), appends it to `done` and calls `wake`. At most `max_pending` jobs wait: `put`
    drops the oldest waiting one for a new one and returns it."""

    def __init__(
        self,
        files: TftpFiles,
        max_pending: int,
        wake: Callable[[], None],
        log: logging.Logger,
    ) -> None:
        self.files = files
        self.max_pending = max_pending
        self.wake = wake
        self.log = log
        self.done: collections.deque[Job] = collections.deque()
        self._queue: collections.deque[Job] = collections.deque()
        self._cv = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tftp-dynamic", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        with self._cv:
            self._stop = True
            self._cv.notify()
        self._thread.join(5)

    def put(self, job: Job) -> Job | None:
        dropped = None
        with self._cv:
            if len(self._queue) >= self.max_pending:
                # The oldest waiting request goes, unanswered: its client retransmits, and a
                # burst never queues more than max_pending ahead of a real node's request.
                dropped = self._queue.popleft()
            self._queue.append(job)
            self._cv.notify()
        return dropped

    def _run(self) -> None:
        cv, jobs = self._cv, self._queue
        while True:
            with cv:
                while not jobs:
                    if self._stop:
                        return
                    cv.wait()
                job = jobs.popleft()
            try:
                job.content = self.files.computed(job.path, job.client)
            except Exception:  # noqa: BLE001 - a renderer bug costs one request, not the server
                self.log.exception("TFTP dynamic file %s for %s failed", job.path, job.client[0])
                job.error = TftpError(ERR_UNDEFINED, "internal error")
            self.done.append(job)
            self.wake()
