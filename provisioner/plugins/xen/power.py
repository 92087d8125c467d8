"""Driving VMs through their container's driver (R5: the hook registered the driver, the
`VmDriver` Protocol behaves). Every failure becomes one line naming the VM and its container,
whatever the driver raised."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from provisioner.plugins.xen.driver import VmConfig, VmDriver, VmError

if TYPE_CHECKING:
    from provisioner.hooks import Hooks

T = TypeVar("T")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    line = text.splitlines()[0]
    from provisioner.errors import ProvisionerError

    return line if isinstance(exc, ProvisionerError) else f"{type(exc).__name__}: {line}"


def call(hooks: Hooks, vm: VmConfig, verb: str, fn: Callable[[VmDriver], T]) -> T:
    """Run `fn(driver)` for `vm`; any failure reads `cannot <verb> VM x on container y: why`."""
    try:
        driver = hooks.vm_driver(vm.driver)
        return fn(driver)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # noqa: BLE001 - drivers are plugins: any failure is one line
        raise VmError(f"cannot {verb} {vm.where}: {first_line(exc)}") from None


def status(hooks: Hooks, vm: VmConfig) -> str:
    """The VM's state; `nostate` when its container cannot tell (listings must not fail)."""
    try:
        return call(hooks, vm, "query", lambda d: d.status(vm))
    except VmError:
        return "nostate"


def define_and_start(hooks: Hooks, vm: VmConfig) -> None:
    call(hooks, vm, "define", lambda d: d.define(vm))
    call(hooks, vm, "start", lambda d: d.start(vm))
