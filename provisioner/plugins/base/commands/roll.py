"""list roll and list roll command: the rolls this server runs and what each contributes.

A roll here is a plugin (a Python package in the `provisioner` entry-point group, like the base
and Xen rolls); roll media recorded in the database are listed with them.
"""

from __future__ import annotations

from typing import Any

from provisioner.cli.command import Arg, Command
from provisioner.cli.context import Context


def _plugin_rolls(ctx: Context) -> list[tuple[str, str, str]]:
    """(name, version, where it comes from) of every loaded roll."""
    from provisioner import __version__

    pm = ctx.hooks.pm
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    out = []
    for name, plugin in pm.list_name_plugin():
        if not name or plugin is None:
            continue
        dist = dists.get(id(plugin))
        module = getattr(plugin, "__name__", type(plugin).__name__)
        if dist is not None:
            version = str(dist.version)
            source = f"{dist.metadata['name']} ({module})"
        else:
            version, source = __version__, module
        out.append((name, version, source))
    return sorted(out, key=lambda r: (r[0] != "base", r[0]))


class ListRoll(Command):
    """List the rolls: those loaded (and disabled) on this server, and roll media on record.

    Loaded rolls are Python packages registered in the 'provisioner' entry-point group; the
    disabled_plugins setting keeps one from loading ('rocks list roll command <roll>' shows
    what a roll adds).
    """

    name = "list roll"
    table = True
    transactional = False
    examples = (("rocks list roll", "Which rolls this server runs."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        out = ctx.table(["name", "version", "arch", "enabled", "source"])
        loaded = _plugin_rolls(ctx)
        for name, version, source in loaded:
            out.row(name, version, None, True, source)
        names = {r[0] for r in loaded}
        for name in ctx.config.disabled_plugins:
            if name not in names:
                out.row(name, None, None, False, "disabled by the disabled_plugins setting")
        for name, version, arch, enabled in _media(ctx):
            out.row(name, version, arch, bool(enabled), "roll media")


def _media(ctx: Context) -> list[tuple[Any, ...]]:
    # Plugin rolls are listed without a database; media need one.
    from provisioner.db.reader import Reader
    from provisioner.errors import DatabaseError

    try:
        with Reader.connect(ctx.config.db_url, timeout=ctx.config.database_timeout) as reader:
            return reader.all("SELECT name, version, arch, enabled FROM rolls ORDER BY name, id")
    except DatabaseError:
        return []


class ListRollCommand(Command):
    """List the commands each roll adds to the rocks command line."""

    name = "list roll command"
    table = True
    transactional = False
    args = (Arg("roll", "Rolls to show (default: all loaded rolls).", optional=True, repeat=True),)
    examples = (("rocks list roll command xen", "The commands of the Xen roll."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.errors import NotFound

        registry = ctx.app.registry
        rolls = ctx.hooks.roll_names()
        for name in args:
            if name not in rolls:
                raise NotFound(f"no roll '{name}' is loaded (loaded: {', '.join(rolls)})")
        out = ctx.table(["roll", "command", "summary"])
        for roll in args or sorted(rolls, key=lambda r: (r != "base", r)):
            for ref in registry.of_roll(roll):
                try:
                    summary = registry.load(ref).summary()
                except Exception as exc:  # noqa: BLE001 - a broken command must not hide the rest
                    summary = f"(cannot be loaded: {exc})"
                out.row(roll, ref.name, summary)
