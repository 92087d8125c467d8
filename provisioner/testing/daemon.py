"""provisionerd as a real process on loopback, for tests and benchmarks.

`Provisionerd(home)` runs the same program a frontend runs (nginx in front of gunicorn, TFTP,
DNS if asked) on free 127.0.0.1 ports, waits until HTTP answers through nginx, and stops the
whole process tree by PID when the `with` block ends. Its log (JSON lines) is kept in
`<home>/provisionerd.log` and parsed by `records()`.

pytest's temporary directories are private (0700), which nginx's workers could not enter as
www-data: unless the caller says otherwise, the workers run as the user running the tests
(`http_user`); tests/web/test_front.py checks the drop to www-data on a world-readable tree.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent


def free_port(kind: int = socket.SOCK_STREAM, address: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def children_of(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def group_members(pgid: int) -> list[int]:
    """Live processes of a process group (each service runs in its own)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            out.append(int(entry.name))
    return out


class Provisionerd:
    """provisionerd on loopback ports. `env` adds PROVISIONER_* settings; `dns=True` turns DNS
    on (off by default: most tests do not need it)."""

    def __init__(
        self,
        home: Path,
        *,
        env: Mapping[str, str] | None = None,
        dns: bool = False,
        workers: int = 2,
    ) -> None:
        self.home = Path(home)
        self.http_port = free_port(socket.SOCK_STREAM)
        self.tftp_port = free_port(socket.SOCK_DGRAM)
        self.dns_port = _free_dns_port() if dns else 0
        self.log_path = self.home / "provisionerd.log"
        self.env = {
            **os.environ,
            "PROVISIONER_HOME": str(self.home),
            "PROVISIONER_HTTP_ADDRESS": "127.0.0.1",
            "PROVISIONER_HTTP_PORT": str(self.http_port),
            "PROVISIONER_HTTP_WORKERS": str(workers),
            "PROVISIONER_HTTP_USER": pwd.getpwuid(os.geteuid()).pw_name,
            "PROVISIONER_TFTP_ADDRESS": "127.0.0.1",
            "PROVISIONER_TFTP_PORT": str(self.tftp_port),
            "PROVISIONER_DNS_ADDRESS": "127.0.0.1",
            "PROVISIONER_DNS_PORT": str(self.dns_port),
            "PROVISIONER_PUBLIC_URL": f"http://127.0.0.1:{self.http_port}",
        }
        self.env.pop("PROVISIONER_DATABASE_URL", None)
        self.env.update(env or {})
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout: float = 60.0, wait: bool = True) -> Provisionerd:
        self.home.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child writes it until it exits
        try:
            self.proc = subprocess.Popen(
                [str(BIN / "provisionerd")],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        if wait:
            try:
                self.wait_http(timeout)
            except BaseException:
                self.stop()
                raise
        return self

    def wait_http(self, timeout: float = 60.0) -> None:
        """Until /healthz answers 200 through nginx (so gunicorn is up behind it too)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"provisionerd exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"provisionerd HTTP not up in {timeout:g} s:\n{self.log_tail()}")
            time.sleep(0.1)

    def children(self) -> dict[str, int]:
        """PID of each service the supervisor started (the latest start of each)."""
        out: dict[str, int] = {}
        for record in self.records():
            message = str(record.get("message", ""))
            if record.get("component") == "daemon" and message.startswith("started "):
                name, _, rest = message[len("started ") :].partition(" (pid ")
                out[name] = int(rest.rstrip(")"))
        return out

    def tree(self) -> list[int]:
        """Every live process under the supervisor."""
        assert self.proc is not None
        seen: list[int] = []
        todo = [self.proc.pid]
        while todo:
            pid = todo.pop()
            for child in children_of(pid):
                if child not in seen:
                    seen.append(child)
                    todo.append(child)
        return [p for p in seen if alive(p)]

    def records(self) -> list[dict[str, Any]]:
        out = []
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []
        for line in lines:
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    out.append(record)
        return out

    def requests(self) -> list[dict[str, Any]]:
        """nginx's access log records: client, method, uri, status, bytes..."""
        return [r for r in self.records() if r.get("component") == "nginx" and "uri" in r]

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL to the whole tree; returns the supervisor's status."""
        if self.proc is None:
            return None
        tree = self.tree() if self.proc.poll() is None else []
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)
        return self.proc.returncode

    def __enter__(self) -> Provisionerd:
        return self if self.proc is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _free_dns_port() -> int:
    """A port free for both UDP and TCP."""
    for _ in range(50):
        port = free_port(socket.SOCK_DGRAM)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no port free for both UDP and TCP")
