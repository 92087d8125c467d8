"""add/list/set/report/dump/remove host vm: the VM rows and what they describe."""

from __future__ import annotations

from typing import Any

from provisioner.cli.command import Arg, Command, Param
from provisioner.cli.context import Context

VMS = Arg("host", "VMs by name, IP, MAC, appliance (hosted-vm), rackN or glob.", repeat=True)
VMS_OPTIONAL = Arg(
    "host",
    "VMs, or containers (their VMs); by name, IP, MAC, appliance, rackN or glob. None: all.",
    optional=True,
    repeat=True,
)
CONTAINERS = Arg("host", "The VM container(s) to hold the new VM, one VM on each.", repeat=True)
VIRT = Param(
    "virt-type",
    "para (Xen para-virtual) or hvm (full virtual machine, PXE-boots). "
    "Default: para on a Xen container (vm_uri xen:...), else hvm.",
    "choice",
    choices=("para", "hvm"),
)


class AddHostVm(Command):
    """Add a VM to the cluster database, on a VM container.

    The VM is named <appliance>-<rack>-<rank>-<slice> after its container's rack and rank, with
    the next free slice of that container. Its MACs come from the frontend's VM range (see
    'rocks report host attr frontend attr=vm_mac_base_addr'); a VM that is not a Hosted VM gets
    the next free address of subnet= on eth0. Its disk image goes to vm_disk_dir on the
    container (default: xen/disks on its largest partition). 'rocks create host vm' installs it.
    """

    name = "add host vm"
    writes = True
    args = (CONTAINERS,)
    params = (
        Param("membership", "Membership of the VM (Compute, 'Hosted VM', ...).", required=True),
        Param("mem", "Memory in MB.", "int", 1024),
        Param("cpus", "Number of virtual CPUs.", "int", 1),
        Param("disksize", "Size of the disk image in GB.", "int", 36),
        Param("num-macs", "Number of network interfaces (eth0, eth1...).", "int", 1),
        Param("vlan", "VLAN per interface, comma separated; none for no VLAN (5,none)."),
        VIRT,
        Param("subnet", "Network of eth0's address (not for Hosted VMs).", default="private"),
        Param("disk", "Disk instead of the default: file:/path/image,hda,w or phy:/dev/x,hda,w."),
    )
    examples = (
        (
            'rocks add host vm vm-container-0-0 membership="Compute"',
            "A compute VM on vm-container-0-0, e.g. compute-0-0-0.",
        ),
        (
            'rocks add host vm vm-container-0-1 membership="Hosted VM" mem=2048 num-macs=2',
            "A bigger hosted VM with two interfaces.",
        ),
    )

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.plugins.xen.planner import VmPlanner, VmRequest, parse_vlans

        containers = ctx.hosts(args, at_least_one=True)
        vlans = parse_vlans(params["vlan"], params["num-macs"])
        requests = [
            VmRequest(
                c,
                params["membership"],
                mem=params["mem"],
                cpus=params["cpus"],
                disksize=params["disksize"],
                num_macs=params["num-macs"],
                vlans=vlans,
                virt_type=params["virt-type"],
                subnet=params["subnet"],
                disk=params["disk"],
            )
            for c in containers
        ]
        for vm in VmPlanner(ctx.session, ctx.hooks).add(requests):
            ctx.write(
                f'added VM on node "{vm.container}" slice "{vm.slice}" with vm_name "{vm.name}"'
            )


class ListHostVm(Command):
    """List VMs: their slice, memory, CPUs, MACs and container (HOST).

    Extra MACs (and disks) appear on continuation rows. status=y asks each container's
    hypervisor: active, paused, shutdown, shutoff, crashed or nostate (not defined there).
    """

    name = "list host vm"
    table = True
    args = (VMS_OPTIONAL,)
    params = (
        Param("status", "Show each VM's state on its container.", "bool", False),
        Param(
            "showdisks", "Show each VM's disks (type:path,device,mode) and sizes.", "bool", False
        ),
    )
    examples = (
        ("rocks list host vm", "All VMs."),
        ("rocks list host vm status=y", "With their states."),
        ("rocks list host vm vm-container-0-0 showdisks=y", "The VMs on one container."),
    )

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.plugins.xen import power, queries, vmconfig

        selected = ctx.hosts(args) if args else None
        rows = queries.list_vms(ctx.reader)
        if selected is not None:
            ids = {h.id for h in selected}
            rows = [v for v in rows if v.host.id in ids or v.container.id in ids]
        nics = queries.nics_of(ctx.reader, [v.host.id for v in rows])
        disks = queries.disks_of(ctx.reader, [v.id for v in rows]) if params["showdisks"] else {}
        containers = vmconfig.Containers(ctx.reader)
        header = ["vm-host", "slice", "mem", "cpus", "mac", "host"]
        if params["status"]:
            header.append("status")
        if params["showdisks"]:
            header += ["disk", "disksize"]
        out = ctx.table(header)
        for vm in rows:
            macs = [n.mac for n in nics[vm.host.id] if n.mac]
            vm_disks = disks.get(vm.id, [])
            first: list[Any] = [vm.slice, vm.mem, vm.host.cpus, macs[0] if macs else None]
            first.append(vm.container.name)
            if params["status"]:
                cfg = vmconfig.vm_config(ctx.reader, vm, containers, disks=[], nics=[], boot=False)
                first.append(power.status(ctx.hooks, cfg))
            if params["showdisks"]:
                first += [vm_disks[0].spec, vm_disks[0].size] if vm_disks else [None, None]
            out.row(vm.host.name, *first)
            for i in range(1, max(len(macs), len(vm_disks))):
                more: list[Any] = [None, None, None, macs[i] if i < len(macs) else None, None]
                if params["status"]:
                    more.append(None)
                if params["showdisks"]:
                    d = vm_disks[i] if i < len(vm_disks) else None
                    more += [d.spec, d.size] if d else [None, None]
                out.row(vm.host.name, *more)


class SetHostVm(Command):
    """Change VMs: memory, container, slice, virtualisation type, disk.

    Changes take effect when the VM next starts ('rocks start host vm' redefines it). physnode=
    only changes the database: 'rocks move host vm' moves a VM with its disk. On a host that is
    not a VM yet, physnode= makes it one (this is how 'rocks dump host vm' output restores).
    """

    name = "set host vm"
    writes = True
    args = (VMS,)
    params = (
        Param("disk", "The first disk: file:/path/image,hda,w or phy:/dev/x,hda,w."),
        Param("disksize", "Size of the first disk in GB.", "int"),
        Param("mem", "Memory in MB.", "int"),
        Param("physnode", "The VM container that holds the VM."),
        Param("slice", "Slice number on its container.", "int"),
        Param("virt-type", "para or hvm.", "choice", choices=("para", "hvm")),
    )
    examples = (("rocks set host vm compute-0-0-0 mem=4096", "Give compute-0-0-0 4 GB."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.errors import UsageError
        from provisioner.plugins.xen.mutations import set_vm

        keys = ("disk", "disksize", "mem", "physnode", "slice", "virt-type")
        if all(params[k] is None for k in keys):
            raise UsageError(f"nothing to set: give one of {', '.join(k + '=' for k in keys)}")
        physnode = ctx.host(params["physnode"]) if params["physnode"] else None
        for h in ctx.hosts(args, at_least_one=True):
            set_vm(
                ctx.session,
                h,
                physnode=physnode,
                mem=params["mem"],
                slice_=params["slice"],
                virt_type=params["virt-type"],
                disk=params["disk"],
                disksize=params["disksize"],
            )


class ReportHostVm(Command):
    """Print the hypervisor definition of VMs (for libvirt: the domain XML).

    It is what 'rocks start host vm' defines on the VM's container: memory, CPUs, disks, one
    interface per MAC on the container's bridge for its VLAN, booting from the network first
    and then the disk, a serial console and a VNC display.
    """

    name = "report host vm"
    args = (VMS,)
    examples = (("rocks report host vm compute-0-0-0", "The libvirt XML of compute-0-0-0."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.plugins.xen import power, queries, vmconfig

        containers = vmconfig.Containers(ctx.reader)
        for h in ctx.hosts(args, at_least_one=True):
            cfg = vmconfig.vm_config(ctx.reader, queries.require_vm(ctx.reader, h), containers)
            ctx.write(power.call(ctx.hooks, cfg, "describe", lambda d, c=cfg: d.describe(c)))


class DumpHostVm(Command):
    """Print the rocks commands that recreate the VM settings of hosts.

    Each line is a 'rocks set host vm' for a host that exists (its host and interface rows come
    from dumping those); run the output with 'rocks batch'.
    """

    name = "dump host vm"
    args = (VMS_OPTIONAL,)
    examples = (("rocks dump host vm > vms.rocks", "Save every VM's settings."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.plugins.xen import queries

        rows = queries.list_vms(ctx.reader, ctx.hosts(args) if args else None)
        for line in queries.dump_lines(ctx.reader, rows):
            ctx.write(line)


class RemoveHostVm(Command):
    """Forget that hosts are VMs: undefine them on their containers, remove their VM rows.

    The hosts and their interfaces stay (remove them with 'rocks remove host', which also does
    all of this); disk images stay on the containers.
    """

    name = "remove host vm"
    writes = True
    args = (VMS,)
    examples = (("rocks remove host vm compute-0-0-0", "compute-0-0-0 is no longer a VM."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.plugins.xen import mutations, power, queries, vmconfig

        containers = vmconfig.Containers(ctx.reader)
        for h in ctx.hosts(args, at_least_one=True):
            vm = queries.require_vm(ctx.reader, h)
            cfg = vmconfig.vm_config(ctx.reader, vm, containers)
            mutations.remove_vm_rows(ctx.session, h.id)
            power.call(ctx.hooks, cfg, "undefine", lambda d, c=cfg: d.undefine(c))
