"""create/start/stop/pause/resume/save/restore/move host vm: power through the VM driver.

A failure is one line naming the VM and its container; commands that also change the database
do so first and roll it back when the hypervisor fails, so the two never disagree.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

from provisioner.cli.command import Arg, Command, Param
from provisioner.cli.context import Context
from provisioner.plugins.xen.commands.vm import VMS


def _configs(ctx: Context, args: list[str]) -> list[Any]:
    from provisioner.plugins.xen import queries, vmconfig

    containers = vmconfig.Containers(ctx.reader)
    return [
        vmconfig.vm_config(ctx.reader, queries.require_vm(ctx.reader, h), containers)
        for h in ctx.hosts(args, at_least_one=True)
    ]


def _boot(ctx: Context, args: list[str], install: bool) -> None:
    """Define from the database and start; para-virtual installs then flip to `os` (Rocks
    did this at start: their install kernel is in this boot's definition only)."""
    from provisioner.plugins.xen import mutations, power, queries, vmconfig
    from provisioner.services.boot import set_state

    hosts = ctx.hosts(args, at_least_one=True)
    for h in hosts:
        queries.require_vm(ctx.reader, h)
        if install:
            set_state(ctx.session, mutations.host_model(ctx.session, h.id), "install")
    ctx.session.flush()
    containers = vmconfig.Containers(ctx.reader)
    started = []
    try:
        for h in hosts:
            # Read again: the row now carries the boot action just set.
            cfg = vmconfig.vm_config(ctx.reader, queries.require_vm(ctx.reader, h), containers)
            if power.status(ctx.hooks, cfg) in ("active", "paused"):
                # Starting a running VM is done already; redefining it under itself is not.
                then = " (it installs at its next boot)" if install else ""
                ctx.write(f"{cfg.name} is already running on {cfg.container}{then}")
                continue
            power.define_and_start(ctx.hooks, cfg)
            started.append(cfg)
            if cfg.boot is not None:
                set_state(ctx.session, mutations.host_model(ctx.session, h.id), "os")
                ctx.session.flush()
                after = vmconfig.vm_config(
                    ctx.reader, queries.require_vm(ctx.reader, h), containers
                )
                power.call(ctx.hooks, after, "define", lambda d, c=after: d.define(c))
    except BaseException:
        # The transaction rolls back the boot actions of every VM named: the ones already
        # started must not run on with a state the database no longer has.
        for cfg in started:
            try:
                power.call(ctx.hooks, cfg, "stop", lambda d, c=cfg: d.stop(c))
            except Exception:  # noqa: BLE001 - the first failure is the one to report
                pass
        raise


class CreateHostVm(Command):
    """Install VMs: set their boot action to install, define them on their containers, start.

    A full virtual machine (hvm) then PXE-boots from this server and installs like a physical
    node; a para-virtual one boots its install action's kernel directly.
    """

    name = "create host vm"
    writes = True
    args = (VMS,)
    examples = (("rocks create host vm compute-0-0-0", "Install compute-0-0-0."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        _boot(ctx, args, install=True)


class StartHostVm(Command):
    """Boot VMs: (re)define them on their containers from the database, then start them.

    Settings changed with 'rocks set host vm' take effect here. Whether the VM installs or
    boots its disk follows its boot action ('rocks set host boot').
    """

    name = "start host vm"
    writes = True
    args = (VMS,)
    examples = (("rocks start host vm compute-0-0-0", "Boot compute-0-0-0."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        _boot(ctx, args, install=False)


class _PowerCommand(Command):
    verb: ClassVar[str] = ""
    args = (VMS,)

    @abstractmethod
    def act(self, driver: Any, cfg: Any, params: dict[str, Any]) -> None:
        """The driver call of this power command."""

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.plugins.xen import power

        for cfg in _configs(ctx, args):
            power.call(ctx.hooks, cfg, self.verb, lambda d, c=cfg: self.act(d, c, params))


class StopHostVm(_PowerCommand):
    """Destroy VMs: an immediate power-off, like pulling the power cord."""

    name = "stop host vm"
    verb = "stop"
    examples = (("rocks stop host vm compute-0-0-0", "Power compute-0-0-0 off."),)

    def act(self, driver: Any, cfg: Any, params: dict[str, Any]) -> None:
        driver.stop(cfg)


class PauseHostVm(_PowerCommand):
    """Pause VMs: they stay in memory but get no CPU time, like hitting a breakpoint."""

    name = "pause host vm"
    verb = "pause"
    examples = (("rocks pause host vm compute-0-0-0", "Freeze compute-0-0-0."),)

    def act(self, driver: Any, cfg: Any, params: dict[str, Any]) -> None:
        driver.pause(cfg)


class ResumeHostVm(_PowerCommand):
    """Resume paused VMs."""

    name = "resume host vm"
    verb = "resume"
    examples = (("rocks resume host vm compute-0-0-0", "Let compute-0-0-0 run again."),)

    def act(self, driver: Any, cfg: Any, params: dict[str, Any]) -> None:
        driver.resume(cfg)


_FILE = Param(
    "file",
    "State file on the container. Default: <vm_disk_dir>/<vm>.saved.",
)


class SaveHostVm(_PowerCommand):
    """Save VMs: write their memory to a file on the container and stop them.

    Unlike pause, this frees the VM's memory and CPUs; 'rocks restore host vm' resumes it.
    """

    name = "save host vm"
    verb = "save"
    params = (_FILE,)
    examples = (("rocks save host vm compute-0-0-0", "Save compute-0-0-0's state."),)

    def act(self, driver: Any, cfg: Any, params: dict[str, Any]) -> None:
        driver.save(cfg, params["file"] or cfg.state_file)


class RestoreHostVm(_PowerCommand):
    """Restore VMs from the state 'rocks save host vm' wrote; they run on from there."""

    name = "restore host vm"
    verb = "restore"
    params = (_FILE,)
    examples = (("rocks restore host vm compute-0-0-0", "Resume compute-0-0-0."),)

    def act(self, driver: Any, cfg: Any, params: dict[str, Any]) -> None:
        driver.restore(cfg, params["file"] or cfg.state_file)


class MoveHostVm(Command):
    """Move a VM to another container: save it, copy its disk image, restore it there.

    The copy shows its progress on stderr. If anything fails or the command is interrupted,
    the VM stays where it was (running again if it was) and the database is unchanged. The
    image stays on the old container too; delete it there when the VM runs well.
    """

    name = "move host vm"
    writes = True
    args = (
        Arg("host", "The VM to move."),
        Arg("container", "The VM container to move it to."),
    )
    examples = (("rocks move host vm compute-0-0-0 vm-container-1-0", "Move compute-0-0-0."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.errors import UsageError
        from provisioner.plugins.xen import mutations, power, queries, vmconfig

        vm = queries.require_vm(ctx.reader, ctx.host(args[0]))
        target = ctx.host(args[1])
        if target.id == vm.container.id:
            raise UsageError(f"{vm.host.name} is already on {target.name}")
        if target.id == vm.host.id or queries.vm_of(ctx.reader, target) is not None:
            raise UsageError(f"'{target.name}' is a VM: a VM cannot hold VMs")
        containers = vmconfig.Containers(ctx.reader)
        source = vmconfig.vm_config(ctx.reader, vm, containers)
        moved = vmconfig.vm_config(ctx.reader, vm, containers, container=target)
        if moved.driver != source.driver:
            raise UsageError(
                f"cannot move {vm.host.name}: {vm.container.name} uses VM driver "
                f"'{source.driver}' and {target.name} '{moved.driver}'"
            )
        # The database first: a constraint failure must stop us before the hypervisor acts.
        mutations.move_rows(ctx.session, vm, target, containers.get(target).disk_dir)
        bar = ProgressBar(ctx, f"moving {vm.host.name} to {target.name}")
        try:
            power.call(ctx.hooks, source, "move", lambda d: d.move(source, moved, bar))
        finally:
            bar.finish()


class ProgressBar:
    """`moving x to y [#####-----]  48%  1.2/2.5 GB` on stderr, redrawn at most per percent."""

    WIDTH = 30

    def __init__(self, ctx: Context, label: str) -> None:
        self.ctx, self.label = ctx, label
        self.last = -1
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        pct = 100 if total <= 0 else min(100, done * 100 // total)
        if pct == self.last:
            return
        self.last = pct
        filled = pct * self.WIDTH // 100
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self.ctx.progress(
            f"\r{self.label} [{bar}] {pct:3d}%  {done / 1e9:.1f}/{total / 1e9:.1f} GB"
        )
        self.shown = True

    def finish(self) -> None:
        if self.shown:
            self.ctx.progress("\n")
