"""Create or upgrade the schema with Alembic, from empty or from any earlier revision.

The core's chain (migrations/versions) holds the core's tables; a roll with tables of its own
(the Xen roll's `vm_nodes`, `vm_disks`) brings an Alembic branch of its own through the
`migration_directories` hook. `upgrade` brings the core to its head and then each enabled
roll's branch to its head, so a disabled roll leaves no table behind on a new database; the
directories of every installed roll stay visible when the database recorded a disabled roll's
revision, so its history still resolves. `alembic_version` holds one row per branch; the
revisions reported here (`current_revision`, `head_revision`) are the core's.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text

if TYPE_CHECKING:
    from provisioner.hooks import Hooks

MIGRATIONS = Path(__file__).parent / "migrations"
CORE_VERSIONS = MIGRATIONS / "versions"


def _alembic_config(locations: Sequence[Path] | None = None):  # type: ignore[no-untyped-def]
    """Alembic's configuration over the core's chain and the branches in `locations` (default:
    those of every installed roll)."""
    from alembic.config import Config as AlembicConfig

    if locations is None:
        locations = _installed_locations()
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("path_separator", "os")
    dirs = [str(CORE_VERSIONS)] + [str(p) for p in dict.fromkeys(locations)]
    cfg.set_main_option("version_locations", os.pathsep.join(dirs))
    return cfg


def _locations(hooks: Hooks) -> list[Path]:
    return [d for _, d in hooks.migration_directories()]


def _installed_locations() -> list[Path]:
    """The branches of every installed roll, disabled ones included."""
    from provisioner.hooks import Hooks, get_plugin_manager

    return _locations(Hooks(get_plugin_manager()))


@cache
def _core_revisions() -> tuple[str, frozenset[str]]:
    """The core's head and every revision of its chain."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config(()))
    head = script.get_current_head()
    assert head is not None
    return head, frozenset(r.revision for r in script.walk_revisions())


def head_revision() -> str:
    return _core_revisions()[0]


def _recorded(engine: Engine) -> list[str] | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())


def current_revision(engine: Engine) -> str | None:
    """The core's revision of the database (None: no schema yet)."""
    core = _core_revisions()[1]
    return next((r for r in _recorded(engine) or () if r in core), None)


def upgrade(
    engine: Engine, revision: str = "head", hooks: Hooks | None = None
) -> tuple[str | None, str]:
    """Bring the core's schema to `revision` and, at "head", each enabled roll's branch (the
    rolls of `hooks`; default: every installed roll) to its head. Returns the core's (revision
    before, revision after)."""
    from alembic import command
    from alembic.script import ScriptDirectory

    enabled = _locations(hooks) if hooks is not None else _installed_locations()
    recorded = _recorded(engine)
    before = current_revision(engine)
    cfg = _alembic_config(enabled)
    script = ScriptDirectory.from_config(cfg)
    known = {r.revision for r in script.walk_revisions()}
    if any(r not in known for r in recorded or ()):
        # A disabled roll's revision: its branch must be visible, and stays where it is.
        cfg = _alembic_config(enabled + _installed_locations())
        script = ScriptDirectory.from_config(cfg)
    targets = [revision]
    if revision == "head":
        dirs = {d.resolve() for d in enabled}
        targets = [head_revision()] + sorted(
            h
            for h in script.get_heads()
            if Path(script.get_revision(h).path).parent.resolve() in dirs  # type: ignore[union-attr]
        )
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        for target in targets:
            command.upgrade(cfg, target)
    return before, current_revision(engine) or ""
