"""Rolls and distributions: add/list/enable/disable/remove roll, list roll command, create
distro, report distro (docs/rolls.md).

A roll is either roll media — packages, node files and graph files copied into the install
tree by `rocks add roll` — or a plugin (a Python package in the `provisioner` entry-point
group, like the base and Xen rolls); `rocks list roll` shows both. Commands that copy files
hold no database transaction while they copy: they stage the files first, then record the
roll and move it into place in one short transaction, undoing the move if that fails.
"""

from __future__ import annotations

from typing import Any

from provisioner.cli.command import Arg, Command, Param
from provisioner.cli.context import Context

#: Copies smaller than this show no progress bar.
PROGRESS_MIN_BYTES = 1 << 20

_ROLLS = Arg("roll", "Roll names.", repeat=True)
_VERSION = Param("version", "Only this version of the rolls.")
_ARCH = Param("arch", "Only this architecture of the rolls.")


class ProgressBar:
    """`copying roll.iso [#####-----]  48%  12.0/25.0 MB` on stderr, redrawn per percent."""

    WIDTH = 30

    def __init__(self, ctx: Context, label: str, files: bool = False) -> None:
        self.ctx, self.label, self.files = ctx, label, files
        self.last = -1
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if not self.files and total < PROGRESS_MIN_BYTES:
            return
        pct = 100 if total <= 0 else min(100, done * 100 // total)
        if pct == self.last:
            return
        self.last = pct
        filled = pct * self.WIDTH // 100
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        amount = f"{done}/{total} files" if self.files else f"{done / 1e6:.1f}/{total / 1e6:.1f} MB"
        self.ctx.progress(f"\r{self.label} [{bar}] {pct:3d}%  {amount}")
        self.shown = True

    def finish(self) -> None:
        if self.shown:
            self.ctx.progress("\n")
            self.shown = False


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


class AddRoll(Command):
    """Add rolls: copy each into the install tree, enabled, under rolls/<name>/<version>/<arch>/.

    A roll is a directory, an ISO image of one, or the http(s) URL of a roll directory another
    server publishes (.../install/rolls/<name>/<version>/<arch>/). It holds roll-<name>.xml
    (its name, version, arch and os), RPMS/, nodes/ and graphs/ (docs/rolls.md). rolls= adds
    the rolls a rolls.xml file lists, each fetched from its url (a lights-out frontend does
    this with the file its kickstart wrote). A roll that is not well formed is refused with the
    reason and nothing is copied; all the rolls named are added, or none. Large copies show a
    progress bar on stderr. 'rocks create distro' then puts their packages in the distribution;
    their node and graph files are used at once.
    """

    name = "add roll"
    transactional = False
    args = (
        Arg(
            "roll",
            "Roll directories, ISO images or URLs of roll directories.",
            optional=True,
            repeat=True,
        ),
    )
    params = (
        Param("clean", "Replace a roll of the same name, version and arch.", "bool", False),
        Param("rolls", "A rolls.xml file: add every roll it lists, from its url."),
        Param(
            "skip-missing",
            "With rolls=: pass over rolls that are not at their url (HTTP 404).",
            "bool",
            False,
        ),
    )
    examples = (
        ("rocks add roll hpc-1.0-0.x86_64.disk1.iso", "Add a roll from its ISO image."),
        ("rocks add roll /export/src/myroll", "Add a roll from a directory."),
        ("rocks add roll rolls=/tmp/rolls.xml", "Fetch the rolls a rolls.xml lists."),
    )

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from pathlib import Path

        from provisioner.db.engine import transaction
        from provisioner.errors import Conflict, UsageError
        from provisioner.rolls.media import Incoming, RollMissing, roll_dir, undo
        from provisioner.rolls.meta import BadRoll, parse_rolls_xml
        from provisioner.services.rolls import record_roll

        refs = []
        if params["rolls"]:
            path = Path(params["rolls"])
            try:
                text = path.read_text()
            except OSError as exc:
                raise UsageError(f"cannot read {path}: {exc.strerror}") from None
            refs = parse_rolls_xml(text, path)
        if not args and not params["rolls"]:
            raise UsageError("name a roll: a directory, an ISO image or a URL (or rolls=...)")
        install_dir = ctx.config.install_dir
        with Incoming(install_dir) as incoming:
            staged = []
            for source in args:
                bar = ProgressBar(ctx, f"copying {Path(source).name or source}")
                try:
                    staged.append(incoming.stage(source, bar))
                finally:
                    bar.finish()
            for ref in refs:
                bar = ProgressBar(ctx, f"fetching {ref.name} {ref.version} {ref.arch}", files=True)
                try:
                    staged.append(incoming.stage_ref(ref, bar))
                except RollMissing as exc:
                    if not params["skip-missing"]:
                        raise
                    bar.finish()
                    ctx.progress(f"warning: {exc}; skipped\n")
                finally:
                    bar.finish()
            seen: set[tuple[str, str, str]] = set()
            for s in staged:
                if s.meta.key in seen:
                    raise BadRoll(f"roll {s.meta.label} is named twice")
                seen.add(s.meta.key)
            moved = []
            try:
                with transaction(ctx.app.engine) as session:
                    replace = []
                    for s in staged:
                        new = record_roll(session, s.meta, s.source, params["clean"])
                        # A directory with no row is left from an interrupted add: replace it.
                        replace.append(params["clean"] or new)
                    try:
                        moved = incoming.install(staged, replace)
                    except FileExistsError as exc:
                        raise Conflict(f"cannot move a roll into place: {exc}") from None
            except BaseException:
                undo(moved)
                raise
            for s in staged:
                dest = roll_dir(install_dir, s.meta)
                ctx.write(f"added roll {s.meta.label} ({s.summary()}) in {dest}")


class ListRoll(Command):
    """List the rolls: roll media in the install tree and plugin rolls loaded on this server.

    Roll media are what 'rocks add roll' copied (SOURCE: where from); ENABLED says whether
    their node files are used and 'rocks create distro' includes their packages. Plugin rolls
    are Python packages registered in the 'provisioner' entry-point group; the
    disabled_plugins setting keeps one from loading ('rocks list roll command <roll>' shows
    what a roll adds).
    """

    name = "list roll"
    table = True
    transactional = False
    examples = (("rocks list roll", "Which rolls this server has."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        out = ctx.table(["name", "version", "arch", "enabled", "source"])
        loaded = _plugin_rolls(ctx)
        for name, version, source in loaded:
            out.row(name, version, None, True, source)
        names = {r[0] for r in loaded}
        for name in ctx.config.disabled_plugins:
            if name not in names:
                out.row(name, None, None, False, "disabled by the disabled_plugins setting")
        for r in _media(ctx):
            out.row(r.name, r.version, r.arch, r.enabled, r.source or "roll media")


def _media(ctx: Context) -> list[Any]:
    # Plugin rolls are listed without a database; media need one.
    from provisioner.db.reader import Reader
    from provisioner.errors import DatabaseError
    from provisioner.services.rolls import list_rolls

    try:
        with Reader.connect(ctx.config.db_url, timeout=ctx.config.database_timeout) as reader:
            return list_rolls(reader)
    except DatabaseError:
        return []


def _find(ctx: Context, args: list[str], params: dict[str, Any]) -> list[Any]:
    """The roll media named; a plugin roll's name gets a hint instead."""
    from provisioner.errors import NotFound, UsageError
    from provisioner.services.rolls import find_rolls

    try:
        return find_rolls(ctx.reader, args, params["version"], params["arch"])
    except NotFound:
        plugins = set(ctx.hooks.roll_names())
        for name in args:
            if name in plugins and name not in {r.name for r in _rows(ctx)}:
                raise UsageError(
                    f"'{name}' is a plugin roll: it is switched off with the disabled_plugins "
                    "setting, not by this command"
                ) from None
        raise


def _rows(ctx: Context) -> list[Any]:
    from provisioner.services.rolls import list_rolls

    return list_rolls(ctx.reader)


class EnableRoll(Command):
    """Enable rolls: their node and graph files join the graph, their packages the next
    'rocks create distro'."""

    name = "enable roll"
    writes = True
    args = (_ROLLS,)
    params = (_VERSION, _ARCH)
    examples = (("rocks enable roll hpc", "Use the hpc roll again."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.rolls import set_enabled

        set_enabled(ctx.session, _find(ctx, args, params), True)


class DisableRoll(Command):
    """Disable rolls: their node and graph files leave the graph at once, their packages the
    distribution at the next 'rocks create distro'. The files stay in the install tree."""

    name = "disable roll"
    writes = True
    args = (_ROLLS,)
    params = (_VERSION, _ARCH)
    examples = (
        ("rocks disable roll hpc", "Stop using every version of the hpc roll."),
        ("rocks disable roll hpc version=1.0 arch=i386", "Only one of them."),
    )

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.services.rolls import set_enabled

        set_enabled(ctx.session, _find(ctx, args, params), False)


class RemoveRoll(Command):
    """Remove rolls: forget them and delete their files from the install tree.

    Their node and graph files leave the graph at once; the current distribution keeps
    serving their packages until the next 'rocks create distro'.
    """

    name = "remove roll"
    transactional = False
    args = (_ROLLS,)
    params = (_VERSION, _ARCH)
    examples = (("rocks remove roll hpc version=1.0", "Remove hpc 1.0 (every arch)."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        import os
        import shutil

        from provisioner.db.engine import transaction
        from provisioner.db.reader import Reader
        from provisioner.errors import NotFound, UsageError
        from provisioner.rolls.media import prune_empty, remove_tree, roll_dir
        from provisioner.services.rolls import delete_rolls, find_rolls

        install_dir = ctx.config.install_dir
        aside: list[tuple[Any, Any]] = []
        try:
            with transaction(ctx.app.engine) as session:
                reader = Reader.for_session(session)
                try:
                    rows = find_rolls(reader, args, params["version"], params["arch"])
                except NotFound:
                    if any(n in ctx.hooks.roll_names() for n in args):
                        raise UsageError(
                            "plugin rolls are uninstalled with pip, not by this command"
                        ) from None
                    raise
                delete_rolls(session, rows)
                for row in rows:
                    moved = remove_tree(install_dir, row)
                    if moved is not None:
                        aside.append((row, moved))
        except BaseException:
            for row, moved in reversed(aside):
                os.rename(moved, roll_dir(install_dir, row))
            raise
        for _row, moved in aside:
            shutil.rmtree(moved, ignore_errors=True)
        for row in rows:
            prune_empty(install_dir, row)
            ctx.write(f"removed roll {row.label}")


class CreateDistro(Command):
    """Build the distribution nodes install from, out of the enabled rolls.

    Per architecture, <install>/<dist>/<arch>/ gets every package of the enabled rolls of
    that arch (and of noarch rolls) with yum/dnf metadata made by createrepo_c, plus an "os"
    roll's installer files; <dist>/pip/ gets this project's wheel for lights-out frontends.
    The build is made aside and switched in at once, so a failed build leaves the previous
    distribution serving. Kickstarts point at it: url http://<server>/install/<dist>/<arch>.
    """

    name = "create distro"
    transactional = False
    params = (
        Param("dist", "Name of the distribution (a membership's distribution).", "string"),
        Param("arch", "Architectures, comma separated (default: those of the enabled rolls)."),
        Param("rolls", "Only these enabled rolls: names, or name,version, space separated."),
    )
    examples = (
        ("rocks create distro", "Rebuild rocks-dist from the enabled rolls."),
        ("rocks create distro arch=i386", "Only the i386 tree."),
    )

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.db.reader import Reader
        from provisioner.errors import NotFound
        from provisioner.rolls.distro import build_distro
        from provisioner.services.rolls import enabled_rolls

        with Reader.connect(ctx.config.db_url, timeout=ctx.config.database_timeout) as reader:
            rolls = enabled_rolls(reader)
        if params["rolls"]:
            chosen = []
            for item in params["rolls"].split():
                name, _, version = item.partition(",")
                found = [r for r in rolls if r.name == name and version in ("", r.version)]
                if not found:
                    raise NotFound(f"no enabled roll '{item}' (see 'rocks list roll')")
                chosen.extend(r for r in found if r not in chosen)
            rolls = chosen
        arches = [a.strip() for a in (params["arch"] or "").split(",") if a.strip()]
        build = build_distro(
            ctx.config.install_dir,
            rolls,
            dist=params["dist"] or "rocks-dist",
            arches=arches or None,
            say=lambda text: ctx.progress(text + "\n"),
        )
        for a in build.arches:
            rolls_text = ", ".join(a.rolls) or "no rolls"
            count = f"{a.packages} package{'s' * (a.packages != 1)}"
            ctx.write(f"{build.dist}/{a.arch}: {count} from {rolls_text}")
            for dup in a.duplicates:
                ctx.write(f"{build.dist}/{a.arch}: warning: {dup}")
        ctx.write(f"{build.dist}/pip: {', '.join(build.wheels)}")


class ReportDistro(Command):
    """Print the install tree's directory (served as /install/), as Rocks' report distro."""

    name = "report distro"
    transactional = False
    examples = (("rocks report distro", "Where distributions and rolls are."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        ctx.write(str(ctx.config.install_dir))


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
