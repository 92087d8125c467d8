"""A supervisor of child processes: it starts each `Child`, restarts one that dies (with
back-off, killing whatever the child left behind in its process group), turns every line the
children print into a JSON log record tagged with the child's name, and on SIGTERM or SIGINT
stops them all (SIGTERM, then SIGKILL after a grace period). However the supervisor itself
dies, kill -9 included, the kernel signals every child (PR_SET_PDEATHSIG).

What it supervises is provisionerd's business (provisioner/daemon.py); this module knows
nothing of the services.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

# provisionerd's logger: the supervisor's records are the daemon's.
log = logging.getLogger("provisioner.daemon")


def _deathsig_setter() -> Any:
    """A preexec function that makes the child get `sig` when the supervisor dies, however it
    dies (kill -9 included): the process tree never outlives its supervisor. It also sets the
    child's niceness (a lower one needs root; without, the child keeps the supervisor's)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def arm(sig: int, nice: int = 0) -> Any:
        def preexec() -> None:
            libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
            # The supervisor may have died between fork and prctl: then nobody will signal.
            if os.getppid() != parent:
                os._exit(1)
            if nice:
                with contextlib.suppress(OSError):
                    os.setpriority(os.PRIO_PROCESS, 0, os.getpriority(os.PRIO_PROCESS, 0) + nice)

        return preexec

    return arm


PR_SET_PDEATHSIG = 1


@dataclass
class Child:
    """One supervised service: its command, the signal it gets if the supervisor dies
    (one that makes it stop its own children quickly), descriptors it inherits, and what to
    check before each start."""

    name: str
    argv: list[str]
    deathsig: int = signal.SIGTERM
    nice: int = 0
    pass_fds: tuple[int, ...] = ()
    prepare: Callable[[], None] | None = None
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    failures: int = 0
    next_start: float = 0.0
    restarts: int = 0
    buffers: dict[int, bytes] = field(default_factory=dict)


class Supervisor:
    """Runs `children` until SIGTERM or SIGINT (`run`), as the module docstring says."""

    def __init__(self, children: list[Child], env: dict[str, str] | None = None) -> None:
        self.children = children
        self.env = env
        self.selector = selectors.DefaultSelector()
        self.stopping = threading.Event()
        self._arm = _deathsig_setter()

    def _start(self, child: Child) -> None:
        if child.prepare is not None:
            child.prepare()
        child.proc = subprocess.Popen(
            child.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env,
            # Its own process group: what it forks (nginx's and gunicorn's workers) can be
            # killed with it if it dies without taking them along.
            start_new_session=True,
            pass_fds=child.pass_fds,
            preexec_fn=self._arm(child.deathsig, child.nice),
        )
        child.started = time.monotonic()
        for stream in (child.proc.stdout, child.proc.stderr):
            assert stream is not None
            os.set_blocking(stream.fileno(), False)
            self.selector.register(stream, selectors.EVENT_READ, child)
        log.info("started %s (pid %d)", child.name, child.proc.pid, extra={"component": "daemon"})

    def _pump(self, stream: IO[bytes], child: Child) -> None:
        try:
            data = os.read(stream.fileno(), 65536)
        except BlockingIOError:
            return
        fd = stream.fileno()
        if not data:
            self.selector.unregister(stream)
            rest = child.buffers.pop(fd, b"")
            if rest:
                self._emit(child.name, rest)
            return
        buf = child.buffers.get(fd, b"") + data
        *lines, rest = buf.split(b"\n")
        child.buffers[fd] = rest
        for line in lines:
            self._emit(child.name, line)

    @staticmethod
    def _emit(component: str, line: bytes) -> None:
        # nginx writes a JSON line per request: under a storm, pass them through unparsed.
        if line.startswith(b'{"time":') and b'"component":' in line[:120]:
            sys.stderr.buffer.write(line + b"\n")
            sys.stderr.flush()
            return
        text = line.decode("utf-8", "replace").rstrip()
        if not text:
            return
        try:
            record = json.loads(text)
            if isinstance(record, dict):
                record.setdefault("component", component)
                sys.stderr.write(json.dumps(record) + "\n")
                sys.stderr.flush()
                return
        except ValueError:
            pass
        sys.stderr.write(
            json.dumps(
                {
                    "time": round(time.time(), 3),
                    "level": _level_of(text),
                    "component": component,
                    "message": text,
                }
            )
            + "\n"
        )
        sys.stderr.flush()

    def _reap(self) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.proc is not None and child.proc.poll() is not None:
                code = child.proc.returncode
                # Whatever it forked and left behind (nginx workers whose master was killed
                # hold the listening socket) goes with it.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.proc.pid, signal.SIGKILL)
                ran = now - child.started
                child.failures = 0 if ran > 30 else child.failures + 1
                delay = min(30.0, 0.5 * 2**child.failures)
                child.next_start = now + delay
                child.restarts += 1
                log.error(
                    "%s exited with status %s after %.1f s; restarting in %.1f s",
                    child.name,
                    code,
                    ran,
                    delay,
                    extra={"component": "daemon"},
                )
                child.proc = None
            if child.proc is None and now >= child.next_start and not self.stopping.is_set():
                try:
                    self._start(child)
                except Exception as exc:  # noqa: BLE001 - one service must not stop the rest
                    child.failures += 1
                    child.next_start = now + min(30.0, 0.5 * 2**child.failures)
                    log.error("cannot start %s: %s", child.name, exc, extra={"component": "daemon"})

    def run(self) -> int:
        def stop(signum: int, _frame: object) -> None:
            log.info("signal %d: stopping", signum, extra={"component": "daemon"})
            self.stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        for child in self.children:
            self._start(child)
        while not self.stopping.is_set():
            for key, _ in self.selector.select(timeout=0.2):
                self._pump(key.fileobj, key.data)  # type: ignore[arg-type]
            self._reap()
        self.shutdown()
        return 0

    def shutdown(self, grace: float = 10.0) -> None:
        for child in self.children:
            if child.proc is not None and child.proc.poll() is None:
                # Every service stops on SIGTERM (gunicorn gracefully, nginx at once).
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in self.children:
            if child.proc is None:
                continue
            try:
                child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning(
                    "%s did not stop; killing it", child.name, extra={"component": "daemon"}
                )
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.proc.pid, signal.SIGKILL)
            child.proc.wait()
        # Whatever the children still had to say.
        for key in list(self.selector.get_map().values()):
            self._pump(key.fileobj, key.data)  # type: ignore[arg-type]
        log.info("stopped", extra={"component": "daemon"})


def _level_of(text: str) -> str:
    """The level of a plain line a child printed (gunicorn's `[CRITICAL]`, nginx's `[emerg]`,
    a Python traceback), so errors are not logged as info."""
    head = text[:80]
    for marker, level in (
        ("[CRITICAL]", "critical"),
        ("[emerg]", "critical"),
        ("[alert]", "critical"),
        ("[crit]", "critical"),
        ("[ERROR]", "error"),
        ("[error]", "error"),
        ("Traceback", "error"),
        ("[WARNING]", "warning"),
        ("[warn]", "warning"),
    ):
        if marker in head:
            return level
    return "info"
