"""Attributes at every level: list, set, remove; and `report host attr` (site.attrs)."""

from __future__ import annotations

from typing import Any

from provisioner.cli.command import Arg, Command, Param
from provisioner.cli.context import Context
from provisioner.plugins.base.commands._common import HOSTS, HOSTS_OPTIONAL

_ATTR = Param("attr", "Attribute name.", required=True, positional=True)
_VALUE = Param("value", "Attribute value.", required=True, positional=True)
_ATTR_FILTER = Param("attr", "Show only this attribute.")
_APPLIANCE = Arg("appliance", "Appliance name, e.g. compute.")
_OS = Arg("os", "Operating system, e.g. linux.")


class ListAttr(Command):
    """List the global attributes."""

    name = "list attr"
    table = True
    args = (Arg("attr", "Attribute names; none means all.", optional=True, repeat=True),)
    examples = (("rocks list attr", "All global attributes."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.attrs import global_attrs

        values = global_attrs(ctx.reader)
        out = ctx.table(["attr", "value"])
        for key in sorted(values):
            if not args or key in args:
                out.row(key, values[key])


class SetAttr(Command):
    """Set a global attribute (level G)."""

    name = "set attr"
    writes = True
    params = (_ATTR, _VALUE)
    examples = (("rocks set attr Kickstart_Timezone Europe/Paris", "Install hosts in Paris time."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.attrs import set_global

        set_global(ctx.session, params["attr"], params["value"])


class RemoveAttr(Command):
    """Remove a global attribute."""

    name = "remove attr"
    writes = True
    params = (_ATTR,)
    examples = (("rocks remove attr x11", "Remove the global x11 attribute."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.attrs import remove, require_removed

        require_removed(remove(ctx.session, "global", params["attr"]), params["attr"], "globally")


class ListApplianceAttr(Command):
    """List appliance attributes (level A)."""

    name = "list appliance attr"
    table = True
    args = (Arg("appliance", "Appliance names; none means all.", optional=True, repeat=True),)
    params = (_ATTR_FILTER,)
    examples = (("rocks list appliance attr compute", "Attributes of compute appliances."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.appliances import appliance_id
        from provisioner.services.attrs import appliance_attrs

        ids = [appliance_id(ctx.reader, a) for a in args]
        rows = (
            appliance_attrs(ctx.reader)
            if not ids
            else [r for i in ids for r in appliance_attrs(ctx.reader, i)]
        )
        out = ctx.table(["appliance", "attr", "value"])
        for appliance, attr, value in rows:
            if params["attr"] is None or attr == params["attr"]:
                out.row(appliance, attr, value)


class SetApplianceAttr(Command):
    """Set an attribute for every host of an appliance (level A)."""

    name = "set appliance attr"
    writes = True
    args = (_APPLIANCE,)
    params = (_ATTR, _VALUE)
    examples = (("rocks set appliance attr compute x11 true", "Give compute hosts a desktop."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.appliances import appliance_id
        from provisioner.services.attrs import set_appliance

        set_appliance(
            ctx.session, appliance_id(ctx.reader, args[0]), params["attr"], params["value"]
        )


class RemoveApplianceAttr(Command):
    """Remove an appliance attribute."""

    name = "remove appliance attr"
    writes = True
    args = (_APPLIANCE,)
    params = (_ATTR,)
    examples = (("rocks remove appliance attr compute x11", "Back to the global x11."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.appliances import appliance_id
        from provisioner.services.attrs import remove, require_removed

        count = remove(ctx.session, "appliance", params["attr"], appliance_id(ctx.reader, args[0]))
        require_removed(count, params["attr"], f"for appliance {args[0]}")


class ListOsAttr(Command):
    """List OS attributes (level O)."""

    name = "list os attr"
    table = True
    args = (Arg("os", "Operating systems; none means all.", optional=True, repeat=True),)
    params = (_ATTR_FILTER,)
    examples = (("rocks list os attr linux", "Attributes of Linux hosts."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.attrs import os_attrs

        out = ctx.table(["os", "attr", "value"])
        for os, attr, value in os_attrs(ctx.reader):
            if (not args or os in args) and (params["attr"] is None or attr == params["attr"]):
                out.row(os, attr, value)


class SetOsAttr(Command):
    """Set an attribute for every host running an OS (level O)."""

    name = "set os attr"
    writes = True
    args = (_OS,)
    params = (_ATTR, _VALUE)
    examples = (("rocks set os attr linux HttpRoot /var/www/html", "An OS-wide attribute."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.attrs import set_os

        set_os(ctx.session, args[0], params["attr"], params["value"])


class RemoveOsAttr(Command):
    """Remove an OS attribute."""

    name = "remove os attr"
    writes = True
    args = (_OS,)
    params = (_ATTR,)
    examples = (("rocks remove os attr linux HttpRoot", "Remove it."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.attrs import remove, require_removed

        count = remove(ctx.session, "os", params["attr"], args[0])
        require_removed(count, params["attr"], f"for os {args[0]}")


class ListHostAttr(Command):
    """List every attribute of hosts, with the level it comes from.

    SOURCE is I (intrinsic), G (global), O (OS), A (appliance) or H (host); a later level
    overrides an earlier one.
    """

    name = "list host attr"
    table = True
    args = (HOSTS_OPTIONAL,)
    params = (_ATTR_FILTER,)
    examples = (("rocks list host attr compute-0-0", "Everything compute-0-0 installs with."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.attrs import host_attrs

        out = ctx.table(["host", "attr", "value", "source"])
        for host in ctx.hosts(args):
            values = host_attrs(ctx.reader, host)
            for key in sorted(values):
                if params["attr"] is None or key == params["attr"]:
                    out.row(host.name, key, values[key].value, values[key].source)


class SetHostAttr(Command):
    """Set an attribute of hosts (level H, overrides every other level)."""

    name = "set host attr"
    writes = True
    args = (HOSTS,)
    params = (_ATTR, _VALUE)
    examples = (
        (
            "rocks set host attr vi-1 Kickstart_PublicHostname vi-1.rocksclusters.org",
            "As in the seed.",
        ),
        ("rocks set host attr compute-0-0 attr=x11 value=true", "The key=value form."),
    )

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.attrs import set_host

        for host in ctx.hosts(args, at_least_one=True):
            set_host(ctx.session, host.id, params["attr"], params["value"])


class RemoveHostAttr(Command):
    """Remove a host attribute (the host falls back to the other levels)."""

    name = "remove host attr"
    writes = True
    args = (HOSTS,)
    params = (_ATTR,)
    examples = (("rocks remove host attr compute-0-0 x11", "Back to the appliance's x11."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.attrs import remove, require_removed

        hosts = ctx.hosts(args, at_least_one=True)
        count = sum(remove(ctx.session, "host", params["attr"], h.id) for h in hosts)
        require_removed(count, params["attr"], "for " + ", ".join(h.name for h in hosts))


class ReportHostAttr(Command):
    """Print the attributes of hosts as `key:value` lines (the site.attrs format).

    With pydict=yes, a Python dict literal; with attr=X, the value of X alone.
    """

    name = "report host attr"
    args = (HOSTS_OPTIONAL,)
    params = (
        Param("attr", "Print only this attribute's value."),
        Param("pydict", "Print a Python dict literal.", "bool", False),
    )
    examples = (
        ("rocks report host attr vi-1 > site.attrs", "A lights-out frontend's site.attrs."),
    )

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.errors import NotFound
        from provisioner.services.attrs import host_attr_values

        hosts = ctx.hosts(args)
        for host in hosts:
            values = host_attr_values(ctx.reader, host)
            prefix = f"{host.name}: " if len(hosts) > 1 else ""
            if params["attr"] is not None:
                if params["attr"] not in values:
                    raise NotFound(f"attribute '{params['attr']}' is not set for {host.name}")
                ctx.write(prefix + values[params["attr"]])
            elif params["pydict"]:
                ctx.write(prefix + repr(dict(sorted(values.items()))))
            elif prefix:
                ctx.write("".join(f"{prefix}{k}:{values[k]}\n" for k in sorted(values)))
            else:
                from provisioner.services.rolls import site_attrs

                ctx.write(site_attrs(values))
