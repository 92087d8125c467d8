"""The Xen roll's VM driver: libvirt-python, for Xen, QEMU/KVM and libvirt's test driver.

This module owns the connections and a domain's life (define, start, stop, save, restore,
move, consoles); the domain it defines is `domain.domain_xml`'s, and the disk images it makes
and copies are `images`'.

Connections are cached per URI for the life of the process: libvirt's `test:///default`
keeps its state only while a connection is open, and a daemon talking to many containers
should not reconnect for every call. libvirt's own error printing is switched off; failures
surface as `VmError` with libvirt's message.
"""

from __future__ import annotations

import os
import select
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlsplit

from provisioner.plugins.xen.domain import domain_xml
from provisioner.plugins.xen.driver import ConsoleInfo, Progress, VmConfig, VmError
from provisioner.plugins.xen.images import copy_file, ensure_disk, file_size

if TYPE_CHECKING:
    import libvirt

#: libvirt's virDomainState numbers -> the states Rocks listed.
STATES = {0: "nostate", 1: "active", 2: "active", 3: "paused", 4: "shutdown", 5: "shutoff"}
STATES.update({6: "crashed", 7: "paused"})
DETACH = b"\x1d"  # Ctrl-], as virsh console
_NO_DOMAIN = 42  # VIR_ERR_NO_DOMAIN

_connections: dict[str, libvirt.virConnect] = {}
_lock = threading.Lock()


def _libvirt() -> Any:
    import libvirt

    return libvirt


def is_local(uri: str) -> bool:
    """True when the URI names this machine's hypervisor, whose files we can reach."""
    host = urlsplit(uri).hostname
    return host in (None, "", "localhost", "127.0.0.1", "::1")


def connect(uri: str) -> libvirt.virConnect:
    lv = _libvirt()
    with _lock:
        conn = _connections.get(uri)
        if conn is not None:
            try:
                if conn.isAlive():
                    return conn
            except lv.libvirtError:
                pass
        # Without this libvirt prints every error on stderr besides raising it.
        lv.registerErrorHandler(lambda _ctx, _err: None, None)
        try:
            conn = lv.open(uri)
        except lv.libvirtError as exc:
            raise VmError(_message(exc)) from None
        _connections[uri] = conn
        return conn


def close_all() -> None:
    """Close cached connections (tests; `test:///default` then forgets its domains)."""
    with _lock:
        for conn in _connections.values():
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing anyway
                pass
        _connections.clear()


def _message(exc: BaseException) -> str:
    get = getattr(exc, "get_error_message", None)
    text = (get() if get else None) or str(exc) or type(exc).__name__
    return text.strip().splitlines()[0]


@contextmanager
def _errors() -> Iterator[None]:
    lv = _libvirt()
    try:
        yield
    except lv.libvirtError as exc:
        raise VmError(_message(exc)) from None


# -- the driver ---------------------------------------------------------------------------------


class LibvirtDriver:
    """`VmDriver` on libvirt. See the module docstring for the domain it defines."""

    name = "libvirt"

    def _domain(self, vm: VmConfig) -> libvirt.virDomain | None:
        lv = _libvirt()
        conn = connect(vm.uri)
        try:
            return conn.lookupByName(vm.name)
        except lv.libvirtError as exc:
            if exc.get_error_code() == _NO_DOMAIN:
                return None
            raise VmError(_message(exc)) from None

    def _require(self, vm: VmConfig) -> libvirt.virDomain:
        dom = self._domain(vm)
        if dom is None:
            raise VmError("it is not defined on its container (run 'rocks start host vm')")
        return dom

    def describe(self, vm: VmConfig) -> str:
        return domain_xml(vm)

    def define(self, vm: VmConfig) -> None:
        self._define(vm)

    def _define(self, vm: VmConfig, uuid: str | None = None) -> None:
        conn = connect(vm.uri)
        existing = self._domain(vm)
        # Redefining keeps the domain's UUID (libvirt refuses a new one for the same name); a
        # moved domain keeps its old one, which its saved memory image names.
        if existing is not None:
            uuid = existing.UUIDString()
        xml = domain_xml(vm, uuid)
        if is_local(vm.uri):
            for disk in vm.disks:
                if disk.vbd_type == "file":
                    try:
                        ensure_disk(disk.path, disk.size_gb)
                    except OSError as exc:
                        raise VmError(
                            f"cannot create disk image {disk.path}: {exc.strerror}"
                        ) from None
        with _errors():
            conn.defineXML(xml)

    def undefine(self, vm: VmConfig) -> None:
        lv = _libvirt()
        dom = self._domain(vm)
        if dom is None:
            return
        with _errors():
            if dom.isActive():
                dom.destroy()
            flags = lv.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | lv.VIR_DOMAIN_UNDEFINE_NVRAM
            try:
                dom.undefineFlags(flags)
            except lv.libvirtError:
                dom.undefine()  # drivers without the flags (test, older xen)

    def start(self, vm: VmConfig) -> None:
        with _errors():
            self._require(vm).create()

    def stop(self, vm: VmConfig) -> None:
        with _errors():
            self._require(vm).destroy()

    def pause(self, vm: VmConfig) -> None:
        with _errors():
            self._require(vm).suspend()

    def resume(self, vm: VmConfig) -> None:
        with _errors():
            self._require(vm).resume()

    def save(self, vm: VmConfig, path: str) -> None:
        dom = self._require(vm)
        if is_local(vm.uri):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        with _errors():
            dom.save(path)

    def restore(self, vm: VmConfig, path: str) -> None:
        self._restore(vm, path, with_xml=False)

    def _restore(self, vm: VmConfig, path: str, with_xml: bool) -> None:
        lv = _libvirt()
        conn = connect(vm.uri)
        if is_local(vm.uri) and not Path(path).exists():
            raise VmError(f"no saved state at {path} (run 'rocks save host vm' first)")
        with _errors():
            if with_xml:
                # The image names the disks where they were; give the new paths when the
                # hypervisor can take them (QEMU can, the test driver cannot).
                dom = self._domain(vm)
                xml = domain_xml(vm, dom.UUIDString() if dom is not None else None)
                try:
                    conn.restoreFlags(path, xml, 0)
                    return
                except lv.libvirtError as exc:
                    if exc.get_error_code() not in (
                        lv.VIR_ERR_NO_SUPPORT,
                        lv.VIR_ERR_ARGUMENT_UNSUPPORTED,
                    ):
                        raise
            conn.restore(path)

    def status(self, vm: VmConfig) -> str:
        try:
            dom = self._domain(vm)
            if dom is None:
                return "nostate"
            with _errors():
                return STATES.get(dom.state()[0], "nostate")
        except VmError:
            return "nostate"

    def move(self, vm: VmConfig, target: VmConfig, progress: Progress) -> None:
        if not (is_local(vm.uri) and is_local(target.uri)):
            raise VmError(
                "moving disk images between remote containers is not supported: copy them, "
                "then 'rocks set host vm physnode=' and 'rocks start host vm'"
            )
        same = vm.uri == target.uri
        dom = self._domain(vm)
        if dom is None:
            raise VmError("it is not defined on its container (run 'rocks start host vm')")
        with _errors():
            running = bool(dom.isActive())
            uuid = dom.UUIDString()
        files = [
            (d.path, t.path)
            for d, t in zip(vm.disks, target.disks, strict=True)
            if d.vbd_type == "file" and d.path != t.path and Path(d.path).exists()
        ]
        saved = defined = restored = False
        copied: list[str] = []
        try:
            if running:
                self.save(vm, vm.state_file)
                saved = True
                if vm.state_file != target.state_file:
                    files.append((vm.state_file, target.state_file))
            total = sum(file_size(src) for src, _ in files)
            done = 0

            def step(copied_bytes: int, skipped: int) -> None:
                nonlocal done
                done += copied_bytes + skipped
                progress(done, total)

            progress(0, total)
            for src, dst in files:
                copy_file(src, dst, step)
                copied.append(dst)
            self._define(target, uuid)
            defined = True
            if saved:
                self._restore(target, target.state_file, with_xml=True)
                restored = True
            if not same:
                self.undefine(vm)
        except BaseException:
            self._move_back(vm, target, same, saved, defined, restored, copied)
            raise
        for path in {vm.state_file, target.state_file} if saved else ():
            Path(path).unlink(missing_ok=True)

    def _move_back(
        self,
        vm: VmConfig,
        target: VmConfig,
        same: bool,
        saved: bool,
        defined: bool,
        restored: bool,
        copied: list[str],
    ) -> None:
        # Best effort, step by step: the VM must end up defined on its old container with
        # its old disks, and running again if it was.
        steps: list[Any] = []
        if defined and same:
            if restored:
                steps.append(lambda: self.stop(target))
            steps.append(lambda: self.define(vm))
        elif defined:
            steps.append(lambda: self.undefine(target))
        if saved:
            steps.append(lambda: self._restore(vm, vm.state_file, with_xml=True))
            steps.append(lambda: Path(vm.state_file).unlink(missing_ok=True))
        for path in copied:
            steps.append(lambda p=path: Path(p).unlink(missing_ok=True))
        for fn in steps:
            try:
                fn()
            except Exception:  # noqa: BLE001 - keep putting back the rest
                continue

    def console(self, vm: VmConfig) -> ConsoleInfo:
        dom = self._require(vm)
        with _errors():
            active = bool(dom.isActive())
            xml = dom.XMLDesc(0)
        root = ET.fromstring(xml)
        lines: list[str] = []
        serial = vnc = None
        for el in root.findall("./devices/serial") + root.findall("./devices/console"):
            kind = el.get("type")
            source = el.find("source")
            path = source.get("path") if source is not None else None
            if kind == "pty" and path:
                serial = serial or path
            elif kind == "file" and path:
                lines.append(f"serial console log: {path} on {vm.container}")
        graphics = root.find("./devices/graphics[@type='vnc']")
        if graphics is not None and active:
            port = graphics.get("port")
            listen = graphics.get("listen") or "127.0.0.1"
            if port and port != "-1":
                vnc = f"{listen}:{port}"
                lines.append(
                    f"VNC display: {listen}:{int(port) - 5900} (port {port}) on {vm.container}; "
                    f"from elsewhere: ssh -L {port}:{listen}:{port} {vm.container}"
                )
        if serial:
            lines.append(f"serial console: {serial} on {vm.container}")
        if active:
            lines.append(f"attach here: rocks open host console {vm.name} attach=yes (Ctrl-] ends)")
        else:
            lines.append(f"{vm.name} is not running: its consoles appear when it starts")
        return ConsoleInfo(tuple(lines), serial=serial, vnc=vnc, can_attach=active)

    def attach_console(self, vm: VmConfig, stdin: BinaryIO, stdout: BinaryIO) -> None:
        lv = _libvirt()
        dom = self._require(vm)
        conn = connect(vm.uri)
        with _errors():
            stream = conn.newStream(0)
            dom.openConsole(None, stream, lv.VIR_DOMAIN_CONSOLE_FORCE)
        done = threading.Event()

        def pump_out() -> None:
            try:
                while not done.is_set():
                    data = stream.recv(4096)
                    if not isinstance(data, bytes) or not data:
                        if data == -2:
                            continue
                        break
                    stdout.write(data)
                    stdout.flush()
            except Exception:  # noqa: BLE001 - the console went away: stop
                pass
            finally:
                done.set()

        reader = threading.Thread(target=pump_out, name=f"console-{vm.name}", daemon=True)
        reader.start()
        fd = stdin.fileno()
        try:
            while not done.is_set():
                ready, _, _ = select.select([fd], [], [], 0.2)
                if not ready:
                    continue
                data = os.read(fd, 1024)
                if not data or DETACH in data:
                    break
                with _errors():
                    stream.send(data)
        finally:
            done.set()
            try:
                stream.abort()
            except Exception:  # noqa: BLE001 - already closed by the other side
                pass
            reader.join(timeout=2)
