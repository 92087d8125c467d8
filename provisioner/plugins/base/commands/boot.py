"""Boot actions, boot state, boot flags; with the Rocks 5.0 pxeboot/pxeaction/pxearg forms."""

from __future__ import annotations

from typing import Any, ClassVar

from provisioner.cli.command import Arg, Command, Param
from provisioner.cli.context import Context
from provisioner.plugins.base.commands._common import HOSTS, HOSTS_OPTIONAL

_ACTION = Param("action", "Boot action name.", required=True, positional=True)
_OPTIONAL_HOST = Arg(
    "host", "A host, for its own override; none means the global actions.", optional=True
)


class AddBootaction(Command):
    """Add a global boot action: a kernel, a ramdisk and kernel arguments.

    The kernel is a file in the tftpboot directory, a URL (file:// for direct kernel boot of
    VMs, http://), or a raw pxelinux line such as 'localboot 0' or 'kernel memdisk bigraw'.
    """

    name = "add bootaction"
    writes = True
    params = (
        _ACTION,
        Param("kernel", "Kernel file, URL or pxelinux line."),
        Param("ramdisk", "Initial ramdisk file or URL."),
        Param("args", "Kernel arguments."),
    )
    examples = (
        (
            'rocks add bootaction action="install vm i386" '
            'kernel="file:///boot/kickstart/xen/vmlinuz-5.2-i386" '
            'ramdisk="file:///boot/kickstart/xen/initrd-xen.iso.gz-5.2-i386" '
            'args="ks ramdisk_size=150000 lang= devfs=nomount kssendmac selinux=0 noipv6"',
            "An i386 install action for VMs (seed 002).",
        ),
    )

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.boot import add_action

        add_action(
            ctx.session, params["action"], params["kernel"], params["ramdisk"], params["args"]
        )


class ListBootaction(Command):
    """List the global boot actions."""

    name = "list bootaction"
    table = True
    examples = (("rocks list bootaction", "All boot actions."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.boot import list_actions

        out = ctx.table(["action", "kernel", "ramdisk", "args"])
        for a in list_actions(ctx.reader):
            out.row(a.action, a.kernel, a.ramdisk, a.args)


class RemoveBootaction(Command):
    """Remove a global boot action no host uses."""

    name = "remove bootaction"
    writes = True
    params = (_ACTION,)
    examples = (('rocks remove bootaction action="install vm i386"', "Remove it."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.boot import remove_action

        remove_action(ctx.session, params["action"])


class SetHostBoot(Command):
    """Set what hosts do on their next network boot: install, os (boot the local disk) or run.

    install uses the host's install action, os and run its run action.
    """

    name = "set host boot"
    writes = True
    args = (HOSTS,)
    params = (
        Param(
            "action",
            "install, os or run.",
            "choice",
            required=True,
            positional=True,
            choices=("install", "os", "run"),
        ),
    )
    examples = (("rocks set host boot compute-0-0 action=install", "Reinstall on next boot."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.boot import set_state
        from provisioner.services.hosts import get_host

        for h in ctx.hosts(args, at_least_one=True):
            set_state(ctx.session, get_host(ctx.session, h.id), params["action"])


class ListHostBoot(Command):
    """List what hosts do on their next network boot."""

    name = "list host boot"
    table = True
    args = (HOSTS_OPTIONAL,)
    examples = (("rocks list host boot", "Every host's next boot."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        out = ctx.table(["host", "action"])
        for h in ctx.hosts(args):
            out.row(h.name, h.boot_action)


class _SetNamedAction(Command):
    which: ClassVar[str] = "installaction"
    writes = True
    args = (HOSTS,)
    params = (_ACTION,)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.boot import set_named_action
        from provisioner.services.hosts import get_host

        for h in ctx.hosts(args, at_least_one=True):
            set_named_action(ctx.session, get_host(ctx.session, h.id), self.which, params["action"])


class SetHostInstallaction(_SetNamedAction):
    """Set the boot action hosts use when they install ('none' clears it)."""

    name = "set host installaction"
    which = "installaction"
    examples = (
        ('rocks set host installaction compute-0-0 action="install headless"', "VNC install."),
    )


class SetHostInstallation(_SetNamedAction):
    """Set the boot action hosts use when they install (the seed's name for installaction)."""

    name = "set host installation"
    which = "installaction"
    examples = (
        (
            'rocks set host installation frontend-0-0-0 action="install vm frontend i386"',
            "Seed 002.",
        ),
    )


class SetHostRunaction(_SetNamedAction):
    """Set the boot action hosts use when they boot their OS ('none' clears it)."""

    name = "set host runaction"
    which = "runaction"
    examples = (("rocks set host runaction compute-0-0 action=memtest", "Test memory on boot."),)


class ListHostPxeboot(Command):
    """List the boot action each host uses on its next network boot (Rocks 5.0 form)."""

    name = "list host pxeboot"
    table = True
    args = (HOSTS_OPTIONAL,)
    examples = (("rocks list host pxeboot", "As in seed 003."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.boot import effective_action_name

        out = ctx.table(["host", "action"])
        for h in ctx.hosts(args):
            out.row(h.name, effective_action_name(h.boot_action, h.installaction, h.runaction))


class SetHostPxeboot(Command):
    """Set the boot action of hosts' next network boot by name (Rocks 5.0 form).

    A name starting with "install" becomes the install action and the host installs; any other
    (os, memtest, pxeflash...) becomes the run action and the host boots it.
    """

    name = "set host pxeboot"
    writes = True
    args = (HOSTS,)
    params = (_ACTION,)
    examples = (('rocks set host pxeboot compute-0-0 action="install ucsd"', "Seed 003."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.boot import set_pxeboot
        from provisioner.services.hosts import get_host

        for h in ctx.hosts(args, at_least_one=True):
            set_pxeboot(ctx.session, get_host(ctx.session, h.id), params["action"])


class ListHostPxearg(Command):
    """List boot actions as pxelinux COMMAND and ARGS, with a host's own overrides (5.0 form)."""

    name = "list host pxearg"
    table = True
    args = (_OPTIONAL_HOST,)
    examples = (("rocks list host pxearg compute-0-0", "As in seed 003."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.boot import list_actions, pxe_args, pxe_command

        host_id = ctx.host(args[0]).id if args else None
        out = ctx.table(["action", "command", "args"])
        for a in list_actions(ctx.reader, host_id):
            out.row(a.action, pxe_command(a.kernel), pxe_args(a.args, a.ramdisk))


class ListHostPxeaction(ListHostPxearg):
    """List boot actions as pxelinux COMMAND and ARGS, with a host's own overrides (5.0 form)."""

    name = "list host pxeaction"
    examples = (("rocks list host pxeaction compute-0-0", "As in seed 003."),)


class AddHostPxeaction(Command):
    """Add a boot action in the 5.0 form; with a host, an override for that host only.

    command= is the pxelinux kernel line ("kernel vmlinuz", "localboot 0"), args= the append
    line ("append ks initrd=initrd.img ...").
    """

    name = "add host pxeaction"
    writes = True
    args = (_OPTIONAL_HOST,)
    params = (
        Param("action", "Boot action name.", required=True),
        Param("command", "pxelinux kernel line.", required=True),
        Param("args", "pxelinux append line.", default=""),
    )
    examples = (
        (
            'rocks add host pxeaction compute-0-0 action="install" command="kernel vmlinuz" '
            'args="append ks initrd=initrd.img ramdisk_size=150000 lang= devfs=nomount pxe '
            'kssendmac selinux=0 noipv6 ucsd=rocks"',
            "Override install for compute-0-0 only (seed 003).",
        ),
    )

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.boot import add_action, from_pxe

        host_id = ctx.host(args[0]).id if args else None
        kernel, ramdisk, kargs = from_pxe(params["command"], params["args"] or "")
        add_action(ctx.session, params["action"], kernel, ramdisk, kargs, host_id=host_id)


class RemoveHostPxeaction(Command):
    """Remove a boot action in the 5.0 form; with a host, only that host's override."""

    name = "remove host pxeaction"
    writes = True
    args = (_OPTIONAL_HOST,)
    params = (Param("action", "Boot action name.", required=True),)
    examples = (('rocks remove host pxeaction compute-0-0 action="install"', "Drop the override."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.boot import remove_action

        host_id = ctx.host(args[0]).id if args else None
        remove_action(ctx.session, params["action"], host_id=host_id)


class ReportHostBootflags(Command):
    """Print the kernel flags of hosts' installed OS (their own, or the cluster default)."""

    name = "report host bootflags"
    args = (HOSTS_OPTIONAL,)
    examples = (("rocks report host bootflags", "Flags of every host (seed 003)."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.boot import bootflags

        hosts = ctx.hosts(args)
        for h in hosts:
            flags = bootflags(ctx.reader, h.id)
            ctx.write(f"{h.name}: {flags}" if len(hosts) > 1 else flags or "\n")


class SetHostBootflags(Command):
    """Set the kernel flags of hosts' installed OS; they take effect at the next install."""

    name = "set host bootflags"
    writes = True
    args = (HOSTS,)
    params = (
        Param(
            "flags",
            "Kernel arguments; empty to fall back to the default.",
            required=True,
            positional=True,
        ),
    )
    examples = (
        ('rocks set host bootflags compute-0-0 flags="dom0_mem=1024M ucsd=rocks"', "Seed 003."),
    )

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.boot import remove_bootflags, set_bootflags

        for h in ctx.hosts(args, at_least_one=True):
            if params["flags"].strip():
                set_bootflags(ctx.session, h.id, " ".join(params["flags"].split()))
            else:
                remove_bootflags(ctx.session, h.id)


class SetBootflags(Command):
    """Set the cluster's default kernel flags for installed hosts."""

    name = "set bootflags"
    writes = True
    params = (Param("flags", "Kernel arguments.", required=True, positional=True),)
    examples = (('rocks set bootflags flags="dom0_mem=1024M"', "Every host without its own."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.boot import set_bootflags

        set_bootflags(ctx.session, None, " ".join(params["flags"].split()))
