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
    from collections.abc import Mapping
    from pathlib import Path
    from typing import Any

    from flask import Blueprint
    from sqlalchemy.orm import Session

    from provisioner.config import Config
    from provisioner.db.models import Host
    from provisioner.db.reader import Reader
    from provisioner.hooks import Hooks
    from provisioner.services.hostargs import HostRow
    from provisioner.specs import ApplianceSpec, AttrSpec, BootActionSpec, CommandRef, VmDriver

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


@hookspec
def migration_directories() -> list[Path]:
    """Alembic version directories of this roll's own tables: one branch of the roll's own,
    whose first revision carries a branch label and `depends_on` the core revision it needs.

    `rocks init frontend` upgrades the core and then each enabled roll's branch; the
    directories of disabled rolls stay visible so a database that recorded their revisions
    still upgrades, but their tables are not created.
    """


@hookspec
def register_blueprints() -> list[Blueprint]:
    """Flask blueprints the web application mounts (pages, API routes, install callbacks).

    Called once by the app factory; each blueprint brings its own `url_prefix`. Import Flask
    inside the implementation: the CLI loads every roll and must not pay for it.
    """


@hookspec
def register_vm_drivers() -> list[VmDriver]:
    """VM drivers (objects following `provisioner.specs.VmDriver`) by which the
    `... host vm` commands define, power and inspect virtual machines.

    Called when a VM command first needs a driver. A VM container picks its driver by name
    with the `vm_driver` attribute (default `libvirt`); two rolls registering the same
    driver name is an error. Import the hypervisor's library inside the driver's methods.
    """


# -- Host life cycle --------------------------------------------------------------------------
# Each gets `hooks`, the facade that called it, so an implementation can reach what other rolls
# registered (the VM driver of a container, say). Declare only the arguments you use.


@hookspec
def host_added(session: Session, host: Host, hooks: Hooks) -> None:
    """A host was added (flushed, so `host.id` is set). Runs in the adding transaction."""


@hookspec
def host_removing(session: Session, host: Host, hooks: Hooks) -> None:
    """A host is about to be removed. Raise `provisioner.errors.Vetoed` to refuse; the whole
    command then fails and nothing is removed. Clean up what the roll keeps for the host."""


@hookspec
def host_changed(session: Session, host: Host, changes: dict[str, object], hooks: Hooks) -> None:
    """Columns of a host changed; `changes` maps each changed field to its new value."""


@hookspec
def install_event(
    session: Session, host: Host, event: str, detail: dict[str, Any], hooks: Hooks
) -> None:
    """A host reported progress of its installation.

    `event` names the step: `kickstart` (its kickstart was served), `partitions` (it reported
    its partitions), `done` (the install finished and its boot action went to `os`); rolls may
    report their own names. `detail` is what the host sent, as JSON values. Runs in the
    transaction that records the event; raising fails the request.
    """


# -- Questions ----------------------------------------------------------------------------------


@hookspec
def virtual_hosts(reader: Reader) -> list[int]:
    """Ids of the hosts this roll runs as virtual machines (results of all rolls are merged).

    Asked where the core must tell this server from a virtual host of the same appliance: a
    frontend's kickstart names this server by its public name, taken from the frontend that is
    not a VM. Read with `reader`; called for frontends' kickstarts and `rocks report host roll`
    only, not on the hot paths.
    """


# -- Rendering ----------------------------------------------------------------------------------


@hookspec(firstresult=True)
def render_boot_config(
    config: Config,
    reader: Reader,
    host: HostRow,
    flavor: str,
    attrs: Mapping[str, str],
    hooks: Hooks,
) -> str | None:
    """The network-boot configuration `host` gets, as text, or None to leave it to another roll.

    :param flavor: the loader asking: `pxelinux` (BIOS), `grub` (UEFI) or `ipxe`.
    :param attrs: the host's resolved attributes.
    :param hooks: the facade that called (the process's one plugin manager).

    Stops at first non-None result. The base roll's implementation is `trylast`, so a roll
    overrides the file for the hosts it cares about by returning text for them only.
    """


@hookspec(firstresult=True)
def render_kickstart(
    config: Config, reader: Reader, host: HostRow, attrs: Mapping[str, str], hooks: Hooks
) -> str | None:
    """The kickstart `host` installs with, as text, or None to leave it to another roll.

    :param attrs: the host's resolved attributes.
    :param hooks: the facade that called (the process's one plugin manager): a renderer
        kept for the process takes its rolls' node directories from it.

    Stops at first non-None result. The base roll's implementation (the node graph) is
    `trylast`.
    """
