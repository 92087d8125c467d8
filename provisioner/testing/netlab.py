"""A real network-boot lab for end-to-end tests: a private network namespace with a bridge and
tap devices, processes run inside it (dnsmasq, a small HTTP server, QEMU PXE clients), their
logs, and the parsing of what they report.

Nothing here knows provisioner's server code: callers hand in addresses, URLs and configuration
text. Boot assets (kernel, initrd, loaders) live in `netlab_assets`, libvirtd in
`netlab_libvirt`; docs/dev/e2e.md shows how the pieces fit.

Every process is started through `Netns.spawn` and stopped by PID when the namespace closes;
every wait is bounded. Traffic never leaves the namespace: only its bridge has addresses.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal, TypeVar

NS_PREFIX = "pvnl"
QEMU = "qemu-system-x86_64"
OVMF_CANDIDATES = ("/usr/share/ovmf/OVMF.fd", "/usr/share/OVMF/OVMF.fd")
T = TypeVar("T")


class NetlabError(RuntimeError):
    """A lab component failed to start or misbehaved; the message names its log file."""


def in_ci() -> bool:
    """$CI set to anything but empty/0/false/no: e2e tests must run, not skip."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def skip_reasons() -> list[str]:
    """Why end-to-end boots cannot run on this machine at all ([] when they can).

    Only these three are reasons to skip; a missing dnsmasq or busybox is a setup error
    that scripts/system-deps.sh fixes, so it fails loudly instead.
    """
    reasons = []
    if os.geteuid() != 0:
        reasons.append("needs root (network namespaces, bridges, tap devices)")
    if not os.path.exists("/dev/net/tun"):
        reasons.append("/dev/net/tun is missing (no tap devices)")
    if shutil.which(QEMU) is None:
        reasons.append(f"{QEMU} is not installed (Debian package qemu-system-x86)")
    return reasons


def require_tools(*names: str) -> None:
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        raise NetlabError(
            f"missing programs: {' '.join(missing)} (install them: scripts/system-deps.sh test)"
        )


def wait_until(
    predicate: Callable[[], T | None | bool],
    timeout: float,
    what: str,
    interval: float = 0.1,
    fail: Callable[[], str | None] | None = None,
) -> T:
    """Poll `predicate` until it returns something truthy (returned) or `timeout` passes.

    `fail` is polled too: a non-None string aborts early (a process died) with that message.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result  # type: ignore[return-value]
        if fail is not None:
            reason = fail()
            if reason is not None:
                raise NetlabError(f"while waiting for {what}: {reason}")
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"({path} does not exist)"
    return "\n".join(text.splitlines()[-lines:])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0) but is gone for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def kill_pids(pids: Sequence[int], grace: float) -> list[int]:
    """SIGTERM, wait up to `grace`, SIGKILL, wait again; returns PIDs that survived."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_pid_alive(p) for p in pids):
            time.sleep(0.05)
        pids = [p for p in pids if _pid_alive(p)]
        if not pids:
            break
    return list(pids)


@dataclass
class NsProcess:
    """A process started inside a namespace; `ip netns exec` execs, so `pid` is the program."""

    name: str
    argv: list[str]
    log: Path
    popen: subprocess.Popen[bytes]
    _log_file: IO[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def wait(self, timeout: float) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(
                f"{self.name} (pid {self.pid}) still running after {timeout:.0f}s; log {self.log}"
            ) from None

    def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after `grace` seconds; returns the exit status."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                try:
                    self.popen.wait(grace)
                except subprocess.TimeoutExpired:
                    pass
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return self.popen.poll()

    def died(self) -> str | None:
        """For `wait_until(fail=...)`: a message when the process has exited."""
        if self.popen.poll() is None:
            return None
        return f"{self.name} exited with {self.popen.returncode}; log {self.log}:\n{tail(self.log)}"


_live: weakref.WeakSet[Netns] = weakref.WeakSet()
_seq = itertools.count()


@atexit.register
def _close_live() -> None:
    for ns in list(_live):
        try:
            ns.close()
        except NetlabError as exc:
            print(f"netlab: {exc}", file=sys.stderr)


class Netns:
    """A named network namespace with `lo` up, a bridge holding 10.98.N.1/24 plus a ULA
    (fd98:N::1/64, so dnsmasq can send router advertisements) and tap devices in the bridge.

    Names are `pvnl-<pid>-<seq>`: concurrent runs and leftovers of crashed ones never collide
    (`cleanup_stale()` removes those). Use as a context manager or call `close()`.
    """

    def __init__(self, name: str, workdir: Path, bridge: str, subnet: int) -> None:
        self.name = name
        self.workdir = workdir
        self.bridge = bridge
        self.subnet = subnet
        self.taps: list[str] = []
        self.processes: list[NsProcess] = []
        self.closed = False

    @classmethod
    def create(
        cls, workdir: Path, *, taps: int = 2, subnet: int | None = None, bridge: str = "br0"
    ) -> Netns:
        """Create the namespace, its bridge and `taps` tap devices (tap0, tap1...).

        `workdir` receives every log. `subnet` picks N in 10.98.N.0/24 (default: a counter).
        """
        require_tools("ip")
        workdir.mkdir(parents=True, exist_ok=True)
        seq = next(_seq)
        if subnet is None:
            subnet = seq % 256
        for _ in range(100):
            name = f"{NS_PREFIX}-{os.getpid()}-{seq}"
            proc = _run(["ip", "netns", "add", name], check=False)
            if proc.returncode == 0:
                break
            if "File exists" not in proc.stderr:
                raise NetlabError(f"ip netns add {name}: {proc.stderr.strip()}")
            seq = next(_seq)
        else:
            raise NetlabError("no free namespace name")
        ns = cls(name, workdir, bridge, subnet)
        _live.add(ns)
        try:
            ns.ip("link", "set", "lo", "up")
            ns.ip("link", "add", bridge, "type", "bridge", "forward_delay", "0", "stp_state", "0")
            ns.ip("addr", "add", f"{ns.address}/24", "dev", bridge)
            ns.ip("-6", "addr", "add", f"{ns.address6}/64", "dev", bridge, "nodad")
            ns.ip("link", "set", bridge, "up")
            for _ in range(taps):
                ns.add_tap()
        except BaseException:
            ns.close()
            raise
        return ns

    def __enter__(self) -> Netns:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def address(self) -> str:
        """The bridge's IPv4 address, 10.98.N.1: where servers in the namespace listen."""
        return self.host(1)

    @property
    def prefix6(self) -> str:
        return f"fd98:{self.subnet:x}::"

    @property
    def address6(self) -> str:
        return f"{self.prefix6}1"

    @property
    def network(self) -> str:
        return f"10.98.{self.subnet}.0/24"

    def host(self, n: int) -> str:
        return f"10.98.{self.subnet}.{n}"

    def dhcp_range(self, first: int = 100, last: int = 200) -> tuple[str, str]:
        return self.host(first), self.host(last)

    def ip(self, *args: str) -> str:
        return _run(["ip", "-n", self.name, *args]).stdout

    def add_tap(self, name: str | None = None) -> str:
        """A tap device in the bridge, up, for one QEMU NIC (`-netdev tap,ifname=...`)."""
        name = name or f"tap{len(self.taps)}"
        self.ip("tuntap", "add", "dev", name, "mode", "tap")
        self.ip("link", "set", name, "master", self.bridge)
        self.ip("link", "set", name, "up")
        self.taps.append(name)
        return name

    def add_address(self, cidr: str) -> None:
        """A second address on the bridge, e.g. to serve TFTP from another IP than DHCP."""
        self.ip("addr", "add", cidr, "dev", self.bridge)

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def run(
        self, argv: Sequence[str], timeout: float = 30.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run a short command inside the namespace and capture its output."""
        return _run(self.exec_argv(argv), timeout=timeout, check=check)

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log: Path | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> NsProcess:
        """Start a long-running process inside the namespace, stdout+stderr to `log`
        (default `<workdir>/<name>.log`), `env` added to this process's environment; it is
        stopped by PID when the namespace closes."""
        if self.closed:
            raise NetlabError(f"namespace {self.name} is closed")
        log = log or self.workdir / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log_file = open(log, "ab")  # closed by NsProcess.stop
        full_env = {**os.environ, **(env or {})}
        popen = subprocess.Popen(
            self.exec_argv(argv),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd,
            start_new_session=True,  # a Ctrl-C to pytest must not reach them before teardown
        )
        proc = NsProcess(name, list(argv), log, popen, log_file)
        self.processes.append(proc)
        return proc

    def listening(self, port: int, proto: Literal["tcp", "udp"] = "tcp") -> bool:
        """Whether a socket in the namespace listens on (tcp) or is bound to (udp) `port`."""
        flag = "-Hltn" if proto == "tcp" else "-Hlun"
        return bool(self.run(["ss", flag, f"sport = :{port}"], check=False).stdout.strip())

    def wait_listening(
        self,
        port: int,
        proto: Literal["tcp", "udp"] = "tcp",
        timeout: float = 30.0,
        process: NsProcess | None = None,
    ) -> None:
        """Wait until a server in the namespace (e.g. provisionerd: tcp 80, udp 69) is up;
        `process` makes the wait fail at once if that process dies."""
        wait_until(
            lambda: self.listening(port, proto),
            timeout,
            f"{proto} port {port} in {self.name}",
            interval=0.2,
            fail=process.died if process else None,
        )

    def pids(self) -> list[int]:
        """PIDs of every process in the namespace, ours or started by ours (libvirt's QEMU)."""
        out = _run(["ip", "netns", "pids", self.name], check=False).stdout
        return [int(p) for p in out.split() if p.isdigit()]

    def close(self) -> None:
        """Stop every process in the namespace (by PID) and delete it; safe to call twice."""
        if self.closed:
            return
        self.closed = True
        for proc in reversed(self.processes):
            proc.stop()
        survivors = kill_pids(self.pids(), grace=5.0)
        _run(["ip", "netns", "del", self.name], check=False)
        _live.discard(self)
        if survivors:
            raise NetlabError(f"processes {survivors} in {self.name} survived SIGKILL")


def _run(
    argv: Sequence[str], timeout: float = 30.0, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        list(argv), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    if check and proc.returncode != 0:
        raise NetlabError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def stale_namespaces() -> list[str]:
    """Namespaces named by this module whose creating process is gone."""
    out = _run(["ip", "netns", "list"], check=False).stdout
    stale = []
    for line in out.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.fullmatch(rf"{NS_PREFIX}-(\d+)-\d+", name)
        if m and not _pid_alive(int(m.group(1))):
            stale.append(name)
    return stale


def cleanup_stale(dry_run: bool = False) -> list[str]:
    """Kill the processes left in stale lab namespaces (by PID) and delete the namespaces.

    Run by hand after a crashed run: `python -m provisioner.testing.netlab cleanup`.
    """
    names = stale_namespaces()
    for name in names if not dry_run else []:
        out = _run(["ip", "netns", "pids", name], check=False).stdout
        kill_pids([int(p) for p in out.split() if p.isdigit()], grace=5.0)
        _run(["ip", "netns", "del", name], check=False)
    return names


# --- dnsmasq -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PxeBootFiles:
    """What dnsmasq hands each kind of PXE client (None: nothing for that kind).

    BIOS clients under QEMU are iPXE already (the NIC option ROM, user class "iPXE"); they get
    `bios` unless `bios_ipxe` says otherwise. UEFI firmware PXE gets `efi64` (a loader such
    as snponly.efi); once that loader is running it asks again as iPXE and gets `efi64_ipxe`,
    usually the HTTP URL of an iPXE script.
    """

    bios: str | None = "pxelinux.0"
    efi64: str | None = "ipxe.efi"
    efi64_ipxe: str | None = None
    bios_ipxe: str | None = None


def dnsmasq_config(
    ns: Netns,
    *,
    boot: PxeBootFiles | None = None,
    tftp_server: str | None = None,
    tftp_root: Path | None = None,
    hosts: Mapping[str, str] | None = None,
    dhcp_range: tuple[str, str] | None = None,
    extra: str = "",
) -> str:
    """A DHCP-only dnsmasq configuration for the namespace bridge, with router
    advertisements (iPXE waits ~13 s for one otherwise).

    `tftp_server` is the next-server address PXE clients fetch their loader from (another
    server in the namespace, e.g. provisionerd); `tftp_root` instead turns on dnsmasq's own
    TFTP. `hosts` maps MAC -> fixed IP. Callers with their own config text skip this.
    """
    first, last = dhcp_range or ns.dhcp_range()
    lines = [
        f"interface={ns.bridge}",
        "bind-interfaces",
        f"dhcp-range={first},{last},255.255.255.0,1h",
        "enable-ra",
        f"dhcp-range={ns.prefix6},ra-only",
        "dhcp-match=set:efi64,option:client-arch,7",
        "dhcp-match=set:efi64,option:client-arch,9",
        "dhcp-userclass=set:ipxe,iPXE",
        # Mutually exclusive tags, so no dhcp-boot line depends on dnsmasq's match order.
        "tag-if=set:bios-fw,tag:!efi64,tag:!ipxe",
        "tag-if=set:bios-ipxe,tag:!efi64,tag:ipxe",
        "tag-if=set:efi64-fw,tag:efi64,tag:!ipxe",
        "tag-if=set:efi64-ipxe,tag:efi64,tag:ipxe",
    ]
    for mac, ip in (hosts or {}).items():
        lines.append(f"dhcp-host={mac},{ip}")
    boot = boot or PxeBootFiles()
    server = f",,{tftp_server}" if tftp_server else ""
    choices = (
        ("bios-fw", boot.bios),
        ("bios-ipxe", boot.bios_ipxe or boot.bios),
        ("efi64-fw", boot.efi64),
        ("efi64-ipxe", boot.efi64_ipxe),
    )
    for tag, filename in choices:
        if filename:
            # A URL is fetched by iPXE itself; a next-server would only confuse it.
            suffix = "" if "://" in filename else server
            lines.append(f"dhcp-boot=tag:{tag},{filename}{suffix}")
    if tftp_root is not None:
        lines += ["enable-tftp", f"tftp-root={tftp_root}"]
    if extra:
        lines.append(extra.strip())
    return "\n".join(lines) + "\n"


_ACK = re.compile(
    r"DHCPACK\((?P<iface>[^)]+)\) (?P<ip>[0-9.]+) (?P<mac>[0-9a-fA-F:]{17})(?: (?P<host>\S+))?"
)
_TFTP_SENT = re.compile(r"dnsmasq-tftp\[\d+\]: sent (?P<path>\S+) to (?P<client>\S+)")
_TFTP_ERROR = re.compile(r"dnsmasq-tftp\[\d+\]: (?P<message>(?:file |error |cannot ).*)")


@dataclass(frozen=True)
class DhcpAck:
    interface: str
    ip: str
    mac: str
    hostname: str | None


@dataclass(frozen=True)
class DnsmasqLog:
    """What a dnsmasq log file says, parsed (the raw text stays in `text`)."""

    text: str

    @property
    def started(self) -> bool:
        return "started, version" in self.text

    @property
    def acks(self) -> list[DhcpAck]:
        return [
            DhcpAck(m["iface"], m["ip"], m["mac"].lower(), m["host"])
            for m in _ACK.finditer(self.text)
        ]

    def acks_for(self, mac: str) -> list[DhcpAck]:
        return [a for a in self.acks if a.mac == mac.lower()]

    @property
    def tftp_sent(self) -> list[tuple[str, str]]:
        """(path, client address) of every complete TFTP transfer."""
        return [(m["path"], m["client"]) for m in _TFTP_SENT.finditer(self.text)]

    @property
    def tftp_errors(self) -> list[str]:
        return [m["message"] for m in _TFTP_ERROR.finditer(self.text)]

    def lines(self, word: str) -> list[str]:
        return [line for line in self.text.splitlines() if word in line]


def _config_keys(text: str) -> set[str]:
    keys = set()
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keys.add(line.split("=", 1)[0].strip())
    return keys


class Dnsmasq:
    """dnsmasq running the caller's configuration text inside the namespace.

    The harness adds only what keeps runs apart and observable, when the text lacks it:
    `port=0` (no DNS), `user=root`, `log-dhcp`, a lease file and a PID file under the work
    directory; it always logs to `<workdir>/<name>.log` (any log-facility line is dropped).
    """

    def __init__(self, ns: Netns, config: str, *, name: str = "dnsmasq") -> None:
        self.ns = ns
        self.name = name
        self.config_path = ns.workdir / f"{name}.conf"
        self.log_path = ns.workdir / f"{name}.log"
        self.lease_path = ns.workdir / f"{name}.leases"
        self.config = self._complete(config)
        self.process: NsProcess | None = None

    def _complete(self, text: str) -> str:
        keys = _config_keys(text)
        kept = [ln for ln in text.splitlines() if not ln.strip().startswith("log-facility")]
        added = [f"log-facility={self.log_path}"]
        defaults = {
            "port": "port=0",
            "user": "user=root",
            "log-dhcp": "log-dhcp",
            "pid-file": f"pid-file={self.ns.workdir / (self.name + '.pid')}",
        }
        added += [line for key, line in defaults.items() if key not in keys]
        if not keys & {"dhcp-leasefile", "leasefile-ro"}:
            added.append(f"dhcp-leasefile={self.lease_path}")
        return "\n".join(kept + ["# added by netlab", *added]) + "\n"

    def start(self, timeout: float = 15.0) -> Dnsmasq:
        require_tools("dnsmasq")
        self.config_path.write_text(self.config)
        self.process = self.ns.spawn(
            self.name,
            ["dnsmasq", "--keep-in-foreground", f"--conf-file={self.config_path}"],
            log=self.ns.workdir / f"{self.name}.stderr",
        )
        self.wait_for(lambda log: log.started, timeout, "dnsmasq to start")
        return self

    def log(self) -> DnsmasqLog:
        try:
            return DnsmasqLog(self.log_path.read_text(errors="replace"))
        except FileNotFoundError:
            return DnsmasqLog("")

    def wait_for(
        self, predicate: Callable[[DnsmasqLog], object], timeout: float, what: str
    ) -> DnsmasqLog:
        assert self.process is not None, "start() first"

        def check() -> DnsmasqLog | None:
            log = self.log()
            return log if predicate(log) else None

        return wait_until(check, timeout, f"{what} (log {self.log_path})", fail=self.process.died)

    def wait_ack(self, mac: str, timeout: float = 60.0) -> DhcpAck:
        log = self.wait_for(lambda lg: lg.acks_for(mac), timeout, f"DHCPACK for {mac}")
        return log.acks_for(mac)[-1]

    def reload(self) -> None:
        """SIGHUP: dnsmasq re-reads dhcp-hostsdir/hosts files and clears its cache."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGHUP)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


# --- HTTP server -------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpRequest:
    """One request the namespace HTTP server answered."""

    time: float
    client: str
    method: str
    path: str
    headers: dict[str, str]
    body: str
    status: int

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None

    def json(self) -> object:
        return json.loads(self.body)


class HttpServer:
    """A tiny HTTP server inside the namespace (netlab_http.py): serves files from `root`,
    answers every POST with 200 "ok", and records each request (headers and body included)
    as a JSON line in `<workdir>/<name>.requests.jsonl`."""

    def __init__(
        self,
        ns: Netns,
        root: Path,
        *,
        bind: str | None = None,
        port: int = 8000,
        name: str = "http",
    ) -> None:
        self.ns = ns
        self.root = root
        self.bind = bind or ns.address
        self.port = port
        self.name = name
        self.requests_path = ns.workdir / f"{name}.requests.jsonl"
        self.ready_path = ns.workdir / f"{name}.ready"
        self.process: NsProcess | None = None

    def start(self, timeout: float = 15.0) -> HttpServer:
        self.root.mkdir(parents=True, exist_ok=True)
        self.ready_path.unlink(missing_ok=True)
        script = Path(__file__).with_name("netlab_http.py")
        argv = [sys.executable, str(script), "--bind", self.bind, "--port", str(self.port)]
        argv += ["--root", str(self.root), "--log", str(self.requests_path)]
        argv += ["--ready", str(self.ready_path)]
        self.process = self.ns.spawn(self.name, argv)
        port = wait_until(
            lambda: self.ready_path.exists() and self.ready_path.read_text().strip(),
            timeout,
            f"HTTP server on {self.bind}",
            fail=self.process.died,
        )
        self.port = int(port)
        return self

    @property
    def base_url(self) -> str:
        return f"http://{self.bind}:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def requests(self) -> list[HttpRequest]:
        try:
            lines = self.requests_path.read_text().splitlines()
        except FileNotFoundError:
            return []
        return [HttpRequest(**json.loads(line)) for line in lines if line.strip()]

    def wait_request(
        self, predicate: Callable[[HttpRequest], bool], timeout: float, what: str
    ) -> HttpRequest:
        assert self.process is not None, "start() first"

        def find() -> HttpRequest | None:
            return next((r for r in self.requests() if predicate(r)), None)

        return wait_until(find, timeout, what, fail=self.process.died)


# --- QEMU --------------------------------------------------------------------------------

Firmware = Literal["bios", "uefi"]


def sercon_port_file(directory: Path) -> Path:
    """The fw_cfg file that turns SeaBIOS's serial console on at COM1: SeaBIOS reads it as a
    little-endian integer of a power-of-two size (the string "1016" would be ignored)."""
    path = directory / "sercon-port"
    if not path.exists():
        path.write_bytes((0x3F8).to_bytes(2, "little"))
    return path


def ovmf_path() -> str:
    for path in OVMF_CANDIDATES:
        if os.path.exists(path):
            return path
    raise NetlabError("OVMF.fd not found (Debian package ovmf)")


class QemuVM:
    """A QEMU (TCG) PXE client on one tap of the namespace, serial console to a file.

    BIOS: SeaBIOS + the NIC's iPXE option ROM (ipxe-qemu), with SeaBIOS's serial console on,
    so iPXE and pxelinux messages reach the serial log too. UEFI: OVMF's own PXE; the NIC
    ROM is switched off by default there, because QEMU's ROMs are iPXE EFI drivers that
    would take the boot over (lab notes §1). The Debian cloud kernel drives only virtio
    NICs, so keep `nic="virtio-net-pci"` when the boot goes on into the netlab initrd.
    """

    def __init__(
        self,
        ns: Netns,
        *,
        tap: str,
        mac: str,
        name: str = "vm0",
        firmware: Firmware = "bios",
        nic: str = "virtio-net-pci",
        romfile: str | None = None,
        memory_mib: int = 512,
        accel: str = "tcg",
        extra_args: Sequence[str] = (),
    ) -> None:
        self.ns = ns
        self.tap = tap
        self.mac = mac.lower()
        self.name = name
        self.firmware = firmware
        self.nic = nic
        self.romfile = "" if romfile is None and firmware == "uefi" else romfile
        self.memory_mib = memory_mib
        self.accel = accel
        self.extra_args = list(extra_args)
        self.serial_path = ns.workdir / f"{name}.serial.log"
        self.process: NsProcess | None = None
        self.started_at = 0.0

    def argv(self) -> list[str]:
        device = f"{self.nic},netdev=n0,mac={self.mac}"
        if self.romfile is not None:
            device += f",romfile={self.romfile}"
        argv = [QEMU, "-name", self.name, "-machine", f"pc,accel={self.accel}"]
        argv += ["-m", str(self.memory_mib), "-smp", "1", "-nodefaults", "-no-user-config"]
        argv += ["-display", "none", "-no-reboot", "-boot", "n"]
        argv += ["-serial", f"file:{self.serial_path}"]
        argv += ["-netdev", f"tap,id=n0,ifname={self.tap},script=no,downscript=no"]
        argv += ["-device", device]
        if self.firmware == "uefi":
            argv += ["-bios", ovmf_path()]
        else:
            argv += ["-fw_cfg", f"name=etc/sercon-port,file={sercon_port_file(self.ns.workdir)}"]
        return argv + self.extra_args

    def start(self) -> QemuVM:
        self.serial_path.unlink(missing_ok=True)
        self.started_at = time.monotonic()
        self.process = self.ns.spawn(self.name, self.argv())
        return self

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started_at

    def wait(self, timeout: float = 120.0) -> int:
        """Wait for QEMU to exit (the guest powered off); TimeoutError shows the serial tail."""
        assert self.process is not None, "start() first"
        try:
            return self.process.wait(timeout)
        except TimeoutError:
            raise TimeoutError(
                f"{self.name} still running after {timeout:.0f}s; serial {self.serial_path}:\n"
                f"{tail(self.serial_path)}"
            ) from None

    def serial(self) -> str:
        try:
            return self.serial_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def report(self) -> NetbootReport:
        return parse_netboot_serial(self.serial())

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


# --- what the netlab initrd reports --------------------------------------------------------

_REPORT = re.compile(r"netboot-init: (?P<stage>[a-z-]+)(?P<fields>(?: [a-z0-9_]+=\S*)*)\s*$")


@dataclass
class NetbootReport:
    """The `netboot-init:` lines the initrd's /init writes to the serial console.

    `stages` maps a stage (start, dhcp, ks, callback, poweroff, error) to its key=value
    fields; `ks_lines` are the first lines of the kickstart it fetched.
    """

    stages: dict[str, dict[str, str]] = field(default_factory=dict)
    ks_lines: list[str] = field(default_factory=list)

    def get(self, stage: str, key: str) -> str | None:
        return self.stages.get(stage, {}).get(key)


def parse_netboot_serial(text: str) -> NetbootReport:
    report = NetbootReport()
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        at = line.find("netboot-init: ")
        if at < 0:
            continue
        line = line[at:]
        if line.startswith("netboot-init: ks| "):
            report.ks_lines.append(line[len("netboot-init: ks| ") :])
            continue
        m = _REPORT.match(line)
        if m:
            fields = dict(f.split("=", 1) for f in m["fields"].split())
            report.stages.setdefault(m["stage"], {}).update(fields)
    return report


# --- boot configuration text ---------------------------------------------------------------


def pxelinux_cfg_name(mac: str) -> str:
    """pxelinux's per-MAC file name: 01-52-54-00-12-34-56 (ARP type 1, lower case)."""
    return "01-" + mac.lower().replace(":", "-")


def kernel_append(ks_url: str, callback_url: str | None = None, *, extra: str = "") -> str:
    """Kernel command line for the netlab initrd: serial console, reboot (= QEMU exit with
    -no-reboot) on panic, where to fetch the kickstart and where to report."""
    args = ["console=ttyS0", "panic=-1", f"ks={ks_url}"]
    if callback_url:
        args.append(f"callback={callback_url}")
    if extra:
        args.append(extra)
    return " ".join(args)


def pxelinux_config(kernel: str, initrd: str, append: str, *, ipappend: int = 2) -> str:
    """A pxelinux.cfg file that boots at once; IPAPPEND 2 adds BOOTIF=01-<mac>."""
    return (
        "DEFAULT netlab\nPROMPT 0\nTIMEOUT 1\nLABEL netlab\n"
        f"  KERNEL {kernel}\n  INITRD {initrd}\n  APPEND {append}\n  IPAPPEND {ipappend}\n"
    )


def ipxe_script(kernel_url: str, initrd_url: str, append: str) -> str:
    """An iPXE script booting kernel+initrd. Debian's 2019 iPXE on UEFI hands the initrd over
    as a file, so the kernel needs `initrd=<name>` on its command line."""
    initrd_name = initrd_url.rsplit("/", 1)[-1]
    return (
        "#!ipxe\n"
        f"kernel {kernel_url} initrd={initrd_name} {append} BOOTIF=01-${{net0/mac:hexhyp}}\n"
        f"initrd {initrd_url}\n"
        "boot\n"
    )


def _main(argv: Sequence[str]) -> int:
    if list(argv[:1]) in (["cleanup"], ["list"]):
        names = cleanup_stale(dry_run=argv[0] == "list")
        verb = "stale" if argv[0] == "list" else "removed"
        print("\n".join(f"{verb}: {n}" for n in names) or "no stale lab namespaces")
        return 0
    print("usage: python -m provisioner.testing.netlab cleanup|list", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
