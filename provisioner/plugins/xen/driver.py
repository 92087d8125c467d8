"""The VM driver contract, as the Xen roll names it: it lives in `provisioner.specs` (the core's
typed specs, so that neither the core nor a roll bringing its own hypervisor imports this roll)
and is re-exported here for the roll's modules and for drivers written against this path.

The libvirt driver (`libvirt_driver.py`) follows it; see `provisioner.specs` for the contract.
"""

from __future__ import annotations

from provisioner.specs import (
    VM_STATES,
    ConsoleInfo,
    Progress,
    VmBoot,
    VmConfig,
    VmDiskSpec,
    VmDriver,
    VmError,
    VmNic,
)

__all__ = [
    "VM_STATES",
    "ConsoleInfo",
    "Progress",
    "VmBoot",
    "VmConfig",
    "VmDiskSpec",
    "VmDriver",
    "VmError",
    "VmNic",
]
