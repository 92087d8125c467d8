"""Node discovery (insert-ethers): turn it on and off, and see what it found."""

from __future__ import annotations

from typing import Any

from provisioner.cli.command import Command, Param
from provisioner.cli.context import Context
from provisioner.plugins.base.commands._common import HOSTS_OPTIONAL


class EnableDiscovery(Command):
    """Register every unknown machine that asks DHCP for an address as a new host.

    Names are <appliance>-<rack>-<rank> with the next free rank; addresses count down from the
    top of the private network; the new host's next boot installs it. Power the machines on in
    the order you want their ranks.
    """

    name = "enable discovery"
    writes = True
    params = (
        Param("appliance", "Appliance of the new hosts.", default="compute", positional=True),
        Param("rack", "Rack of the new hosts.", "int", 0),
        Param("rank", "First rank (default: after the highest in that rack).", "int"),
    )
    examples = (("rocks enable discovery appliance=compute rack=1", "Discover rack 1."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.discovery import enable

        enable(ctx.session, params["appliance"], params["rack"], params["rank"])
        ctx.write(f"discovery on: new machines become {params['appliance']}-{params['rack']}-N")


class DisableDiscovery(Command):
    """Stop registering unknown machines."""

    name = "disable discovery"
    writes = True
    examples = (("rocks disable discovery", "Done adding nodes."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.discovery import disable

        ctx.write("discovery off" if disable(ctx.session) else "discovery was already off")


class ListDiscovery(Command):
    """Show whether discovery is on, and the hosts it found with their install progress."""

    name = "list discovery"
    table = True
    examples = (("rocks list discovery", "What insert-ethers would show."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.discovery import recent, state

        now = state(ctx.reader)
        if now is None or not now.enabled:
            ctx.write("discovery is off")
        else:
            ctx.write(f"discovery is on: appliance {now.appliance}, rack {now.rack}")
        if now is None:
            return
        out = ctx.table(["host", "mac", "ip", "discovered", "status"])
        for name, mac, ip, created, last in recent(ctx.reader):
            out.row(name, mac, ip, str(created), STATUS.get(last, last))


# What the last install event of a discovered host means to someone watching.
STATUS = {
    "discovered": "waiting for kickstart",
    "kickstart": "kickstart sent",
    "partitions": "installing",
    "pre": "installing",
    "post": "installing",
    "done": "installed",
    "failed": "FAILED",
}


class ListHostEvent(Command):
    """List the install events hosts reported (kickstart sent, partitions, done, failed...)."""

    name = "list host event"
    table = True
    args = (HOSTS_OPTIONAL,)
    params = (Param("last", "Only the last N events per host.", "int", 20),)
    examples = (("rocks list host event compute-0-0", "How its install went."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        hosts = ctx.hosts(args)
        names = {h.id: h.name for h in hosts}
        from provisioner.services.events import events_of

        rows = events_of(ctx.reader, list(names))
        per: dict[int, list[tuple[Any, ...]]] = {}
        for row in rows:
            per.setdefault(row[0], []).append(row)
        out = ctx.table(["host", "time", "event", "detail"])
        for h in hosts:
            for _id, created, event, detail in per.get(h.id, [])[-max(params["last"], 1) :]:
                out.row(names[h.id], str(created), event, detail)
