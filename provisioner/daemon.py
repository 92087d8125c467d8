"""provisionerd: the server nodes talk to, as one supervised process tree.

The supervisor (this process) starts one child per service: `nginx` facing the nodes (it
serves the install tree and boot files itself), `http` (the Flask app under gunicorn, behind
nginx on a unix socket), `tftp` and `dns` (`provisionerd --service NAME`). It restarts a child
that dies (with back-off, killing whatever the child left behind), turns every line the
children print into a JSON log record tagged with the service, and on SIGTERM or SIGINT stops
them all (SIGTERM, then SIGKILL after a grace period) and exits. However the supervisor itself
dies, kill -9 included, the kernel signals every child (PR_SET_PDEATHSIG), and each stops its
own children: the tree never outlives it, and a new provisionerd can bind the ports at once.

Node discovery needs no process of its own: dnsmasq's lease script reports leases to the HTTP
service (`/discovery/lease`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import selectors
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from provisioner.config import Config
from provisioner.errors import ConfigError

log = logging.getLogger("provisioner.daemon")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, component, message (and extra fields)."""

    def __init__(self, component: str) -> None:
        super().__init__()
        self.component = component

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": round(record.created, 3),
            "level": record.levelname.lower(),
            "component": getattr(record, "component", self.component),
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data)


def setup_logging(component: str, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(component))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


# -- children -----------------------------------------------------------------------------------


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


def build_children(config: Config, front: HttpFront | None = None) -> list[Child]:
    """The services provisionerd supervises: gunicorn and nginx in front of it, TFTP, DNS."""
    py = sys.executable
    children = []
    if front is not None:
        children += front.children()
    children.append(Child("tftp", [py, "-m", "provisioner.daemon", "--service", "tftp"]))
    if config.dns_port:
        children.append(Child("dns", [py, "-m", "provisioner.daemon", "--service", "dns"]))
    return children


class HttpFront:
    """nginx facing the nodes and gunicorn behind it on a unix socket (provisioner/web/nginx.py).

    The supervisor owns the workers' listening socket and hands it to each gunicorn it starts
    (`fd://`), so a restarted gunicorn takes over the same socket: requests wait in its backlog
    instead of failing while the workers come back.
    """

    def __init__(self, config: Config) -> None:
        from provisioner.web import nginx

        self.config = config
        self.nginx = nginx.find_nginx(config)
        self.user = nginx.worker_user(config)
        for root in (config.install_dir, config.tftp_dir):
            root.mkdir(parents=True, exist_ok=True)
        nginx.check_roots(config, self.user)
        self.paths = nginx.front_paths(config)
        self.sock: socket.socket | None = None

    def write_config(self) -> None:
        from provisioner.web import nginx

        nginx.prepare(self.config, self.paths, self.user)

    def test_config(self) -> str | None:
        """`nginx -t` on the written configuration: None if good, else nginx's complaint."""
        done = subprocess.run(
            [*self.nginx_argv(), "-t", "-q"], capture_output=True, text=True, timeout=30
        )
        if done.returncode == 0:
            return None
        lines = [ln for ln in done.stderr.splitlines() if "[emerg]" in ln or "[alert]" in ln]
        last = (lines or done.stderr.splitlines() or ["nginx -t failed"])[-1].strip()
        # "2026/12/02 02:23:47 [emerg] 11542#11542: bind() to ... failed": the message only.
        return re.sub(r"^.*?\[(?:emerg|alert)\] \d+#\d+: ", "", last)

    def nginx_argv(self) -> list[str]:
        p = self.paths
        return [self.nginx, "-p", f"{p.run}/", "-c", str(p.conf), "-e", "stderr"]

    def ensure_socket(self) -> None:
        """The workers' socket, bound at its path; made again if the path was removed."""
        path = self.paths.socket
        if self.sock is not None:
            try:
                if os.stat(path).st_ino == os.fstat(self.sock.fileno()).st_ino:
                    return
            except FileNotFoundError:
                pass
            self.sock.close()
            self.sock = None
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                os.unlink(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(path))
        os.chown(path, -1, self.user.gid)
        os.chmod(path, 0o660)
        sock.listen(4096)
        sock.set_inheritable(True)
        self.sock = sock
        for child in self._children:
            if child.name == "http":
                child.argv = self.gunicorn_argv()
                child.pass_fds = (sock.fileno(),)

    def gunicorn_argv(self) -> list[str]:
        assert self.sock is not None
        # The work is CPU-bound (kickstarts are rendered, not read): one worker per core. More
        # only queue behind each other (bench/kickstart_storm.py: p99 9 ms with 2 workers on
        # two cores, 600 ms with 5).
        workers = self.config.http_workers or (os.cpu_count() or 1)
        return [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"fd://{self.sock.fileno()}",
            "--workers",
            str(workers),
            "--worker-class",
            "provisioner.web.worker.ProxiedWorker",
            "--backlog",
            "4096",
            "--timeout",
            str(self.config.http_worker_timeout),
            "--graceful-timeout",
            "5",
            # nginx logs every request; gunicorn logs its own errors only.
            "--error-logfile",
            "-",
            "--no-control-socket",
            "provisioner.web:behind_proxy()",
        ]

    def children(self) -> list[Child]:
        self._children = [
            # SIGQUIT: gunicorn's quick shutdown; SIGTERM: nginx's. The workers' work is short
            # and someone waits for each piece (a kickstart, a callback): ahead of bulk work
            # when the machine is busy (as root; otherwise they run at the usual priority).
            Child(
                "http",
                [],
                deathsig=signal.SIGQUIT,
                nice=self.config.http_worker_nice,
                prepare=self.ensure_socket,
            ),
            Child("nginx", self.nginx_argv(), deathsig=signal.SIGTERM),
        ]
        return self._children


class Supervisor:
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


# -- the services -------------------------------------------------------------------------------


def _wait_for_term(stop: Any) -> None:
    done = threading.Event()

    def handler(_s: int, _f: object) -> None:
        done.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    done.wait()
    stop()


def run_tftp(config: Config) -> int:
    from provisioner.db.reader import Reader
    from provisioner.pxe.bootconfig import BootConfigs
    from provisioner.pxe.tftp import TftpService, default_workers

    local = threading.local()

    def reader() -> Reader:
        r = getattr(local, "reader", None)
        if r is None:
            r = Reader.connect(config.db_url, config.database_timeout, snapshot=False)
            local.reader = r
        return r

    from provisioner.plugins import Hooks

    boot = BootConfigs(config, reader, Hooks.from_config(config))
    config.tftp_dir.mkdir(parents=True, exist_ok=True)
    service = TftpService(
        config.tftp_dir,
        config.tftp_address,
        config.tftp_port,
        dynamic=boot.tftp,
        workers=default_workers(),
    )
    log.info("tftp on %s:%d serving %s", config.tftp_address, service.port, config.tftp_dir)
    service.start_thread()
    _wait_for_term(service.stop)
    return 0


def run_dns(config: Config) -> int:
    from provisioner.dns import serve

    return serve(config)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="provisionerd",
        description="The provisioner server: HTTP (kickstarts, callbacks, API), TFTP and DNS.",
    )
    parser.add_argument("--service", choices=("tftp", "dns"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--check", action="store_true", help="check the configuration and database, then exit"
    )
    opts = parser.parse_args(argv)
    try:
        config = Config.load()
    except Exception as exc:  # noqa: BLE001 - one line, then out
        sys.stderr.write(f"provisionerd: error: {exc}\n")
        return 2
    if opts.service == "tftp":
        setup_logging("tftp")
        return run_tftp(config)
    if opts.service == "dns":
        setup_logging("dns")
        return run_dns(config)
    setup_logging("daemon")
    from provisioner.db.reader import Reader
    from provisioner.errors import ProvisionerError

    try:
        with Reader.connect(config.db_url, config.database_timeout) as reader:
            reader.generation()
        front = HttpFront(config)
        front.write_config()
        problem = front.test_config()
        if problem is not None:
            raise ConfigError(f"nginx refuses its configuration {front.paths.conf}: {problem}")
    except ProvisionerError as exc:
        sys.stderr.write(f"provisionerd: error: {exc}\n")
        return exc.exit_code if isinstance(exc, ConfigError) else 3
    if opts.check:
        print(
            f"provisionerd: configuration, database and nginx ok ({config.db_url}; "
            f"nginx configuration {front.paths.conf})"
        )
        return 0
    log.info(
        "HTTP on %s:%d through nginx (workers as %s): files from %s and %s, the rest from "
        "gunicorn on unix:%s",
        config.http_address,
        config.http_port,
        front.user.name or "this user",
        config.install_dir,
        config.tftp_dir,
        front.paths.socket,
        extra={"component": "daemon"},
    )
    return Supervisor(build_children(config, front)).run()


if __name__ == "__main__":
    sys.exit(main())
