"""provisionerd: the server nodes talk to, as one supervised process tree.

The supervisor (this process, provisioner/supervisor.py) starts one child per service: `nginx`
facing the nodes (it serves the install tree and boot files itself), `http` (the Flask app
under gunicorn, behind nginx on a unix socket), `tftp` and `dns` (`provisionerd --service
NAME`). It restarts a child that dies (with back-off, killing whatever the child left behind),
turns every line the children print into a JSON log record tagged with the service, and on
SIGTERM or SIGINT stops them all (SIGTERM, then SIGKILL after a grace period) and exits.
However the supervisor itself dies, kill -9 included, the kernel signals every child
(PR_SET_PDEATHSIG), and each stops its own children: the tree never outlives it, and a new
provisionerd can bind the ports at once.

This module owns what provisionerd runs: the children (`build_children`, `HttpFront` for nginx
and gunicorn), the services' entry points (`--service tftp|dns`), the JSON log format, and
`main`.

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
import signal
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import Any

from provisioner.config import Config
from provisioner.errors import ConfigError
from provisioner.supervisor import Child, Supervisor

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

    from provisioner.hooks import Hooks

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
