"""add/list cluster: virtual clusters, a frontend VM and its compute VMs on their own VLAN."""

from __future__ import annotations

from typing import Any

from provisioner.cli.command import Arg, Command, Param
from provisioner.cli.context import Context


class AddCluster(Command):
    """Add a virtual cluster: a frontend VM and compute VMs, isolated on a new VLAN.

    The frontend VM (frontend-<rack>-<rank>-<slice>) goes on the physical frontend (or
    fe-container=) with two interfaces: eth0 on the cluster's VLAN, eth1 on the public network
    with the given address and name. The compute VMs (Hosted VM) go round-robin on the VM
    containers (container-hosts=, default: every VM Container host), each with one interface
    on the VLAN. The containers get a vlan<N> interface for it. Start the frontend with
    'rocks start host vm <fqdn>'.
    """

    name = "add cluster"
    writes = True
    args = (
        Arg("fqdn", "Public name of the virtual frontend (vi-1.rocksclusters.org)."),
        Arg("ip", "Public IP address of the virtual frontend."),
        Arg("num-computes", "Number of compute VMs."),
    )
    params = (
        Param("container-hosts", "VM containers for the computes, space or comma separated."),
        Param("cpus-per-compute", "Virtual CPUs of each compute VM.", "int", 1),
        Param("disk-per-compute", "Disk of each compute VM in GB.", "int", 36),
        Param("disk-per-frontend", "Disk of the frontend VM in GB.", "int", 36),
        Param("mem-per-compute", "Memory of each compute VM in MB.", "int", 1024),
        Param("vlan", "VLAN id of the cluster, 2 to 4094. Default: the next free one.", "int"),
        Param("fe-container", "Host of the frontend VM. Default: the physical frontend."),
        Param(
            "virt-type",
            "para or hvm. Default: para on Xen containers, else hvm.",
            "choice",
            choices=("para", "hvm"),
        ),
    )
    examples = (
        (
            "rocks add cluster vi-1.rocksclusters.org 137.110.119.118 2",
            "A virtual frontend and two compute VMs.",
        ),
    )

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.errors import NotFound, UsageError
        from provisioner.plugins.xen.planner import add_cluster

        try:
            computes = int(args[2])
        except ValueError:
            raise UsageError(f"num-computes must be a whole number, not '{args[2]}'") from None
        if params["fe-container"]:
            fe = ctx.host(params["fe-container"])
        else:
            fronts = [h for h in ctx.hosts(["frontend"]) if not _is_vm(ctx, h.id)]
            if not fronts:
                raise NotFound("no physical frontend host: give fe-container=")
            fe = fronts[0]
        if params["container-hosts"]:
            words = params["container-hosts"].replace(",", " ").split()
            containers = ctx.hosts(words, at_least_one=True)
        else:
            containers = ctx.hosts(["vm-container"])
        result = add_cluster(
            ctx.session,
            ctx.hooks,
            args[0],
            args[1],
            computes,
            fe,
            containers,
            vlan=params["vlan"],
            cpus=params["cpus-per-compute"],
            mem=params["mem-per-compute"],
            disk_compute=params["disk-per-compute"],
            disk_frontend=params["disk-per-frontend"],
            virt_type=params["virt-type"],
        )
        lines = [f"created frontend VM named: {result.frontend}"]
        lines += [f"created compute VM named: {name}" for name in result.computes]
        ctx.write("\n".join(lines))


def _is_vm(ctx: Context, host_id: int) -> bool:
    from provisioner.plugins.xen import queries

    return queries.is_vm(ctx.reader, host_id)


class ListCluster(Command):
    """List clusters: each frontend (by its public name) and its client nodes.

    A physical frontend's clients are the hosts that are neither VMs nor frontends; a virtual
    frontend's clients are the VMs on the VLAN of its private interface. status=y shows each
    VM's state on its container.
    """

    name = "list cluster"
    table = True
    args = (Arg("frontend", "Frontends to show (default: all).", optional=True, repeat=True),)
    params = (Param("status", "Show the state of VMs.", "bool", False),)
    examples = (
        ("rocks list cluster", "Every cluster."),
        ("rocks list cluster status=y", "With the state of each VM."),
    )

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.plugins.xen import power, queries, vmconfig
        from provisioner.services.networks import subnet_id

        hosts = ctx.hosts([])
        fronts = [h for h in hosts if h.appliance == "frontend"]
        if args:
            wanted = {h.id for h in ctx.hosts(args)}
            fronts = [h for h in fronts if h.id in wanted]
        vm_rows = {v.host.id: v for v in queries.list_vms(ctx.reader)}
        nics = queries.nics_of(ctx.reader, [h.id for h in hosts])
        public = subnet_id(ctx.reader, "public")
        containers = vmconfig.Containers(ctx.reader)
        header = ["frontend", "client nodes", "type"] + (["status"] if params["status"] else [])
        out = ctx.table(header)

        def state(host_id: int) -> str | None:
            vm = vm_rows.get(host_id)
            if not params["status"] or vm is None:
                return None
            cfg = vmconfig.vm_config(ctx.reader, vm, containers, disks=[], nics=[], boot=False)
            return power.status(ctx.hooks, cfg)

        def row(owner: str | None, client: str | None, kind: str, host_id: int) -> None:
            values: list[Any] = [client, kind]
            if params["status"]:
                values.append(state(host_id))
            out.row(owner, *values)

        for fe in fronts:
            fe_nics = nics[fe.id]
            name = next((n.name for n in fe_nics if n.subnet_id == public and n.name), None)
            name = name or f"{fe.name}-public"
            if fe.id in vm_rows:
                vlans = {n.vlan for n in fe_nics if n.vlan and n.subnet_id != public}
                clients = [
                    h
                    for h in hosts
                    if h.id in vm_rows
                    and h.appliance != "frontend"
                    and any(n.vlan in vlans for n in nics[h.id])
                ]
                kind = "VM"
            else:
                clients = [h for h in hosts if h.id not in vm_rows and h.appliance != "frontend"]
                kind = "physical"
            row(name, None, kind, fe.id)
            for client in clients:
                row(None, client.name, "VM" if client.id in vm_rows else "physical", client.id)
