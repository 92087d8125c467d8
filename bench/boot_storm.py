"""Boot storm (issue 9): "the benchmark that says it holds". A cluster's nodes all network-boot
at once against provisionerd as it runs in production (nginx in front of gunicorn, our TFTP), and
in the same run against its peer and limit, nginx alone serving the same files statically with
tftpd-hpa, and against the code before nginx (9ecd48c: gunicorn on the HTTP port, Flask sending
the files). Everything runs on loopback; every client speaks from its own 127.x address.

1. Full storm: N nodes (default 200, a quarter of them at <= 2 MB/s), each doing a node's
   sequence: TFTP lpxelinux.0 (the real one from /usr/lib/PXELINUX) and its computed
   pxelinux.cfg/01-<mac>, then over HTTP the kernel (10 MB), the initrd (60 MB), its own
   kickstart and the install image (100 MB). Every download's size and content is checked. A
   probe asks for other hosts' kickstarts at 20/s throughout. MB = 2^20 bytes.
2. The same clients against nginx alone (a plain config of ours, the kickstart as a static file)
   and tftpd-hpa (`in.tftpd -L -s root -a 127.0.0.1:port`): the peer and the limit.
3. Kickstarts closed loop from 1,000 source addresses, each host asking for its own, through
   provisionerd's nginx; beside it nginx serving the same 30 KB as a static file to the same
   client, and wrk's keep-alive figure from one address for reference.
4. The storm against the code before nginx, bounded in time (what completed at the deadline).
5. 1,000 slowloris connections (a partial request, then a byte every few seconds) held while
   kickstarts are asked, against provisionerd and against the code before.

Tools, and why:
- curl for every node transfer: a real client for both protocols (`tftp://` URLs, HTTP), it binds
  the source address (`--interface`, TFTP included), rate-limits (`--limit-rate 2M`), notices a
  response shorter than its Content-Length (exit 18), and `-w` reports code, size and time. One
  process per transfer is nothing beside a transfer of megabytes. The big files go from curl's
  stdout through a pipe into `xxhsum -H3` (Debian package `xxhash`): XXH3 hashes several GB/s
  (the run prints its speed beside zlib.crc32's), so checking content costs little more than the
  pipe; the small files (loader, config, kickstart) are read back and checked with zlib.crc32.
- ksload (bench/ksload.c, compiled with gcc into ~/.cache/provisioner-bench on first use) for
  the kickstart loads and probes: epoll, a new connection per request bound to the next source
  address, HTTP/1.0. wrk cannot choose source addresses; the Python selector client
  (bench/kickstart_storm.py) costs about 1.5x ksload's CPU per request (170 against 110 us,
  most of ksload's being the kernel's TCP work) and measured 15% fewer kickstarts per second
  on two cores: its row is shown beside ksload's, with its CPU.
- wrk (`-t2 -c64`, keep-alive, one address) for nginx static's figure as others quote it.
- The slowloris connections come from a Python selector loop: a byte every few seconds on
  1,000 sockets costs nothing.

The clients' CPU: real nodes bring their own CPUs; here 200 curls and their hashers share two
cores with the servers, and when they take both, everything waits for a core, the limit as much
as us. `--client-cpus 1.2` holds the bulk downloads (curl, xxhsum; a cgroup, v1 cpu controller)
to 1.2 cores, the way a real storm's nodes do not eat the server's CPU; the timed fetches
(loader, config, kickstart, probe) are not held. `--client-nice 19` runs the bulk downloads at
nice 19 instead, which did not help: a niced process still gets its turn. Without either, the
kickstart p99 during the storm was 0.2-0.5 s for nginx alone sending a static file and for us;
with `--client-cpus 1.2`, 40-80 ms for both (docs/benchmarks.md). nginx's own $request_time
(from reading the request to the last byte) shows where the wait is; it is printed for both.

CPU: per process group from /proc (nginx, gunicorn, TFTP, the supervisor; clients through
their rusage), and the machine's busy time from /proc/stat, so "others" is what neighbours on
a shared machine used meanwhile. Misses are reported, never an exit status: the script exits
non-zero only when it cannot run (a missing tool, a server that does not start).

    .venv/bin/python bench/boot_storm.py [--nodes 200] [--quick] [--skip-before] [--rounds 1]
                                         [--client-nice 0] [--client-cpus 0] [--before-seconds 180]
                                         [--ks-seconds 10]

Needs (Debian): nginx, curl, wrk, xxhash, tftpd-hpa, pxelinux, gcc, git.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import faulthandler
import hashlib
import json
import os
import re
import resource
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request
import warnings
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from netutil import (  # noqa: E402
    CLK_TCK,
    cpu_seconds,
    free_port,
    load,
    machine,
    median,
    process,
    stamp,
    stop,
    wait_udp,
)

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
BEFORE = "9ecd48c"
MB = 1 << 20
LOADER = Path("/usr/lib/PXELINUX/lpxelinux.0")
KICKSTART = "/install/sbin/kickstart.cgi"
TFTP_BLKSIZE = "1456"  # what PXE ROMs ask for
P99_TARGET_MS = 100.0
THROUGHPUT_TARGET = 0.9
DYNAMIC_TARGET = 5000.0
TOOLS = {
    "nginx": "nginx",
    "curl": "curl",
    "wrk": "wrk",
    "xxhsum": "xxhash",
    "in.tftpd": "tftpd-hpa",
    "gcc": "gcc",
    "git": "git",
}


def host_ip(i: int) -> str:
    return f"127.1.{i // 250}.{i % 250 + 1}"


def host_mac(i: int) -> str:
    return f"02:00:00:01:{i // 256:02x}:{i % 256:02x}"


def host_name(i: int) -> str:
    return f"compute-{i // 250}-{i % 250}"


def slow_ip(i: int) -> str:
    return f"127.3.{i // 250}.{i % 250 + 1}"


@dataclasses.dataclass(frozen=True)
class Plan:
    nodes: int
    hosts: int
    sizes: dict[str, int]  # file name -> bytes
    slow_every: int  # every slow_every-th node is rate-limited
    slow_rate: str
    probe_rate: float
    storm_seconds: float
    before_seconds: float
    ks_seconds: float
    python_count: int
    slowloris: int
    slowloris_seconds: float
    quick: bool
    rounds: int = 1
    client_nice: int = 0
    client_cgroup: str | None = None  # a cgroup (v1 cpu) the bulk downloads run in


# -- CPU -----------------------------------------------------------------------------------------


def own_cpu(pid: int) -> float:
    """User + system time of one process alone (its children are counted where they are)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy() -> tuple[float, float]:
    """CPU seconds the whole machine spent busy since boot (all cores), and of those in
    interrupts and softirqs (loopback's packet processing, which no nice value governs)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK, (irq + softirq) / CLK_TCK


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


class CpuMeter:
    """CPU used between start() and stop(): each server part, this process's reaped children
    (the clients), this process, and the rest of the machine."""

    def __init__(self, parts: Callable[[], dict[str, float]]) -> None:
        self.parts = parts
        self.result: dict[str, float] = {}

    def start(self) -> CpuMeter:
        self._t = time.perf_counter()
        self._parts = self.parts()
        self._children = children_cpu()
        self._self = time.process_time()
        self._busy, self._irq = machine_busy()
        return self

    def stop(self, extra_client: float = 0.0) -> dict[str, float]:
        parts = self.parts()
        out = {k: max(0.0, v - self._parts.get(k, 0.0)) for k, v in parts.items()}
        server = sum(out.values())
        client = children_cpu() - self._children + time.process_time() - self._self + extra_client
        busy, irq = machine_busy()
        busy -= self._busy
        out["irq"] = irq - self._irq
        out["server"] = server
        out["client"] = client
        out["others"] = max(0.0, busy - server - client)
        out["wall"] = time.perf_counter() - self._t
        self.result = out
        return out


# -- servers -------------------------------------------------------------------------------------


@dataclasses.dataclass
class Target:
    """One server under test: where it listens, what its parts' CPU is, what it should send."""

    key: str
    label: str
    http_port: int
    tftp_port: int
    cpu_parts: Callable[[], dict[str, float]]
    expected: dict[tuple[int, str], tuple[int, str]] = dataclasses.field(default_factory=dict)
    # The kickstarts' times as the server's nginx logged them ($request_time: from reading the
    # request to the last byte sent), finished between two wall-clock times; None if unknown.
    logged: Callable[[float, float], list[float]] | None = None


def provisionerd_parts(server: object) -> Callable[[], dict[str, float]]:
    # Read once: parsing the log (a line per request) on every reading would cost seconds.
    kids = server.children()  # type: ignore[attr-defined]

    def parts() -> dict[str, float]:
        out = {name: cpu_seconds(pid) for name, pid in kids.items()}
        out["supervisor"] = own_cpu(server.proc.pid)  # type: ignore[attr-defined]
        return out

    return parts


def rocks(env: dict[str, str], *argv: str, stdin: str | None = None) -> None:
    subprocess.run(
        [str(BIN / "rocks"), *argv],
        env=env,
        input=stdin,
        text=True,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def make_home(home: Path, hosts: int, data: Path, extra_env: dict[str, str]) -> None:
    """A frontend with `hosts` compute nodes set to install, and the boot and install files
    (hard links to the one random copy, so every server reads the same pages)."""
    env = {**os.environ, "PROVISIONER_HOME": str(home), **extra_env}
    env.pop("PROVISIONER_DATABASE_URL", None)
    home.mkdir(parents=True)
    rocks(
        env,
        "init",
        "frontend",
        "Kickstart_PrivateHostname=fe",
        "Kickstart_PrivateAddress=127.0.0.1",
        "Kickstart_PrivateNetwork=127.0.0.0",
        "Kickstart_PrivateNetmask=255.0.0.0",
        "Kickstart_PublicAddress=192.0.2.10",
    )
    lines = []
    for i in range(hosts):
        lines.append(f"add host {host_name(i)}")
        lines.append(f"add host interface {host_name(i)} eth0 {host_mac(i)} ip={host_ip(i)}")
    lines.append("set host boot compute action=install")
    rocks(env, "batch", stdin="\n".join(lines) + "\n")
    link_files(home / "tftpboot", home / "install", data)


def link_files(tftp: Path, install: Path, data: Path) -> None:
    (install / "images").mkdir(parents=True, exist_ok=True)
    tftp.mkdir(parents=True, exist_ok=True)
    for name in ("vmlinuz", "initrd.img", "lpxelinux.0"):
        os.link(data / name, tftp / name)
    os.link(data / "install.img", install / "images" / "install.img")


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing answers {url}") from None
            time.sleep(0.1)


PEER_CONF = """\
{user}
worker_processes auto;
worker_rlimit_nofile 20000;
pid {root}/nginx.pid;
error_log stderr warn;
daemon off;

events {{
    worker_connections 9936;
    multi_accept on;
}}

http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    log_format timed '$msec $request_time $status $uri';
    access_log {root}/access.log timed buffer=64k flush=1s;
    client_body_temp_path {root}/tmp/body;
    proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    scgi_temp_path {root}/tmp/scgi;
    sendfile on;
    sendfile_max_chunk 2m;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 15s;
    client_header_timeout 10s;

    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = {kickstart} {{
            default_type text/plain;
            alias {root}/kickstart.ks;
        }}
        location /install/ {{
            alias {root}/install/;
        }}
        location /boot/files/ {{
            alias {root}/tftpboot/;
        }}
    }}
}}
"""


@contextlib.contextmanager
def peer(root: Path, data: Path, kickstart: bytes, configs: dict[int, bytes]) -> Iterator[Target]:
    """nginx alone with a plain config of ours and tftpd-hpa, serving static copies."""
    link_files(root / "tftpboot", root / "install", data)
    (root / "tmp").mkdir()
    (root / "kickstart.ks").write_bytes(kickstart)
    cfg = root / "tftpboot" / "pxelinux.cfg"
    cfg.mkdir()
    for i, text in configs.items():
        (cfg / ("01-" + host_mac(i).replace(":", "-"))).write_bytes(text)
    http_port = free_port("127.0.0.1", socket.SOCK_STREAM)
    tftp_port = free_port()
    user = "user root;" if os.geteuid() == 0 else ""
    conf = root / "nginx.conf"
    conf.write_text(PEER_CONF.format(user=user, root=root, port=http_port, kickstart=KICKSTART))
    nginx = ["nginx", "-p", f"{root}/", "-c", str(conf), "-e", "stderr"]
    tftpd = ["/usr/sbin/in.tftpd", "-L", "-s", str(root / "tftpboot")]
    tftpd += ["-a", f"127.0.0.1:{tftp_port}"]
    with (
        process(nginx, stderr=subprocess.DEVNULL) as web,
        process(tftpd, stdout=subprocess.DEVNULL) as tftp,
    ):
        wait_http(f"http://127.0.0.1:{http_port}/boot/files/vmlinuz")
        wait_udp("127.0.0.1", tftp_port, b"\x00\x01no-such-file\x00octet\x00")

        def parts() -> dict[str, float]:
            # tftpd-hpa reaps its per-transfer children unaccounted: only its own time shows.
            return {"nginx": cpu_seconds(web.pid), "tftp": cpu_seconds(tftp.pid)}

        def logged(start: float, end: float) -> list[float]:
            out = []
            for line in (root / "access.log").read_text().splitlines():
                when, seconds, _status, uri = line.split(" ", 3)
                if uri == KICKSTART and start <= float(when) <= end:
                    out.append(float(seconds))
            return out

        yield Target(
            "peer", "nginx alone + tftpd-hpa (static)", http_port, tftp_port, parts, {}, logged
        )


@contextlib.contextmanager
def before_worktree() -> Iterator[Path]:
    """The code before nginx, checked out beside the repository, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="pv-before-"))
    path.rmdir()
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(path), BEFORE],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    try:
        yield path
    finally:
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "remove", "--force", str(path)],
            check=False,
            stdout=subprocess.DEVNULL,
        )
        subprocess.run(["git", "-C", str(REPO), "worktree", "prune"], check=False)
        shutil.rmtree(path, ignore_errors=True)


def check_before_code(tree: Path) -> str:
    """Proof that PYTHONPATH=tree makes Python import the old package (no nginx module)."""
    probe = (
        "import importlib.util, provisioner.daemon as d;"
        "print(d.__file__, importlib.util.find_spec('provisioner.web.nginx') is None,"
        " hasattr(d, 'service_commands'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "PYTHONPATH": str(tree)},
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if not out[0].startswith(str(tree)) or out[1:] != ["True", "True"]:
        raise RuntimeError(f"PYTHONPATH={tree} does not give the old code: {out}")
    return out[0]


# -- the node's sequence -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Step:
    name: str
    proto: str
    path: str  # for the config: filled per node
    big: bool = False


STEPS = (
    Step("loader", "tftp", "lpxelinux.0"),
    Step("config", "tftp", "pxelinux.cfg/01-{mac}"),
    Step("kernel", "http", "/boot/files/vmlinuz", big=True),
    Step("initrd", "http", "/boot/files/initrd.img", big=True),
    Step("kickstart", "http", KICKSTART),
    Step("image", "http", "/install/images/install.img", big=True),
)


@dataclasses.dataclass
class Transfer:
    node: int
    step: str
    verdict: str  # ok, truncated, corrupt, error, unfinished, not started
    code: int = 0
    size: int = 0
    seconds: float = 0.0
    detail: str = ""


@dataclasses.dataclass
class NodeRun:
    node: int
    slow: bool
    transfers: list[Transfer]
    end: float = 0.0  # seconds after the storm started; 0 if not finished


W_FORMAT = "%{stderr}@@ %{http_code} %{size_download} %{time_total}\\n"


async def fetch(
    target: Target,
    i: int,
    step: Step,
    deadline: float,
    slow_rate: str | None,
    bulk: tuple[str, ...] = (),
) -> tuple[Transfer, bytes | str]:
    """One transfer by curl from node i's address; returns it (unjudged) and the body (small
    files) or its XXH3 (big ones). A big one's curl and hasher run behind `bulk` (nice, and
    the cgroup that holds the bulk downloads, when asked for)."""
    remaining = deadline - time.monotonic()
    if remaining < 1:
        return Transfer(i, step.name, "not started"), b""
    path = step.path.format(mac=host_mac(i).replace(":", "-"))
    argv = ["curl", "-sS", "--interface", host_ip(i), "--max-time", f"{remaining:.1f}"]
    if step.proto == "tftp":
        argv += ["--tftp-blksize", TFTP_BLKSIZE, f"tftp://127.0.0.1:{target.tftp_port}/{path}"]
    else:
        argv += [f"http://127.0.0.1:{target.http_port}{path}"]
        if slow_rate and step.big:
            argv += ["--limit-rate", slow_rate]
    argv += ["-o", "-", "-w", W_FORMAT]
    procs: list[asyncio.subprocess.Process] = []
    try:
        if step.big:
            niced = list(bulk)
            r, w = os.pipe()
            try:
                hasher = await asyncio.create_subprocess_exec(
                    *niced, "xxhsum", "-H3", "-", stdin=r, stdout=asyncio.subprocess.PIPE
                )
                procs.append(hasher)
                curl = await asyncio.create_subprocess_exec(
                    *niced, *argv, stdout=w, stderr=asyncio.subprocess.PIPE
                )
                procs.append(curl)
            finally:
                os.close(r)
                os.close(w)
            err = await curl.stderr.read()  # type: ignore[union-attr]
            await curl.wait()
            digest = (await hasher.stdout.read()).decode().split()  # type: ignore[union-attr]
            await hasher.wait()
            payload: bytes | str = digest[-1] if digest else ""
        else:
            curl = await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
            procs.append(curl)
            payload, err = await curl.communicate()
    finally:
        for p in procs:
            if p.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(p.wait(), 5)
    code, size, seconds = 0, 0, 0.0
    detail = []
    for line in err.decode(errors="replace").splitlines():
        if line.startswith("@@ "):
            f = line.split()
            code, size, seconds = int(f[1]), int(f[2]), float(f[3])
        elif line.strip():
            detail.append(line.strip())
    rc = curl.returncode or 0
    if rc == 28 and time.monotonic() >= deadline - 1.5:
        verdict = "unfinished"
    else:
        verdict = f"rc={rc}"
    return Transfer(i, step.name, verdict, code, size, seconds, "; ".join(detail)), payload


def checksum(payload: bytes | str) -> str:
    return payload if isinstance(payload, str) else f"{zlib.crc32(payload):08x}"


def judge(t: Transfer, payload: bytes | str, want: tuple[int, str]) -> Transfer:
    if t.verdict in ("unfinished", "not started"):
        return t
    rc = int(t.verdict[3:])
    size, digest = want
    http_ok = t.code in (0, 200) if t.step in ("loader", "config") else t.code == 200
    if not http_ok or (t.size == 0 and rc != 0):
        t.verdict = "error"
    elif t.size < size:
        t.verdict = "truncated"
    elif t.size > size or checksum(payload) != digest:
        t.verdict = "corrupt"
    else:
        t.verdict = "ok" if rc == 0 else "error"
    if t.verdict != "ok" and not t.detail:
        t.detail = f"curl exit {rc}, code {t.code}, {t.size} bytes"
    return t


async def run_node(
    target: Target, i: int, slow: str | None, t0: float, deadline: float, bulk: tuple[str, ...]
) -> NodeRun:
    run = NodeRun(i, slow is not None, [])
    for step in STEPS:
        t, payload = await fetch(target, i, step, deadline, slow, bulk)
        run.transfers.append(judge(t, payload, target.expected[(i, step.name)]))
    if all(t.verdict not in ("unfinished", "not started") for t in run.transfers):
        run.end = time.monotonic() - t0
    return run


def use_pidfd_watcher() -> None:
    # Python 3.11 waits for each child in a thread of its own; a pidfd per child is lighter
    # with hundreds of curls. 3.12 does this by itself.
    if sys.version_info < (3, 12) and hasattr(asyncio, "PidfdChildWatcher"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            asyncio.set_child_watcher(asyncio.PidfdChildWatcher())


async def learn(target: Target, plan: Plan, files: dict[str, tuple[int, str]]) -> dict[int, bytes]:
    """What each node should receive from this server: the files' own sizes and hashes, and for
    the computed ones (config, kickstart) what the server answers when quiet. Returns the
    configs (the peer serves them as files)."""
    configs: dict[int, bytes] = {}
    sem = asyncio.Semaphore(8)
    far = time.monotonic() + 120

    async def one(i: int) -> None:
        async with sem:
            for step in STEPS:
                if step.big or step.name == "loader":
                    name = Path(step.path).name
                    target.expected[(i, step.name)] = files[name]
                    continue
                t, body = await fetch(target, i, step, far, None)
                assert isinstance(body, bytes)
                if t.verdict != "rc=0" or (step.proto == "http" and t.code != 200):
                    raise RuntimeError(f"{target.label}: {step.name} of node {i}: {t}")
                if step.name == "config":
                    configs[i] = body
                    if b"vmlinuz" not in body or b"initrd.img" not in body:
                        raise RuntimeError(f"node {i}'s boot config does not install:\n{body!r}")
                elif host_name(i).encode() not in body:
                    raise RuntimeError(f"node {i}'s kickstart does not name it")
                target.expected[(i, step.name)] = (len(body), checksum(body))

    failed = [e for e in await asyncio.gather(*(one(i) for i in range(plan.nodes)),
                                              return_exceptions=True) if e]  # fmt: skip
    if failed:
        raise RuntimeError(f"{len(failed)} nodes could not be read: {failed[0]}")
    return configs


@dataclasses.dataclass
class StormResult:
    target: Target
    runs: list[NodeRun]
    seconds: float
    probe: dict[str, object]
    cpu: dict[str, float]
    deadline_hit: bool
    probe_requests: list[tuple[float, float, int]]
    logged: list[float] | None = None
    round: int = 1


async def storm_async(target: Target, plan: Plan, seconds: float) -> tuple[list[NodeRun], float]:
    t0 = time.monotonic()
    deadline = t0 + seconds
    bulk: tuple[str, ...] = ()
    if plan.client_cgroup:
        # The shell moves itself into the cgroup, then becomes the command.
        bulk += ("sh", "-c", 'echo $$ > "$0" && exec "$@"', f"{plan.client_cgroup}/tasks")
    if plan.client_nice:
        bulk += ("nice", "-n", str(plan.client_nice))
    jobs = [
        run_node(target, i, plan.slow_rate if i % plan.slow_every == plan.slow_every - 1 else None,
                 t0, deadline, bulk)
        for i in range(plan.nodes)
    ]  # fmt: skip
    runs = await asyncio.gather(*jobs)
    return list(runs), time.monotonic() - t0


def storm(target: Target, plan: Plan, ksload: Path, work: Path, seconds: float) -> StormResult:
    probe_addrs = work / "probe-addrs"
    probe_addrs.write_text("".join(f"{host_ip(i)}\n" for i in range(plan.nodes, plan.hosts)))
    meter = CpuMeter(target.cpu_parts).start()
    log = work / f"probe-{target.key}.log"
    began = time.time()
    with KsloadProbe(ksload, target.http_port, probe_addrs, plan.probe_rate, seconds, log) as p:
        runs, took = asyncio.run(storm_async(target, plan, seconds))
    cpu = meter.stop()
    ended = time.time()
    result = StormResult(target, runs, took, p.result, cpu, took >= seconds - 2, p.requests)
    if target.logged is not None:
        time.sleep(1.5)  # nginx flushes its log buffer every second
        result.logged = [x * 1000 for x in target.logged(began, ended)]
    return result


# -- ksload, wrk, the Python client --------------------------------------------------------------


def build_ksload() -> Path:
    source = Path(__file__).resolve().parent / "ksload.c"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "provisioner-bench"
    binary = cache / f"ksload-{digest}"
    if not binary.exists():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = binary.with_suffix(".tmp")
        subprocess.run(["gcc", "-O2", "-Wall", "-o", str(tmp), str(source)], check=True)
        tmp.rename(binary)
    return binary


def ksload_argv(
    binary: Path, port: int, addrs: Path, *, path: str = KICKSTART, conns: int = 64,
    rate: float = 0, count: int = 10_000_000, seconds: float = 10, timeout: float = 10,
    drain: bool = False,
) -> list[str]:  # fmt: skip
    argv = [str(binary), "-p", str(port), "-a", str(addrs), "-u", path]
    argv += ["-n", str(count), "-t", str(seconds), "-T", str(timeout)]
    argv += ["-r", str(rate)] if rate else ["-c", str(conns)]
    return argv + (["-D"] if drain else [])


def run_ksload(binary: Path, port: int, addrs: Path, **kw: object) -> dict[str, object]:
    argv = ksload_argv(binary, port, addrs, **kw)  # type: ignore[arg-type]
    seconds = float(kw.get("seconds", 10))  # type: ignore[arg-type]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 60)
    return json.loads(out.stdout)


class KsloadProbe:
    """ksload at a low fixed rate in the background for the length of a `with` block."""

    def __init__(
        self, binary: Path, port: int, addrs: Path, rate: float, seconds: float, log: Path
    ) -> None:
        # Drain: a kickstart asked before the end is waited for (or times out) and judged.
        self.argv = ksload_argv(
            binary, port, addrs, rate=rate, seconds=seconds + 30, timeout=10, drain=True
        )
        self.argv += ["-L", str(log)]
        self.log = log
        self.result: dict[str, object] = {}
        self.requests: list[tuple[float, float, int]] = []  # start s, latency s, status

    def __enter__(self) -> KsloadProbe:
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, text=True, start_new_session=True
        )
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            out, _ = self.proc.communicate(timeout=20)
            self.result = json.loads(out)
            for line in self.log.read_text().splitlines():
                start, seconds, status = line.split()
                self.requests.append((float(start), float(seconds), int(status)))
        except (subprocess.TimeoutExpired, ValueError, OSError):
            stop(self.proc)
            self.result = {}


def run_wrk(url: str, seconds: float) -> dict[str, object]:
    before = children_cpu()
    argv = ["wrk", "-t2", "-c64", f"-d{max(1, round(seconds))}s", "--latency", url]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 60)
    text = out.stdout

    def num(pattern: str) -> float:
        m = re.search(pattern, text)
        return float(m.group(1)) if m else 0.0

    def ms(label: str) -> float:
        m = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        if not m:
            return 0.0
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    requests = int(num(r"(\d+) requests in"))
    non2xx = int(num(r"Non-2xx or 3xx responses: (\d+)"))
    socket_errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
    return {
        "requests": requests,
        "ok": requests - non2xx,
        "other": non2xx,
        "errors": socket_errors,
        "rate": num(r"Requests/sec:\s+([\d.]+)"),
        "p50": ms("50%"),
        "p99": ms("99%"),
        "client_cpu": children_cpu() - before,
    }


# -- slowloris -----------------------------------------------------------------------------------

SLOW_HEAD = b"GET /install/sbin/kickstart.cgi HTTP/1.1\r\nHost: fe\r\nX-Slow: "


def slowloris(port: int, count: int, seconds: float, every: float = 3.0) -> dict[str, float]:
    """`count` connections that send a partial request, then one byte every `every` s, for
    `seconds`; one the server closes is opened again (as an attacker would). Reports how many
    stayed open and how long the server let the closed ones hang."""
    sel = selectors.DefaultSelector()
    opened = closed = answered = 0
    held: list[float] = []
    start = time.monotonic()
    end = start + seconds

    def open_one(i: int) -> None:
        nonlocal opened
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.bind((slow_ip(i), 0))
        s.connect_ex(("127.0.0.1", port))
        # Sends are staggered over the interval so the server sees a steady trickle.
        first = time.monotonic() + every * (i % 97) / 97
        sel.register(s, selectors.EVENT_READ, [i, time.monotonic(), first, False])
        opened += 1

    def drop(s: socket.socket, state: list, by_server: bool) -> None:
        nonlocal closed
        sel.unregister(s)
        s.close()
        if by_server:
            closed += 1
            held.append(time.monotonic() - state[1])
            if time.monotonic() < end - 1:
                open_one(state[0])

    for i in range(count):
        open_one(i)
    open_at_end = 0
    try:
        while time.monotonic() < end:
            for key, _ in sel.select(0.05):
                s, state = key.fileobj, key.data
                assert isinstance(s, socket.socket)
                try:
                    data = s.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data:
                    answered += 1  # a response (408, 400) before the request was whole
                drop(s, state, True)
            now = time.monotonic()
            for key in list(sel.get_map().values()):
                s, state = key.fileobj, key.data
                if now < state[2]:
                    continue
                state[2] = now + every
                try:
                    s.send(b"a" if state[3] else SLOW_HEAD)
                    state[3] = True
                except BlockingIOError:
                    pass
                except OSError:
                    drop(s, state, True)  # type: ignore[arg-type]
        open_at_end = len(sel.get_map())
    finally:
        for key in list(sel.get_map().values()):
            sel.unregister(key.fileobj)
            key.fileobj.close()  # type: ignore[union-attr]
    held.sort()
    return {
        "connections": count,
        "opened": opened,
        "closed_by_server": closed,
        "answered": answered,
        "open_at_end": open_at_end,
        "held_median": held[len(held) // 2] if held else 0.0,
        "seconds": seconds,
    }


def slow_clients(
    target: Target, plan: Plan, ksload: Path, work: Path
) -> tuple[dict[str, float], dict[str, object]]:
    addrs, log = work / "probe-addrs", work / f"probe-slow-{target.key}.log"
    meter = CpuMeter(target.cpu_parts).start()
    seconds = plan.slowloris_seconds
    with KsloadProbe(ksload, target.http_port, addrs, plan.probe_rate, seconds, log) as p:
        loris = slowloris(target.http_port, plan.slowloris, seconds)
    loris["others"] = meter.stop()["others"]
    return loris, p.result


# -- reporting -----------------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def storm_numbers(r: StormResult) -> dict[str, float]:
    transfers = [t for run in r.runs for t in run.transfers]
    good = sum(t.size for t in transfers if t.verdict == "ok")
    fast = [run for run in r.runs if not run.slow]
    fast_good = sum(t.size for run in fast for t in run.transfers if t.verdict == "ok")
    fast_end = max((run.end for run in fast), default=0.0) if all(run.end for run in fast) else 0
    ks = [t.seconds * 1000 for t in transfers if t.step == "kickstart" and t.verdict == "ok"]
    ends = [run.end for run in r.runs if run.end]
    count = {v: sum(1 for t in transfers if t.verdict == v) for v in
             ("ok", "truncated", "corrupt", "error", "unfinished", "not started")}  # fmt: skip
    return {
        "done": len(ends),
        "seconds": r.seconds,
        "aggregate": good / MB / r.seconds,
        "fast": fast_good / MB / (fast_end or r.seconds),
        "fast_seconds": fast_end or r.seconds,
        "node_p50": pct(ends, 50),
        "ks_p50": pct(ks, 50),
        "ks_p99": pct(ks, 99),
        "ks_n": len(ks),
        **count,
    }


def probe_line(p: dict[str, object]) -> str:
    if not p:
        return "no result"
    errs = sum(p["errors"].values())  # type: ignore[union-attr]
    return (
        f"{p['p50_ms']:.1f} / {p['p99_ms']:.1f} ({p['ok']}/{p['issued']} ok"
        + (f", {errs} errors" if errs else "")
        + (f", {p['unfinished']} unanswered" if p["unfinished"] else "")
        + ")"
    )


def probe_ok(p: dict[str, object]) -> bool:
    return bool(p) and p["ok"] == p["issued"] and p["finished"] > 0  # type: ignore[operator]


def cgroup_cpus(group: str) -> str:
    quota = int((Path(group) / "cpu.cfs_quota_us").read_text())
    return f"{quota / int((Path(group) / 'cpu.cfs_period_us').read_text()):g}"


def verdict(name: str, met: bool, how: str) -> str:
    return f"- {name}: **{'met' if met else 'MISSED'}** — {how}"


def print_storm(results: list[StormResult], plan: Plan) -> None:
    sizes = ", ".join(f"{n} {s / MB:g} MB" for n, s in plan.sizes.items())
    print(f"## Full storm: {plan.nodes} nodes, 1 in {plan.slow_every} at --limit-rate "
          f"{plan.slow_rate} (MB = 2^20 bytes)")  # fmt: skip
    print()
    group = plan.client_cgroup
    held = f", held to {cgroup_cpus(group)} cores (a cgroup)" if group else ""
    print(f"Each node, from its own address: TFTP lpxelinux.0 and pxelinux.cfg/01-<mac>, then HTTP "
          f"{sizes} and its kickstart. Probe: other hosts' kickstarts at {plan.probe_rate:g}/s "
          f"(ksload). The bulk downloads (curl and xxhsum) run at nice {plan.client_nice}{held}; "
          "the loader, config and kickstart fetches and the probe at nice 0.")  # fmt: skip
    print()
    print(
        "| server | nodes done | time s | aggregate MB/s | fast clients MB/s (done at s) | "
        "node p50 s | kickstart p50 / p99 ms, nodes | kickstart p50 / p99 ms, probe | "
        "truncated | corrupt | errors | unfinished | CPU s: server / clients / others "
        "(irq) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        n = storm_numbers(r)
        unfinished = int(n["unfinished"] + n["not started"])
        when = f"{n['seconds']:.1f}" + (" (deadline)" if r.deadline_hit else "")
        label = r.target.label + (f", round {r.round}" if plan.rounds > 1 else "")
        print(
            f"| {label} | {n['done']}/{plan.nodes} | {when} | {n['aggregate']:.0f} | "
            f"{n['fast']:.0f} ({n['fast_seconds']:.1f}) | {n['node_p50']:.1f} | "
            f"{n['ks_p50']:.1f} / {n['ks_p99']:.1f} | {probe_line(r.probe)} | "
            f"{n['truncated']} | {n['corrupt']} | {n['error']} | {unfinished} | "
            f"{r.cpu['server']:.0f} / {r.cpu['client']:.0f} / {r.cpu['others']:.0f} "
            f"({r.cpu['irq']:.0f}) |"
        )
    print()
    print("Per step (seconds per transfer, fast and slow nodes together):")
    print()
    print(
        "| server | step | ok | truncated | corrupt | errors | unfinished | p50 s | p99 s | max s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        name = r.target.key + (f" {r.round}" if plan.rounds > 1 else "")
        for step in STEPS:
            ts = [t for run in r.runs for t in run.transfers if t.step == step.name]
            secs = [t.seconds for t in ts if t.verdict == "ok"]
            c = {v: sum(1 for t in ts if t.verdict == v) for v in
                 ("ok", "truncated", "corrupt", "error")}  # fmt: skip
            unf = sum(1 for t in ts if t.verdict in ("unfinished", "not started"))
            print(
                f"| {name} | {step.name} | {c['ok']} | {c['truncated']} | {c['corrupt']} | "
                f"{c['error']} | {unf} | {pct(secs, 50):.3f} | {pct(secs, 99):.3f} | "
                f"{max(secs, default=0):.3f} |"
            )
    print()
    print_probe_windows(results)
    timed = [r for r in results if r.logged]
    if timed:
        print("The same storms' kickstarts as the server's nginx timed them ($request_time: from "
              "reading the request to sending the last byte; the rest of a client's wait is "
              "before nginx read the request):")  # fmt: skip
        print()
        print("| server | kickstarts | p50 ms | p99 ms | max ms |")
        print("| --- | --- | --- | --- | --- |")
        for r in timed:
            name = r.target.key + (f" {r.round}" if plan.rounds > 1 else "")
            lat = r.logged or []
            print(f"| {name} | {len(lat)} | {pct(lat, 50):.0f} | {pct(lat, 99):.0f} | "
                  f"{max(lat):.0f} |")  # fmt: skip
        print()
    for r in results:
        bad = [t for run in r.runs for t in run.transfers
               if t.verdict not in ("ok", "unfinished", "not started")]  # fmt: skip
        if bad:
            print(f"{r.target.label}: {len(bad)} failed transfers, first ones:")
            for t in bad[:5]:
                print(f"    node {t.node} {t.step}: {t.verdict} ({t.detail})")
            print()


def print_probe_windows(results: list[StormResult], width: float = 10.0) -> None:
    """When in the storm the probe's kickstarts were slow: p99 (and count) per window."""
    last = max((t for r in results for t, _, _ in r.probe_requests), default=0.0)
    windows = int(last // width) + 1
    print(f"Probe kickstarts over the storm: p99 ms per {width:g} s window from the storm's start "
          "(errors count as their time):")  # fmt: skip
    print()
    print("| server | " + " | ".join(f"{k * width:g}-{(k + 1) * width:g} s" for k in
                                      range(windows)) + " |")  # fmt: skip
    print("| --- |" + " --- |" * windows)
    for r in results:
        cells = []
        for k in range(windows):
            lat = [s * 1000 for t, s, _ in r.probe_requests if k * width <= t < (k + 1) * width]
            cells.append(f"{pct(lat, 99):.0f}" if lat else "")
        rounds = any(x.round > 1 for x in results)
        name = r.target.key + (f" {r.round}" if rounds else "")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print()


def per_request(cpu: float, n: float) -> str:
    return f"{cpu / n * 1e6:.0f}" if n else "-"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=200)
    ap.add_argument("--quick", action="store_true", help="a small, fast variant for trying it")
    ap.add_argument("--skip-before", action="store_true", help="not the code before nginx")
    ap.add_argument("--before-seconds", type=float, default=None)
    ap.add_argument("--ks-seconds", type=float, default=None)
    ap.add_argument(
        "--rounds", type=int, default=1, help="storms against provisionerd and its peer"
    )
    ap.add_argument(
        "--client-nice",
        type=int,
        default=0,
        help="niceness of the bulk downloads (19: they take only what the servers leave)",
    )
    ap.add_argument(
        "--client-cpus",
        type=float,
        default=0.0,
        help="hold the bulk downloads (curl, xxhsum) to this many cores in a cgroup, as real "
        "nodes bring their own CPUs (cgroup v1 cpu controller; 0: no limit)",
    )
    args = ap.parse_args()
    missing = [
        f"{tool} (Debian: {pkg})"
        for tool, pkg in TOOLS.items()
        if not (shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin"))
    ]
    if not LOADER.exists():
        missing.append(f"{LOADER} (Debian: pxelinux)")
    if missing:
        print("boot_storm needs: " + ", ".join(missing), file=sys.stderr)
        return 2
    quick = args.quick
    nodes = args.nodes if args.nodes != 200 or not quick else 16
    plan = Plan(
        nodes=nodes,
        hosts=max(1000, nodes + 100),
        sizes=(
            {"vmlinuz": 4 * MB, "initrd.img": 12 * MB, "install.img": 20 * MB}
            if quick
            else {"vmlinuz": 10 * MB, "initrd.img": 60 * MB, "install.img": 100 * MB}
        ),
        slow_every=4,
        slow_rate="2M",
        probe_rate=20,
        storm_seconds=900,
        before_seconds=args.before_seconds or (40 if quick else 180),
        ks_seconds=args.ks_seconds or (3 if quick else 10),
        python_count=2000 if quick else 6000,
        slowloris=200 if quick else 1000,
        slowloris_seconds=10 if quick else 30,
        quick=quick,
        rounds=args.rounds,
        client_nice=args.client_nice,
        client_cgroup=None,
    )
    # 1,000 slowloris sockets and the storm's pipes: take the hard limit on descriptors.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    use_pidfd_watcher()
    faulthandler.register(signal.SIGUSR1)  # kill -USR1 prints where a stuck run is
    ksload = build_ksload()
    with contextlib.ExitStack() as stack:
        if args.client_cpus:
            group = stack.enter_context(cpu_cgroup(args.client_cpus))
            plan = dataclasses.replace(plan, client_cgroup=str(group))
        try:
            return run(plan, ksload, skip_before=args.skip_before)
        except KeyboardInterrupt:
            traceback.print_exc()
            return 130


@contextlib.contextmanager
def cpu_cgroup(cpus: float) -> Iterator[Path]:
    """A cgroup (v1 cpu controller) whose processes together get at most `cpus` cores."""
    root = Path("/sys/fs/cgroup/cpu")
    if not (root / "cpu.cfs_quota_us").exists():
        raise SystemExit("--client-cpus needs the cgroup v1 cpu controller at /sys/fs/cgroup/cpu")
    group = root / f"provisioner-bench-{os.getpid()}"
    group.mkdir()
    try:
        (group / "cpu.cfs_period_us").write_text("100000\n")
        (group / "cpu.cfs_quota_us").write_text(f"{int(cpus * 100000)}\n")
        yield group
    finally:
        for _ in range(50):  # its processes may take a moment to be gone
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.1)


def code_state() -> str:
    head = subprocess.run(
        ["git", "-C", str(REPO), "log", "-1", "--format=%h %s"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "provisioner"],
        capture_output=True,
        text=True,
    ).stdout.split("\n")
    changed = [line[3:] for line in dirty if line.strip()]
    return f"{head[:60]}" + (f" + uncommitted: {', '.join(changed)}" if changed else "")


def hash_speeds(data: Path) -> str:
    blob = (data / "install.img").read_bytes()[: 64 * MB]
    t = time.perf_counter()
    zlib.crc32(blob)
    crc = len(blob) / MB / (time.perf_counter() - t)
    t = time.perf_counter()
    subprocess.run(["xxhsum", "-H3", str(data / "install.img")], capture_output=True, check=True)
    xxh = (data / "install.img").stat().st_size / MB / (time.perf_counter() - t)
    return (
        f"xxhsum -H3 {xxh:,.0f} MB/s (one process, from the page cache), zlib.crc32 {crc:,.0f} MB/s"
    )


def make_data(data: Path, plan: Plan) -> dict[str, tuple[int, str]]:
    data.mkdir()
    shutil.copyfile(LOADER, data / "lpxelinux.0")
    for name, size in plan.sizes.items():
        with (data / name).open("wb") as fh:
            for _ in range(size // MB):
                fh.write(os.urandom(MB))
    files = {}
    for name in plan.sizes:
        out = subprocess.run(["xxhsum", "-H3", str(data / name)], capture_output=True, text=True)
        files[name] = ((data / name).stat().st_size, out.stdout.split()[-1])
    loader = (data / "lpxelinux.0").read_bytes()
    files["lpxelinux.0"] = (len(loader), checksum(loader))
    return files


def run(plan: Plan, ksload: Path, skip_before: bool) -> int:
    from provisioner.testing.daemon import Provisionerd

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from kickstart_storm import run_load  # the Python selector client, measured beside ksload

    print(f"# Boot storm (issue 9) — bench/boot_storm.py{' --quick' if plan.quick else ''}")
    print()
    print(f"- machine: {machine()}")
    print(f"- date: {stamp()}; {load()} at start")
    print(f"- code: {code_state()}")
    storms: list[StormResult] = []
    dyn_rows: list[dict[str, object]] = []
    slow_rows: list[tuple[str, dict[str, float], dict[str, object]]] = []
    notes: list[str] = []
    health: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-boot-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o755)
        files = make_data(work / "data", plan)
        print(f"- hashing: {hash_speeds(work / 'data')}")
        all_addrs = work / "all-addrs"
        all_addrs.write_text("".join(f"{host_ip(i)}\n" for i in range(plan.hosts)))
        t = time.perf_counter()
        make_home(work / "home", plan.hosts, work / "data", {})
        print(f"- cluster: {plan.hosts} hosts made in {time.perf_counter() - t:.1f} s; "
              f"storm nodes 0-{plan.nodes - 1}, the probe asks as the others")  # fmt: skip
        with contextlib.ExitStack() as stack:
            server = stack.enter_context(Provisionerd(work / "home", workers=2))
            new = Target(
                "provisionerd", "provisionerd (nginx + gunicorn, our TFTP)", server.http_port,
                server.tftp_port, provisionerd_parts(server), {}, nginx_logged(server),
            )  # fmt: skip
            configs = asyncio.run(learn(new, plan, files))
            body0 = fetch_kickstart(server.http_port, host_ip(0))
            # Every host once, so every worker's caches are warm as in a long-running server.
            run_ksload(ksload, server.http_port, all_addrs, conns=16, count=plan.hosts, seconds=60)
            root = work / "peer"
            root.mkdir()
            peer_target = stack.enter_context(peer(root, work / "data", body0, configs))
            for i in range(plan.nodes):
                for step in STEPS:
                    want = new.expected[(i, step.name)]
                    if step.name == "kickstart":
                        want = (len(body0), checksum(body0))
                    peer_target.expected[(i, step.name)] = want
            print(
                f"- provisionerd: HTTP {server.http_port} (pids {server.children()}); "
                f"peer: nginx {peer_target.http_port}, tftpd-hpa {peer_target.tftp_port}"
            )
            print()
            for r in range(plan.rounds):
                # Rounds alternate which goes first: neighbours' load drifts.
                for target in (new, peer_target) if r % 2 == 0 else (peer_target, new):
                    note_load(notes, f"storm {r + 1}, {target.key}")
                    storms.append(storm(target, plan, ksload, work, plan.storm_seconds))
                    storms[-1].round = r + 1
            storms.sort(key=lambda x: (x.target.key != "provisionerd", x.round))
            # The dynamic path against the limit.
            note_load(notes, "kickstarts closed loop")
            dyn_rows.append(dynamic_ksload(new, "kickstart.cgi (dynamic)", ksload, all_addrs, plan))
            dyn_rows.append(dynamic_python(new, run_load, plan))
            dyn_rows.append(
                dynamic_ksload(peer_target, "static 30 KB file", ksload, all_addrs, plan)
            )
            dyn_rows.append(dynamic_wrk(peer_target, "static 30 KB file", plan))
            dyn_rows.append(dynamic_wrk(new, "kickstart.cgi of 127.0.0.1 (the frontend)", plan))
            note_load(notes, "slowloris, provisionerd")
            slow_rows.append((new.label, *slow_clients(new, plan, ksload, work)))
            health += server_health(server, "provisionerd")
        if not skip_before:
            # The old supervisor runs gunicorn as `python -m`, which puts its working directory
            # first on sys.path: from this checkout that would be today's package.
            with before_worktree() as tree, contextlib.chdir(tree):
                where = check_before_code(tree)
                extra = {"PYTHONPATH": str(tree)}
                make_home(work / "before", plan.hosts, work / "data", extra)
                with Provisionerd(work / "before", env=extra, workers=2) as old:
                    proof = old_code_proof(old)
                    print(f"- before: {BEFORE} from {where}; {proof}")
                    print()
                    old_target = Target(
                        "before",
                        f"before: gunicorn only ({BEFORE}), {plan.before_seconds:g} s bound",
                        old.http_port,
                        old.tftp_port,
                        provisionerd_parts(old),
                    )
                    asyncio.run(learn(old_target, plan, files))
                    run_ksload(ksload, old.http_port, all_addrs, conns=16, count=plan.hosts,
                               seconds=60)  # fmt: skip
                    note_load(notes, "storm, before")
                    storms.append(storm(old_target, plan, ksload, work, plan.before_seconds))
                    note_load(notes, "slowloris, before")
                    old_label = f"before: gunicorn only ({BEFORE})"
                    slow_rows.append((old_label, *slow_clients(old_target, plan, ksload, work)))
                    health += server_health(old, "before")
    report(plan, storms, dyn_rows, slow_rows, notes, health)
    return 0


def fetch_kickstart(port: int, ip: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(ip, 0)) as s:
        s.sendall(f"GET {KICKSTART} HTTP/1.0\r\nHost: fe\r\n\r\n".encode())
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n", 1)[0]:
        raise RuntimeError(f"kickstart of {ip}: {head[:80]!r}")
    return body


def old_code_proof(old: object) -> str:
    """The old code answers /boot/files/ from Flask (today's app has no such route: nginx
    serves it), straight from gunicorn, and its supervisor starts no nginx."""
    url = old.url + "/boot/files/vmlinuz"  # type: ignore[attr-defined]
    with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=10) as r:
        server_header = r.headers.get("Server", "")
        status = r.status
    kids = old.children()  # type: ignore[attr-defined]
    if status != 200 or "gunicorn" not in server_header.lower() or "nginx" in kids:
        raise RuntimeError(f"the old provisionerd is not the old code: {server_header}, {kids}")
    return (
        f"/boot/files/vmlinuz answered {status} by `Server: {server_header}` (Flask's route, "
        f"gone from today's app), services {sorted(kids)}: no nginx"
    )


def nginx_logged(server: object) -> Callable[[float, float], list[float]]:
    def logged(start: float, end: float) -> list[float]:
        return [
            float(r["seconds"])
            for r in server.requests()  # type: ignore[attr-defined]
            if r.get("uri") == KICKSTART and start <= float(r["time"]) <= end
        ]

    return logged


def server_health(server: object, label: str) -> list[str]:
    """What provisionerd's own log says went wrong: restarted services, errors by message."""
    records = server.records()  # type: ignore[attr-defined]
    out = []
    restarts = [r["message"] for r in records if "restarting in" in str(r.get("message", ""))]
    if restarts:
        out.append(f"{label}: {len(restarts)} service restarts, e.g. {restarts[0]!r}")
    errors: dict[str, int] = {}
    # The old supervisor logged every plain line as info: gunicorn's own markers say more.
    markers = ("[CRITICAL]", "[ERROR]", "Traceback", "WORKER TIMEOUT", "[emerg]", "[alert]")
    for r in records:
        message = str(r.get("message", ""))
        loud = r.get("level") in ("error", "critical") or any(m in message for m in markers)
        if loud and "restarting in" not in message:
            text = re.sub(r"\d+", "N", message)[:140]
            errors[text] = errors.get(text, 0) + 1
    for text, n in sorted(errors.items(), key=lambda kv: -kv[1])[:6]:
        out.append(f"{label}: {n} × {text!r}")
    statuses: dict[int, int] = {}
    for r in records:
        if r.get("component") == "nginx" and "status" in r:
            statuses[int(r["status"])] = statuses.get(int(r["status"]), 0) + 1
    bad = {k: v for k, v in statuses.items() if k >= 400}
    if bad:
        out.append(
            f"{label}: nginx logged statuses {dict(sorted(bad.items()))} (408: slowloris "
            "connections nginx timed out; 400: those closed by us mid-request at the end; 499: "
            "a client hung up first, as the closed-loop clients do with what is in flight at "
            "their end)"
        )
    return out or [f"{label}: no errors or restarts in its log"]


def note_load(notes: list[str], phase: str) -> None:
    one, five, _ = os.getloadavg()
    notes.append(f"{phase} {one:.2f} / {five:.2f} (1 / 5 min)")


def dynamic_ksload(
    target: Target, what: str, ksload: Path, addrs: Path, plan: Plan
) -> dict[str, object]:
    meter = CpuMeter(target.cpu_parts).start()
    r = run_ksload(ksload, target.http_port, addrs, conns=64, seconds=plan.ks_seconds)
    client = float(r["cpu_user"]) + float(r["cpu_system"])  # type: ignore[arg-type]
    cpu = meter.stop()
    errs = sum(r["errors"].values())  # type: ignore[union-attr]
    return {
        "target": target, "what": what, "client": "ksload (C), 64 at a time, 1,000 sources",
        "requests": r["finished"], "ok": r["statuses"].get("200", 0),  # type: ignore[union-attr]
        "other": int(r["finished"]) - errs - r["statuses"].get("200", 0),  # type: ignore[union-attr,call-overload]
        "errors": errs, "rate": r["statuses"].get("200", 0) / float(r["elapsed"]),  # type: ignore[union-attr,arg-type]
        "p50": r["p50_ms"], "p99": r["p99_ms"], "cpu": cpu, "client_cpu": client,
        "body": f"{r['body_min']}-{r['body_max']}",
    }  # fmt: skip


def dynamic_python(target: Target, run_load: Callable, plan: Plan) -> dict[str, object]:
    meter = CpuMeter(target.cpu_parts).start()
    t = time.process_time()
    results, seconds = run_load(target.http_port, plan.hosts, plan.python_count, clients=64)
    client = time.process_time() - t
    cpu = meter.stop()
    ok = sum(1 for r in results if r[0] == 200 and r[2] > 1000)
    lat = [r[1] * 1000 for r in results]
    return {
        "target": target, "what": "kickstart.cgi (dynamic)",
        "client": "Python selector loop (kickstart_storm.run_load), 64 at a time, 1,000 sources",
        "requests": len(results), "ok": ok,
        "other": sum(1 for r in results if r[0] not in (0, 200)),
        "errors": sum(1 for r in results if r[0] == 0), "rate": ok / seconds,
        "p50": pct(lat, 50), "p99": pct(lat, 99), "cpu": cpu, "client_cpu": client, "body": "",
    }  # fmt: skip


def dynamic_wrk(target: Target, what: str, plan: Plan) -> dict[str, object]:
    meter = CpuMeter(target.cpu_parts).start()
    r = run_wrk(f"http://127.0.0.1:{target.http_port}{KICKSTART}", plan.ks_seconds)
    cpu = meter.stop()
    return {
        "target": target, "what": what,
        "client": "wrk -t2 -c64, keep-alive, one source (127.0.0.1)",
        "requests": r["requests"], "ok": r["ok"], "other": r["other"], "errors": r["errors"],
        "rate": r["rate"], "p50": r["p50"], "p99": r["p99"], "cpu": cpu,
        "client_cpu": r["client_cpu"], "body": "",
    }  # fmt: skip


def report(
    plan: Plan,
    storms: list[StormResult],
    dyn: list[dict[str, object]],
    slow: list[tuple[str, dict[str, float], dict[str, object]]],
    notes: list[str],
    health: list[str],
) -> None:
    print_storm(storms, plan)
    print(f"## Kickstarts closed loop, {plan.ks_seconds:g} s each (wrk: its own duration)")
    print()
    print("| server | what | client | requests | 200 | other status | errors | per s | p50 ms | "
          "p99 ms | server CPU µs/req (nginx / gunicorn / supervisor) | client CPU µs/req | "
          "others' CPU s |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for d in dyn:
        cpu = d["cpu"]
        n = float(d["ok"]) or float(d["requests"])  # type: ignore[arg-type]
        tgt = d["target"]
        assert isinstance(cpu, dict) and isinstance(tgt, Target)
        split = " / ".join(per_request(cpu.get(k, 0.0), n) for k in ("nginx", "http", "supervisor"))
        if tgt.key == "peer":
            split = f"{per_request(cpu.get('nginx', 0.0), n)} / - / -"
        print(
            f"| {tgt.key} | {d['what']} | {d['client']} | {d['requests']} | {d['ok']} | "
            f"{d['other']} | {d['errors']} | {float(d['rate']):,.0f} | {float(d['p50']):.1f} | "  # type: ignore[arg-type]
            f"{float(d['p99']):.1f} | {per_request(cpu['server'], n)} ({split}) | "  # type: ignore[arg-type]
            f"{per_request(float(d['client_cpu']), n)} | {cpu['others']:.1f} |"  # type: ignore[arg-type]
        )
    print()
    print(f"## Slow clients: slowloris connections held {plan.slowloris_seconds:g} s while "
          f"kickstarts are asked at {plan.probe_rate:g}/s")  # fmt: skip
    print()
    print("| server | slowloris connections | still open at the end | closed by the server "
          "(median held s) | reopened | kickstarts asked | answered 200 | errors | p50 ms | "
          "p99 ms | max ms | others' CPU s |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, loris, p in slow:
        errs = sum(p["errors"].values()) if p else 0  # type: ignore[union-attr]
        print(
            f"| {label} | {loris['connections']} | {loris['open_at_end']} | "
            f"{loris['closed_by_server']} ({loris['held_median'] or '-':.3}) | "
            f"{loris['opened'] - loris['connections']} | {p.get('issued', 0)} | {p.get('ok', 0)} | "
            f"{errs} | {p.get('p50_ms', 0):.1f} | {p.get('p99_ms', 0):.1f} | "
            f"{p.get('max_ms', 0):.1f} | {loris['others']:.1f} |"
        )
    print()
    print(
        "Load average when each phase started (it counts this benchmark's own clients too: "
        'the "others\' CPU" columns are what the rest of the machine used meanwhile): '
        + "; ".join(notes)
        + "."
    )
    print()
    print("Servers' own logs:")
    print()
    for line in health:
        print(f"- {line}")
    print()
    print("## Verdicts")
    print()
    lines = verdicts(plan, storms, dyn, slow)
    for line in lines:
        print(line)
    print()
    # One closing line, the one bench/run_all.py quotes in `make bench`'s summary.
    missed = [line[2:].split(":", 1)[0] for line in lines if "**MISSED**" in line]
    if missed:
        print(f"TARGETS MISSED ({len(missed)} of {len(lines)}): " + "; ".join(missed))
    else:
        print(f"targets met ({len(lines)} of {len(lines)})")


def verdicts(
    plan: Plan,
    storms: list[StormResult],
    dyn: list[dict[str, object]],
    slow: list[tuple[str, dict[str, float], dict[str, object]]],
) -> list[str]:
    out = []
    ours_runs = [r for r in storms if r.target.key == "provisionerd"]
    peer_runs = [r for r in storms if r.target.key == "peer"]
    if ours_runs and peer_runs:
        pairs = [
            (storm_numbers(a), storm_numbers(b)) for a, b in zip(ours_runs, peer_runs, strict=True)
        ]
        # Each round ran both back to back; the median of the rounds' ratios is the verdict.
        ratio = median([a["aggregate"] / b["aggregate"] for a, b in pairs if b["aggregate"]])
        fast = median([a["fast"] / b["fast"] for a, b in pairs if b["fast"]])
        ours, theirs = pairs[0]
        rounds = f"median of {len(pairs)} rounds; " if len(pairs) > 1 else ""
        out.append(verdict(
            f"storm throughput ≥ {THROUGHPUT_TARGET}× nginx alone", ratio >= THROUGHPUT_TARGET,
            f"{ratio:.2f}× ({rounds}{ours['aggregate']:.0f} vs {theirs['aggregate']:.0f} MB/s, "
            f"all clients; the fast clients' own: {fast:.2f}×, {ours['fast']:.0f} vs "
            f"{theirs['fast']:.0f} MB/s)",
        ))  # fmt: skip
        ours = {k: sum(storm_numbers(r)[k] for r in ours_runs) for k in
                ("truncated", "corrupt", "error", "unfinished", "not started")}  # fmt: skip
        theirs = {k: sum(storm_numbers(r)[k] for r in peer_runs) for k in
                  ("truncated", "corrupt", "error")}  # fmt: skip
        ours["ks_p99"] = max(storm_numbers(r)["ks_p99"] for r in ours_runs)
        bad = int(ours["truncated"] + ours["corrupt"] + ours["error"] + ours["unfinished"]
                  + ours["not started"])  # fmt: skip
        out.append(verdict(
            "0 truncated, 0 corrupt, 0 errors", bad == 0,
            f"{ours['truncated']:.0f} truncated, {ours['corrupt']:.0f} corrupt, "
            f"{ours['error']:.0f} errors, {ours['unfinished'] + ours['not started']:.0f} "
            f"unfinished of {plan.nodes * len(STEPS) * len(ours_runs)} transfers (nginx alone: "
            f"{theirs['truncated'] + theirs['corrupt'] + theirs['error']:.0f} bad)",
        ))  # fmt: skip
        probes = [r.probe for r in ours_runs]
        p = max(probes, key=lambda x: float(x.get("p99_ms", 1e9)) if x else 1e9)  # type: ignore[arg-type]
        worst = max(ours["ks_p99"], float(p.get("p99_ms", 1e9)) if p else 1e9)  # type: ignore[arg-type]
        limit_nodes = max(storm_numbers(r)["ks_p99"] for r in peer_runs)
        limit_probe = max(float(r.probe.get("p99_ms", 0)) for r in peer_runs)  # type: ignore[arg-type]
        out.append(verdict(
            f"kickstart p99 ≤ {P99_TARGET_MS:g} ms during the storm",
            worst <= P99_TARGET_MS and all(probe_ok(x) for x in probes),
            f"nodes' own {ours['ks_p99']:.1f} ms, probe p50 / p99 {probe_line(p)}"
            + (f"; by {worst / P99_TARGET_MS:.1f}×" if worst > P99_TARGET_MS else "")
            + f" (nginx alone, static: nodes' {limit_nodes:.1f} ms, probe {limit_probe:.1f} ms)",
        ))  # fmt: skip
    rows = {(d["target"].key, d["client"][:6]): d for d in dyn}  # type: ignore[union-attr,index]
    ours_ks, static_ks = rows.get(("provisionerd", "ksload")), rows.get(("peer", "ksload"))
    if ours_ks and static_ks:
        rate = float(ours_ks["rate"])  # type: ignore[arg-type]
        ratio = rate / float(static_ks["rate"])  # type: ignore[arg-type]
        out.append(verdict(
            f"dynamic kickstarts ≥ {DYNAMIC_TARGET:,.0f}/s from 1,000 addresses",
            rate >= DYNAMIC_TARGET and ours_ks["errors"] == 0,
            f"{rate:,.0f}/s ({rate / DYNAMIC_TARGET:.2f}× the target), "
            f"{ratio:.2f}× nginx static with the same client ({float(static_ks['rate']):,.0f}/s)",
        ))  # fmt: skip
    for label, loris, p in slow:
        if not label.startswith("provisionerd"):
            continue
        p99 = float(p.get("p99_ms", 1e9)) if p else 1e9  # type: ignore[arg-type]
        out.append(verdict(
            f"{loris['connections']} slowloris: every kickstart answered, p99 ≤ "
            f"{P99_TARGET_MS:g} ms", probe_ok(p) and p99 <= P99_TARGET_MS,
            f"{probe_line(p)}; {loris['open_at_end']} slow connections open at the end",
        ))  # fmt: skip
    return out


if __name__ == "__main__":
    sys.exit(main())
