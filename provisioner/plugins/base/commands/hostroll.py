"""set/list/report/remove host roll: the rolls a frontend installs with (lights-out).

A virtual or remote frontend is given rolls by name, version and arch; `rocks report host
roll` prints them as the rolls.xml its kickstart carries, with this server's rolls URL as
that host reaches it. Its attributes, as site.attrs, are `rocks report host attr`.
"""

from __future__ import annotations

from typing import Any

from provisioner.cli.command import Arg, Command, Param
from provisioner.cli.context import Context
from provisioner.plugins.base.commands._common import HOSTS, HOSTS_OPTIONAL


class SetHostRoll(Command):
    """Assign a roll to hosts (a lights-out frontend installs with its rolls).

    The roll need not be on this server; 'rocks report host roll' lists what the host's
    installer will fetch. Assigning a roll twice changes nothing.
    """

    name = "set host roll"
    writes = True
    args = (HOSTS,)
    params = (
        Param("name", "Roll name.", required=True, positional=True),
        Param("version", "Roll version.", required=True, positional=True),
        Param("arch", "Roll architecture.", required=True, positional=True),
        Param("os", "Roll OS.", default="linux"),
    )
    examples = (
        ("rocks set host roll vi-1 base 5.2 x86_64", "As in seed 002."),
        ("rocks set host roll vi-1 name=kernel version=5.2 arch=x86_64", "The key=value form."),
    )

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.rolls import set_host_roll

        roll = (params["name"], params["version"], params["arch"], params["os"])
        for host in ctx.hosts(args, at_least_one=True):
            set_host_roll(ctx.session, host.id, *roll)


class ListHostRoll(Command):
    """List the rolls assigned to hosts."""

    name = "list host roll"
    table = True
    args = (HOSTS_OPTIONAL,)
    examples = (("rocks list host roll vi-1", "The rolls vi-1 installs with."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.rolls import host_rolls

        out = ctx.table(["host", "name", "version", "arch", "os"])
        for host in ctx.hosts(args):
            for name, version, arch, os in host_rolls(ctx.reader, host):
                out.row(host.name, name, version, arch, os)


class ReportHostRoll(Command):
    """Print a host's rolls as rolls.xml, the file its lights-out install reads.

    Each roll's url is this server's /install/rolls/ as the host reaches it: from our private
    network the address boot configs use; from elsewhere (a virtual frontend on its own VLAN)
    the host's Kickstart_PublicKickstartHost, else this server's public name.
    """

    name = "report host roll"
    args = (Arg("host", "One host, by name, IP or MAC."),)
    examples = (("rocks report host roll vi-1", "vi-1's rolls.xml."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.attrs import host_attr_values
        from provisioner.services.rolls import rolls_xml

        host = ctx.host(args[0])
        attrs = host_attr_values(ctx.reader, host)
        ctx.write(rolls_xml(ctx.config, ctx.reader, host, attrs, ctx.hooks))


class RemoveHostRoll(Command):
    """Remove rolls from hosts: all of them, or those matching name, version and arch."""

    name = "remove host roll"
    writes = True
    args = (HOSTS,)
    params = (
        Param("name", "Roll name (default: every roll).", positional=True),
        Param("version", "Only this version."),
        Param("arch", "Only this architecture."),
    )
    examples = (("rocks remove host roll vi-1 kernel", "vi-1 installs without the kernel roll."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.errors import NotFound
        from provisioner.services.rolls import remove_host_rolls

        hosts = ctx.hosts(args, at_least_one=True)
        count = sum(
            remove_host_rolls(ctx.session, h.id, params["name"], params["version"], params["arch"])
            for h in hosts
        )
        if not count:
            raise NotFound("no such roll is assigned to " + ", ".join(h.name for h in hosts))
