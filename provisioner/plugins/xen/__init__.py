"""The Xen roll: VM containers, hosted VMs and virtual clusters through libvirt.

Registered like any third-party roll (entry point `xen` in the `provisioner` group). It adds the
`... host vm` and `... cluster` commands, the vm-container and hosted-vm appliances, the
`install vm` boot actions, the VM attributes and the `libvirt` VM driver; other rolls can add
VM drivers of their own (`register_vm_drivers`), chosen per container by `vm_driver`.
This module stays light: libvirt and SQLAlchemy are imported only when a VM command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from provisioner.hookspecs import hookimpl
from provisioner.plugins.xen.attributes import ATTRIBUTES
from provisioner.specs import ApplianceSpec, AttrSpec, BootActionSpec, CommandRef

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from provisioner.db.models import Host
    from provisioner.db.reader import Reader
    from provisioner.hooks import Hooks
    from provisioner.plugins.xen.driver import VmDriver

_C = "provisioner.plugins.xen.commands."

COMMANDS: dict[str, str] = {
    "add host vm": "vm:AddHostVm",
    "list host vm": "vm:ListHostVm",
    "set host vm": "vm:SetHostVm",
    "report host vm": "vm:ReportHostVm",
    "dump host vm": "vm:DumpHostVm",
    "remove host vm": "vm:RemoveHostVm",
    "create host vm": "power:CreateHostVm",
    "start host vm": "power:StartHostVm",
    "stop host vm": "power:StopHostVm",
    "pause host vm": "power:PauseHostVm",
    "resume host vm": "power:ResumeHostVm",
    "save host vm": "power:SaveHostVm",
    "restore host vm": "power:RestoreHostVm",
    "move host vm": "power:MoveHostVm",
    "open host console": "console:OpenHostConsole",
    "add cluster": "cluster:AddCluster",
    "list cluster": "cluster:ListCluster",
}

# Para-virtual installs boot these kernels on the container itself (Rocks' rocks-boot-xen).
_XEN_KERNEL = "file:///boot/kickstart/xen/vmlinuz"
_XEN_RAMDISK = "file:///boot/kickstart/xen/initrd-xen.iso.gz"
_VM_ARGS = "ks ramdisk_size=150000 lang= devfs=nomount kssendmac selinux=0 noipv6"
_VM_FRONTEND_ARGS = (
    "ramdisk_size=150000 lang= devfs=nomount pxe kssendmac selinux=0 noipv6 "
    "ks=http://&Kickstart_PublicHostname;/install/sbin/kickstart.cgi ksdevice=eth1 build"
)


@hookimpl
def register_commands() -> list[CommandRef]:
    return [CommandRef(name, _C + target) for name, target in COMMANDS.items()]


@hookimpl
def register_appliances() -> list[ApplianceSpec]:
    return [
        ApplianceSpec(
            "vm-container",
            "VM Container",
            node="vm-container",
            public=True,
            attrs={
                "kickstartable": "yes",
                "dhcp_filename": "lpxelinux.0",
                "managed": "true",
                "xen": "true",
            },
        ),
        ApplianceSpec("hosted-vm", "Hosted VM", attrs={"kickstartable": "no"}),
    ]


@hookimpl
def register_bootactions() -> list[BootActionSpec]:
    return [
        BootActionSpec("install vm", _XEN_KERNEL, _XEN_RAMDISK, _VM_ARGS),
        BootActionSpec("install vm frontend", _XEN_KERNEL, _XEN_RAMDISK, _VM_FRONTEND_ARGS),
    ]


@hookimpl
def register_attributes() -> list[AttrSpec]:
    return list(ATTRIBUTES)


@hookimpl
def node_directories() -> list[Path]:
    return [Path(__file__).parent]


@hookimpl
def migration_directories() -> list[Path]:
    return [Path(__file__).parent / "migrations"]


@hookimpl
def register_vm_drivers() -> list[VmDriver]:
    from provisioner.plugins.xen.libvirt_driver import LibvirtDriver

    return [LibvirtDriver()]


@hookimpl
def virtual_hosts(reader: Reader) -> list[int]:
    from provisioner.plugins.xen.queries import vm_host_ids

    return vm_host_ids(reader)


@hookimpl
def host_removing(session: Session, host: Host, hooks: Hooks) -> None:
    # A container keeps its VMs' disks and domains: refuse rather than orphan them. A VM's
    # domain goes with its host (its rows go by cascade).
    from provisioner.db.reader import Reader
    from provisioner.errors import Vetoed
    from provisioner.plugins.xen import power, queries, vmconfig
    from provisioner.services.hostargs import host_by_id

    reader = Reader.for_session(session)
    held = queries.vms_on(reader, host.id)
    if held:
        shown = ", ".join(held[:3]) + (f" and {len(held) - 3} more" if len(held) > 3 else "")
        raise Vetoed(
            f"{host.name} holds VMs ({shown}): move them ('rocks move host vm') "
            "or remove them first"
        )
    vm = queries.vm_of(reader, host_by_id(reader, host.id))
    if vm is not None:
        cfg = vmconfig.vm_config(reader, vm, vmconfig.Containers(reader))
        try:
            power.call(hooks, cfg, "undefine", lambda d: d.undefine(cfg))
        except Exception as exc:
            raise Vetoed(str(exc)) from None
