"""The declarative objects that registration hooks return, and the contracts of what they
register (DESIGN "Plugins", R5).

This module imports nothing heavy: the CLI builds its command registry from these on every
start. A roll author imports them as `from provisioner.specs import CommandRef, ...`.

The VM driver contract (`VmDriver` and what its methods take: `VmConfig`, `VmNic`,
`VmDiskSpec`, `VmBoot`, `ConsoleInfo`, `VmError`) is what the `... host vm` commands ask of a
hypervisor. A roll brings its own by returning an object that follows `VmDriver` from the
`register_vm_drivers` hook; a VM container picks a driver by name with its `vm_driver`
attribute. Drivers get a `VmConfig` — everything the database knows about one VM, resolved for
its container — and never touch the database themselves, so a command can roll its
transaction back when a driver fails. A driver reports failures by raising `VmError` (or any
exception); the commands turn them into one line naming the VM and its container.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol, runtime_checkable

from provisioner.errors import ProvisionerError


@dataclass(frozen=True)
class CommandRef:
    """A command contributed by a roll. `target` is the Command class or, to keep start-up
    light, a "package.module:Class" string imported only when the command runs."""

    name: str
    target: str | type[Any]
    roll: str = ""

    @property
    def words(self) -> tuple[str, ...]:
        return tuple(self.name.split())


@dataclass(frozen=True)
class ApplianceSpec:
    """An appliance with its membership, the root node of its graph traversal (empty: not
    installed by us) and the appliance-level attributes `rocks init frontend` gives it."""

    name: str
    membership: str
    node: str = ""
    graph: str = "default"
    public: bool = False
    attrs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BootActionSpec:
    """A named boot action: a kernel (file name, URL, or a raw pxelinux line such as
    "localboot 0"), a ramdisk and kernel arguments."""

    action: str
    kernel: str = ""
    ramdisk: str = ""
    args: str = ""


@dataclass(frozen=True)
class AttrSpec:
    """A documented attribute with its default global value (None: documented, not set)."""

    name: str
    default: str | None
    doc: str
    level: str = "G"


# -- the VM driver contract ---------------------------------------------------------------------

#: States a driver reports, as Rocks listed them. `nostate`: not defined on the container (or
#: the container cannot be reached); `active` covers running and blocked.
VM_STATES = ("active", "paused", "shutdown", "shutoff", "crashed", "nostate")

#: Called with (bytes done, bytes in all) while a move copies files.
Progress = Callable[[int, int], None]


class VmError(ProvisionerError):
    """A hypervisor refused or failed an operation; the message is the hypervisor's, one line."""


@dataclass(frozen=True)
class VmNic:
    """One network interface: its MAC, the container's bridge it plugs into, and its VLAN."""

    mac: str
    bridge: str
    device: str = "eth0"
    vlan: int | None = None
    model: str = "e1000"


@dataclass(frozen=True)
class VmDiskSpec:
    """One virtual disk. `vbd_type` is `file` (an image file, created sparse when missing) or
    `phy` (a block device); `size_gb` counts 10^9 bytes, as Rocks did."""

    path: str
    device: str = "hda"
    size_gb: int = 36
    vbd_type: str = "file"
    mode: str = "w"


@dataclass(frozen=True)
class VmBoot:
    """A direct kernel boot (para-virtual installs): paths on the container and arguments."""

    kernel: str
    initrd: str = ""
    cmdline: str = ""


@dataclass(frozen=True)
class VmConfig:
    """One VM as the driver sees it.

    `uri` is the container's hypervisor address (its `vm_uri` attribute) and `driver` the
    name of the driver it chose (`vm_driver`); `state_file` is where `save` writes by default,
    on the container; `boot` is set when the VM boots a kernel directly instead of from the
    network and then its disk.
    """

    name: str
    container: str
    uri: str
    mem_mb: int = 1024
    cpus: int = 1
    virt_type: str = "hvm"
    nics: tuple[VmNic, ...] = ()
    disks: tuple[VmDiskSpec, ...] = ()
    state_file: str = ""
    boot: VmBoot | None = None
    arch: str = "x86_64"
    driver: str = "libvirt"

    @property
    def where(self) -> str:
        return f"VM {self.name} on container {self.container}"


@dataclass(frozen=True)
class ConsoleInfo:
    """How to reach a VM's console. `lines` are for people (`rocks open host console`);
    `serial` is the serial device on the container (a pty path) when known, `vnc` the
    `host:port` of its graphical console when it has one and runs."""

    lines: tuple[str, ...]
    serial: str | None = None
    vnc: str | None = None
    can_attach: bool = False


@runtime_checkable
class VmDriver(Protocol):
    """A hypervisor driver. Every method acts on one VM and raises on failure.

    `define` creates or replaces the persistent definition from the config (and creates
    missing disk files it can reach); `start` boots a defined VM; `stop` is a hard power-off
    (Rocks' destroy); `save` writes the memory state to a file and stops the VM, `restore`
    resumes from such a file; `undefine` stops the VM if it runs and forgets it (no error
    when it is not defined). `move` takes the VM, running or not, from `vm.container` to
    `target.container`: on failure or interruption it must leave the VM defined, in the same
    state, where it was. `describe` is the definition text `define` would use (`rocks report
    host vm` prints it).
    """

    name: str

    def describe(self, vm: VmConfig) -> str: ...

    def define(self, vm: VmConfig) -> None: ...

    def undefine(self, vm: VmConfig) -> None: ...

    def start(self, vm: VmConfig) -> None: ...

    def stop(self, vm: VmConfig) -> None: ...

    def pause(self, vm: VmConfig) -> None: ...

    def resume(self, vm: VmConfig) -> None: ...

    def save(self, vm: VmConfig, path: str) -> None: ...

    def restore(self, vm: VmConfig, path: str) -> None: ...

    def status(self, vm: VmConfig) -> str: ...

    def move(self, vm: VmConfig, target: VmConfig, progress: Progress) -> None: ...

    def console(self, vm: VmConfig) -> ConsoleInfo: ...

    def attach_console(self, vm: VmConfig, stdin: BinaryIO, stdout: BinaryIO) -> None: ...
