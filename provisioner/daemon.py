"""provisionerd: the server nodes talk to, as one supervised process tree.

The supervisor (this process) starts one child per service: `http` (the Flask app under
gunicorn), `tftp` and `dns` (`provisionerd --service NAME`). It restarts a child that dies (with
back-off), turns every line the children print into a JSON log record tagged with the service,
and on SIGTERM or SIGINT stops them all (SIGTERM, then SIGKILL after a grace period) and exits.

Node discovery needs no process of its own: dnsmasq's lease script reports leases to the HTTP
service (`/discovery/lease`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from provisioner.config import Config

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


def service_commands(config: Config) -> dict[str, list[str]]:
    """The command line of each child service."""
    py = sys.executable
    # The work is CPU-bound (kickstarts are rendered, not read): one worker per core. More
    # only queue behind each other (bench/kickstart_storm.py: p99 9 ms with 2 workers on two
    # cores, 600 ms with 5).
    workers = config.http_workers or (os.cpu_count() or 1)
    bind = f"[{config.http_address}]" if ":" in config.http_address else config.http_address
    commands = {
        "http": [
            py,
            "-m",
            "gunicorn",
            "--bind",
            f"{bind}:{config.http_port}",
            "--workers",
            str(workers),
            "--worker-class",
            "sync",
            "--backlog",
            "4096",
            "--keep-alive",
            "2",
            "--graceful-timeout",
            "5",
            "--access-logfile",
            "-",
            "--access-logformat",
            '%(h)s "%(r)s" %(s)s %(B)s %(M)sms',
            "provisioner.web:create_app()",
        ],
        "tftp": [py, "-m", "provisioner.daemon", "--service", "tftp"],
    }
    if config.dns_port:
        commands["dns"] = [py, "-m", "provisioner.daemon", "--service", "dns"]
    return commands


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    failures: int = 0
    next_start: float = 0.0
    buffers: dict[int, bytes] = field(default_factory=dict)


class Supervisor:
    def __init__(self, commands: dict[str, list[str]], env: dict[str, str] | None = None) -> None:
        self.children = [Child(name, argv) for name, argv in commands.items()]
        self.env = env
        self.selector = selectors.DefaultSelector()
        self.stopping = threading.Event()

    def _start(self, child: Child) -> None:
        child.proc = subprocess.Popen(
            child.argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env,
            start_new_session=True,
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
        text = line.decode("utf-8", "replace").rstrip()
        if not text:
            return
        try:
            record = json.loads(text)
            if isinstance(record, dict):
                record.setdefault("component", component)
                sys.stderr.write(json.dumps(record) + "\n")
                return
        except ValueError:
            pass
        sys.stderr.write(
            json.dumps(
                {
                    "time": round(time.time(), 3),
                    "level": "info",
                    "component": component,
                    "message": text,
                }
            )
            + "\n"
        )

    def _reap(self) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.proc is not None and child.proc.poll() is not None:
                code = child.proc.returncode
                ran = now - child.started
                child.failures = 0 if ran > 30 else child.failures + 1
                delay = min(30.0, 0.5 * 2**child.failures)
                child.next_start = now + delay
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
                self._start(child)

    def run(self) -> int:
        def stop(signum: int, _frame: object) -> None:
            log.info("signal %d: stopping", signum, extra={"component": "daemon"})
            self.stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
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
                os.killpg(child.proc.pid, signal.SIGKILL)
                child.proc.wait()
        # Whatever the children still had to say.
        for key in list(self.selector.get_map().values()):
            self._pump(key.fileobj, key.data)  # type: ignore[arg-type]
        log.info("stopped", extra={"component": "daemon"})


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
    except ProvisionerError as exc:
        sys.stderr.write(f"provisionerd: error: {exc}\n")
        return 3
    if opts.check:
        print(f"provisionerd: configuration and database ok ({config.db_url})")
        return 0
    return Supervisor(service_commands(config)).run()


if __name__ == "__main__":
    sys.exit(main())
