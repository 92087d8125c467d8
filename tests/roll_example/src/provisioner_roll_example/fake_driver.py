"""A VM driver without a hypervisor: VMs are entries in a dict, as a roll bringing its own
hypervisor would keep them somewhere. It follows `provisioner.specs.VmDriver`."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any, BinaryIO

from provisioner.specs import ConsoleInfo, Progress, VmConfig, VmError

#: (container, vm name) -> {"state": ..., "config": VmConfig, "saved": path}
VMS: dict[tuple[str, str], dict[str, Any]] = {}
CALLS: list[tuple[str, str]] = []


class FakeDriver:
    name = "fake"

    def _get(self, vm: VmConfig) -> dict[str, Any]:
        found = VMS.get((vm.container, vm.name))
        if found is None:
            raise VmError("no such fake VM")
        return found

    def _set(self, vm: VmConfig, op: str, need: tuple[str, ...], state: str) -> None:
        entry = self._get(vm)
        if entry["state"] not in need:
            raise VmError(f"fake VM is {entry['state']}, cannot {op}")
        entry["state"] = state
        CALLS.append((op, vm.name))

    def describe(self, vm: VmConfig) -> str:
        return json.dumps({"fake": asdict(vm)}, sort_keys=True)

    def define(self, vm: VmConfig) -> None:
        entry = VMS.setdefault((vm.container, vm.name), {"state": "shutoff"})
        entry["config"] = vm
        CALLS.append(("define", vm.name))

    def undefine(self, vm: VmConfig) -> None:
        VMS.pop((vm.container, vm.name), None)
        CALLS.append(("undefine", vm.name))

    def start(self, vm: VmConfig) -> None:
        self._set(vm, "start", ("shutoff",), "active")

    def stop(self, vm: VmConfig) -> None:
        self._set(vm, "stop", ("active", "paused"), "shutoff")

    def pause(self, vm: VmConfig) -> None:
        self._set(vm, "pause", ("active",), "paused")

    def resume(self, vm: VmConfig) -> None:
        self._set(vm, "resume", ("paused",), "active")

    def save(self, vm: VmConfig, path: str) -> None:
        self._set(vm, "save", ("active", "paused"), "shutoff")
        self._get(vm)["saved"] = path

    def restore(self, vm: VmConfig, path: str) -> None:
        if self._get(vm).get("saved") != path:
            raise VmError(f"nothing saved at {path}")
        self._set(vm, "restore", ("shutoff",), "active")

    def status(self, vm: VmConfig) -> str:
        entry = VMS.get((vm.container, vm.name))
        return "nostate" if entry is None else entry["state"]

    def move(self, vm: VmConfig, target: VmConfig, progress: Progress) -> None:
        entry = VMS.pop((vm.container, vm.name))
        progress(1, 2)
        progress(2, 2)
        entry["config"] = target
        VMS[(target.container, target.name)] = entry
        CALLS.append(("move", vm.name))

    def console(self, vm: VmConfig) -> ConsoleInfo:
        active = self.status(vm) == "active"
        return ConsoleInfo((f"fake console of {vm.name}",), serial="fake-pty", can_attach=active)

    def attach_console(self, vm: VmConfig, stdin: BinaryIO, stdout: BinaryIO) -> None:
        stdout.write(f"{vm.name} login: ".encode())
        typed = stdin.read()
        stdout.write(typed.upper())
        stdout.flush()
