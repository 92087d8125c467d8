"""Every hook a roll can implement, with its call semantics (DESIGN "Plugins", R1).

Registration hooks return declarative objects from `provisioner.specs`; notification hooks get
the caller's database session and run inside its transaction, so a plugin's writes commit or
roll back with the change that triggered them. docs/hooks.md has a section per hook, and
tests/test_hookspecs.py fails when one is missing there or has no test.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from pathlib import Path

    from sqlalchemy.orm import Session

    from provisioner.db.models import Host
    from provisioner.specs import ApplianceSpec, AttrSpec, BootActionSpec, CommandRef

hookspec = pluggy.HookspecMarker("provisioner")
hookimpl = pluggy.HookimplMarker("provisioner")


# -- Registration -----------------------------------------------------------------------------


@hookspec
def register_commands() -> list[CommandRef]:
    """Commands this roll adds to the `rocks` command line.

    Called once when the CLI starts; results of all rolls are merged. Two rolls registering
    the same command name is an error at start-up.
    """


@hookspec
def register_appliances() -> list[ApplianceSpec]:
    """Appliances (with membership, root node and appliance attributes) that `rocks init
    frontend` creates when missing."""


@hookspec
def register_bootactions() -> list[BootActionSpec]:
    """Boot actions that `rocks init frontend` creates when missing."""


@hookspec
def register_attributes() -> list[AttrSpec]:
    """Documented attributes; those with a default become global attributes at `rocks init
    frontend` when not already set."""


@hookspec
def node_directories() -> list[Path]:
    """Directories holding `nodes/` and `graphs/` of this roll's XML node graph.

    Searched after `site-profiles/`, in plugin registration order.
    """


# -- Host life cycle --------------------------------------------------------------------------


@hookspec
def host_added(session: Session, host: Host) -> None:
    """A host was added (flushed, so `host.id` is set). Runs in the adding transaction."""


@hookspec
def host_removing(session: Session, host: Host) -> None:
    """A host is about to be removed. Raise `provisioner.errors.Vetoed` to refuse; the whole
    command then fails and nothing is removed. Clean up what the roll keeps for the host."""


@hookspec
def host_changed(session: Session, host: Host, changes: dict[str, object]) -> None:
    """Columns of a host changed; `changes` maps each changed field to its new value."""
