"""libvirtd with the real QEMU driver inside a lab namespace, without touching /etc.

libvirtd runs in the namespace (so the taps of its VMs join the namespace bridge) and in a
private mount namespace of its own where
- /etc/libvirt is a generated directory (qemu.conf: QEMU as root, no security driver, no
  cgroups or namespaces, QEMU output to files so no virtlogd; libvirtd.conf: socket directory,
  no authentication),
- /etc/passwd and /etc/group are copies that add the `libvirt-qemu` account, which libvirt
  resolves before it reads qemu.conf (Debian's libvirt-daemon-system would create it),
- /run, /var/lib, /var/cache and /var/log are empty tmpfs (only /var/log/libvirt is bound to the
  work directory, for the QEMU logs), so PID file, domain state and save images of concurrent
  runs never meet, and nothing is left behind when the last process of the namespace exits.

The test process reaches it through `uri` (`qemu+unix:///system?socket=...`).
"""

from __future__ import annotations

import grp
import os
import pwd
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from provisioner.testing.netlab import (
    NetlabError,
    Netns,
    NsProcess,
    kill_pids,
    require_tools,
    sercon_port_file,
    tail,
)
from provisioner.testing.netlab_assets import cache_dir

if TYPE_CHECKING:
    import libvirt

QEMU_CONF = """\
user = "root"
group = "root"
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
remember_owner = 0
stdio_handler = "file"
"""
LIBVIRTD_CONF = """\
unix_sock_dir = "{sock_dir}"
unix_sock_rw_perms = "0700"
auth_unix_rw = "none"
auth_unix_ro = "none"
log_outputs = "3:stderr"
"""
OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"
EXTRA_ACCOUNTS = {"libvirt-qemu": 64055, "kvm": 64054}


class Libvirtd:
    """A private libvirtd in `ns`; `start()` returns once its socket answers."""

    def __init__(
        self, ns: Netns, *, name: str = "libvirtd", caps_cache: Path | None = None
    ) -> None:
        require_tools("libvirtd", "virsh", "unshare", "mount")
        self.ns = ns
        self.name = name
        self.workdir = ns.workdir / name
        # Probing QEMU's capabilities costs libvirtd ~8 s at start; the result is kept in the
        # asset cache (copied in and out, so concurrent daemons never write the same file).
        # libvirt re-probes by itself when QEMU or libvirt changed.
        self.caps_cache = caps_cache or cache_dir() / "libvirt-qemu-capabilities"
        self.caps_dir = self.workdir / "cache" / "qemu" / "capabilities"
        self.log_path = ns.workdir / f"{name}.log"
        self.sock_dir: Path | None = None
        self.process: NsProcess | None = None
        self._conn: libvirt.virConnect | None = None

    @property
    def socket(self) -> Path:
        if self.sock_dir is None:
            raise NetlabError("libvirtd not started")
        return self.sock_dir / "libvirt-sock"

    @property
    def uri(self) -> str:
        return f"qemu+unix:///system?socket={self.socket}"

    @property
    def qemu_log_dir(self) -> Path:
        """Where libvirt's per-domain QEMU logs (<name>.log: command line, errors) land."""
        return self.workdir / "log" / "qemu"

    def _prepare(self) -> str:
        # AF_UNIX paths are limited to 108 bytes: keep the socket out of deep pytest paths.
        self.sock_dir = Path(tempfile.mkdtemp(prefix="pvnl-lv-"))
        etc = self.workdir / "etc-libvirt"
        etc.mkdir(parents=True, exist_ok=True)
        (self.workdir / "log").mkdir(exist_ok=True)
        self.caps_dir.mkdir(parents=True, exist_ok=True)
        for cached in self.caps_cache.glob("*.xml"):
            shutil.copyfile(cached, self.caps_dir / cached.name)
        (etc / "qemu.conf").write_text(QEMU_CONF)
        (etc / "libvirtd.conf").write_text(LIBVIRTD_CONF.format(sock_dir=self.sock_dir))
        passwd = Path("/etc/passwd").read_text()
        group = Path("/etc/group").read_text()
        for account, ident in EXTRA_ACCOUNTS.items():
            try:
                pwd.getpwnam(account)
            except KeyError:
                passwd += f"{account}:x:{ident}:{ident}:netlab:/nonexistent:/usr/sbin/nologin\n"
            try:
                grp.getgrnam(account)
            except KeyError:
                group += f"{account}:x:{ident}:\n"
        (self.workdir / "passwd").write_text(passwd)
        (self.workdir / "group").write_text(group)
        q = shlex.quote
        return "\n".join(
            [
                "set -e",
                "for d in /run /var/lib /var/cache /var/log; do",
                "  mount -t tmpfs -o mode=0755 netlab-libvirt $d",
                "done",
                # /run/lock: libvirt locks a serial pty there when a console attaches.
                "mkdir -p /var/lib/libvirt /var/cache/libvirt /var/log/libvirt /run/libvirt",
                "mkdir -p /run/lock",
                f"mount --bind {q(str(self.workdir / 'log'))} /var/log/libvirt",
                f"mount --bind {q(str(self.workdir / 'cache'))} /var/cache/libvirt",
                f"mount --bind {q(str(etc))} /etc/libvirt",
                f"mount --bind {q(str(self.workdir / 'passwd'))} /etc/passwd",
                f"mount --bind {q(str(self.workdir / 'group'))} /etc/group",
                "exec libvirtd",
            ]
        )

    def start(self, timeout: float = 90.0) -> Libvirtd:
        if not Path("/etc/libvirt").is_dir():
            raise NetlabError("/etc/libvirt is missing (Debian package libvirt-clients)")
        script = self._prepare()
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]
        self.process = self.ns.spawn(self.name, argv, log=self.log_path)
        try:
            self._wait_ready(self.process, timeout)
        except BaseException:
            self._shutdown(clean_domains=False)
            raise
        return self

    def _wait_ready(self, process: NsProcess, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if not process.alive():
                raise NetlabError(
                    f"libvirtd exited with {process.returncode}; log {self.log_path}:\n"
                    f"{tail(self.log_path)}"
                )
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"libvirtd did not answer in {timeout:g}s; {self.log_path}")
            if self.socket.exists() and self._answers(min(left, 30.0)):
                return
            time.sleep(0.2)

    def _answers(self, timeout: float) -> bool:
        # `version` needs the QEMU driver, which answers only after probing QEMU's
        # capabilities (seconds); `list` would answer before. virsh in a subprocess because a
        # libvirt call has no timeout of its own.
        try:
            proc = subprocess.run(
                ["virsh", "-q", "-c", self.uri, "version"],
                capture_output=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            return False
        return proc.returncode == 0

    def connect(self) -> libvirt.virConnect:
        """A connection for the test (one per Libvirtd, closed by `stop`)."""
        import libvirt

        if self._conn is None:
            # libvirt prints every error to stderr besides raising it.
            libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
            self._conn = libvirt.open(self.uri)
        return self._conn

    def stop(self) -> None:
        """Destroy and undefine leftover domains, stop libvirtd and the QEMUs it started."""
        self._shutdown(clean_domains=True)

    def _shutdown(self, clean_domains: bool) -> None:
        import libvirt

        errors = []
        if clean_domains and self.process is not None and self.process.alive():
            try:
                conn = self.connect()
                for dom in conn.listAllDomains():
                    try:
                        if dom.isActive():
                            dom.destroy()
                        dom.undefineFlags(
                            libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                            | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                            | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
                        )
                    except libvirt.libvirtError as exc:
                        errors.append(f"{dom.name()}: {exc}")
            except libvirt.libvirtError as exc:
                errors.append(str(exc))
        if self._conn is not None:
            try:
                self._conn.close()
            except libvirt.libvirtError:
                pass
            self._conn = None
        if self.process is not None:
            # QEMUs that libvirtd started outlive it: note them first, kill them after.
            children = _descendants(self.process.pid)
            self.process.stop(grace=10.0)
            kill_pids(children, grace=5.0)
        if self.sock_dir is not None:
            shutil.rmtree(self.sock_dir, ignore_errors=True)
        self._save_caps()
        if errors:
            raise NetlabError("libvirt cleanup: " + "; ".join(errors))

    def _save_caps(self) -> None:
        try:
            self.caps_cache.mkdir(parents=True, exist_ok=True)
            for probed in self.caps_dir.glob("*.xml"):
                dest = self.caps_cache / probed.name
                if not dest.exists() or dest.read_bytes() != probed.read_bytes():
                    tmp = dest.with_suffix(f".{os.getpid()}.tmp")
                    shutil.copyfile(probed, tmp)
                    tmp.replace(dest)
        except OSError:
            pass  # only a cache


def _descendants(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        kids = [child for child, ppid in parents.items() if ppid == parent]
        found += kids
        todo += kids
    return found


def domain_xml(
    name: str,
    *,
    mac: str,
    serial_log: Path,
    bridge: str = "br0",
    firmware: Literal["bios", "uefi"] = "bios",
    nic_model: str = "virtio",
    rom: bool | None = None,
    memory_mib: int = 512,
    nvram: Path | None = None,
) -> str:
    """XML for a TCG domain that boots from the network on `bridge`, serial console to
    `serial_log`, gone to shutoff when the guest powers off. UEFI uses OVMF pflash (q35) and
    switches the NIC ROM off unless `rom=True` (lab notes §1: the ROM's iPXE would boot)."""
    if rom is None:
        rom = firmware == "bios"
    machine = "pc"
    loader = ""
    if firmware == "uefi":
        machine = "q35"
        nv = f"<nvram template='{OVMF_VARS}'>{nvram}</nvram>" if nvram else ""
        loader = f"<loader readonly='yes' type='pflash'>{OVMF_CODE}</loader>{nv}"
    rom_xml = "" if rom else "<rom enabled='no'/>"
    extra = ""
    if firmware == "bios":
        # SeaBIOS serial console (see netlab.sercon_port_file): libvirt has no element for
        # an etc/ fw_cfg file, hence the pass-through.
        port_file = sercon_port_file(serial_log.parent)
        extra = (
            "<qemu:commandline><qemu:arg value='-fw_cfg'/>"
            f"<qemu:arg value='name=etc/sercon-port,file={port_file}'/></qemu:commandline>"
        )
    return f"""<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>{name}</name>
  <memory unit='MiB'>{memory_mib}</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='{machine}'>hvm</type>{loader}<boot dev='network'/></os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <interface type='bridge'>
      <source bridge='{bridge}'/>
      <mac address='{mac}'/>
      <model type='{nic_model}'/>
      {rom_xml}
    </interface>
    <serial type='file'><source path='{serial_log}'/><target port='0'/></serial>
    <memballoon model='none'/>
  </devices>
  {extra}
</domain>
"""
