"""The typed facade through which the rest of the code calls hooks, and the plugin manager
behind it: one per process (the CLI's command, the web application, the daemon), built by
`get_plugin_manager` and handed down to whatever renders or notifies.

`provisioner.plugins` finds and loads the rolls; `provisioner.hookspecs` says what they may
implement. This module joins the two, so neither imports the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pluggy

from provisioner import hookspecs
from provisioner.errors import ConfigError
from provisioner.plugins import load_rolls

if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from flask import Blueprint
    from sqlalchemy.orm import Session

    from provisioner.config import Config
    from provisioner.db.models import Host
    from provisioner.db.reader import Reader
    from provisioner.services.hostargs import HostRow
    from provisioner.specs import ApplianceSpec, AttrSpec, BootActionSpec, CommandRef, VmDriver


#: The arguments of `render_kickstart` in the hookspec's order: an implementation taking all of
#: them, in that order, is called without building its arguments by name.
_KICKSTART_ARGS = ("config", "reader", "host", "attrs", "hooks")


def get_plugin_manager(
    disabled: Sequence[str] = (), extra: Sequence[tuple[str, object]] = ()
) -> pluggy.PluginManager:
    """A fresh manager with every roll loaded. `extra` registers (name, plugin) pairs directly."""
    pm = pluggy.PluginManager("provisioner")
    pm.add_hookspecs(hookspecs)
    load_rolls(pm, disabled, extra)
    return pm


class Hooks:
    """Typed wrappers around `pm.hook.*` (R4): the only way the code base calls hooks."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self._vm_drivers: dict[str, VmDriver] | None = None

    @classmethod
    def from_config(cls, config: Config, extra: Sequence[tuple[str, object]] = ()) -> Hooks:
        return cls(get_plugin_manager(config.disabled_plugins, extra))

    def has_impls(self, hook: str) -> bool:
        """Whether any roll implements `hook` (so callers can skip preparing its arguments)."""
        return bool(getattr(self.pm.hook, hook).get_hookimpls())

    def roll_names(self) -> list[str]:
        # A blocked roll stays in pluggy's list with None as its plugin.
        return [name for name, plugin in self.pm.list_name_plugin() if name and plugin is not None]

    def _per_roll(self, hook: pluggy.HookCaller) -> list[tuple[str, list[object]]]:
        # Called per implementation, so each result is attributed to the roll that gave it, in a
        # fixed order (base first, then by name) whatever order entry points were found in.
        out: list[tuple[str, list[object]]] = []
        impls = sorted(hook.get_hookimpls(), key=lambda i: (i.plugin_name != "base", i.plugin_name))
        for impl in impls:
            result = impl.function()
            out.append((impl.plugin_name, list(result or [])))
        return out

    # -- registration -------------------------------------------------------------------------

    def register_commands(self) -> list[CommandRef]:
        from dataclasses import replace

        refs: list[CommandRef] = []
        for roll, items in self._per_roll(self.pm.hook.register_commands):
            refs.extend(replace(ref, roll=ref.roll or roll) for ref in items)  # type: ignore[type-var]
        return refs

    def register_appliances(self) -> list[ApplianceSpec]:
        return [a for _, items in self._per_roll(self.pm.hook.register_appliances) for a in items]  # type: ignore[misc]

    def register_bootactions(self) -> list[BootActionSpec]:
        return [b for _, items in self._per_roll(self.pm.hook.register_bootactions) for b in items]  # type: ignore[misc]

    def register_attributes(self) -> list[AttrSpec]:
        return [a for _, items in self._per_roll(self.pm.hook.register_attributes) for a in items]  # type: ignore[misc]

    def node_directories(self) -> list[Path]:
        return [
            Path(d) for _, items in self._per_roll(self.pm.hook.node_directories) for d in items
        ]  # type: ignore[arg-type]

    def migration_directories(self) -> list[tuple[str, Path]]:
        """(roll, Alembic version directory) pairs of the enabled rolls, base first."""
        return [
            (r, Path(d))  # type: ignore[arg-type]
            for r, items in self._per_roll(self.pm.hook.migration_directories)
            for d in items
        ]

    def register_blueprints(self) -> list[Blueprint]:
        return [b for _, items in self._per_roll(self.pm.hook.register_blueprints) for b in items]  # type: ignore[misc]

    def register_vm_drivers(self) -> list[tuple[str, VmDriver]]:
        """(roll, driver) pairs, base first."""
        return [
            (r, d) for r, items in self._per_roll(self.pm.hook.register_vm_drivers) for d in items
        ]  # type: ignore[misc]

    def vm_drivers(self) -> dict[str, VmDriver]:
        """Drivers by name, collected once per Hooks (drivers may keep connections open)."""
        if self._vm_drivers is None:
            found: dict[str, VmDriver] = {}
            owner: dict[str, str] = {}
            for roll, driver in self.register_vm_drivers():
                name = driver.name
                if name in found:
                    raise ConfigError(
                        f"VM driver '{name}' is registered by both roll '{owner[name]}' "
                        f"and roll '{roll}'"
                    )
                found[name], owner[name] = driver, roll
            self._vm_drivers = found
        return self._vm_drivers

    def vm_driver(self, name: str) -> VmDriver:
        drivers = self.vm_drivers()
        try:
            return drivers[name]
        except KeyError:
            known = ", ".join(sorted(drivers)) or "none"
            raise ConfigError(f"unknown VM driver '{name}' (drivers: {known})") from None

    # -- host life cycle ----------------------------------------------------------------------

    def host_added(self, session: Session, host: Host) -> None:
        self.pm.hook.host_added(session=session, host=host, hooks=self)

    def host_removing(self, session: Session, host: Host) -> None:
        self.pm.hook.host_removing(session=session, host=host, hooks=self)

    def host_changed(self, session: Session, host: Host, changes: dict[str, object]) -> None:
        self.pm.hook.host_changed(session=session, host=host, changes=changes, hooks=self)

    def install_event(
        self, session: Session, host: Host, event: str, detail: dict[str, Any]
    ) -> None:
        self.pm.hook.install_event(
            session=session, host=host, event=event, detail=detail, hooks=self
        )

    # -- questions ----------------------------------------------------------------------------

    def virtual_hosts(self, reader: Reader) -> set[int]:
        """Ids of the hosts any roll runs as a virtual machine."""
        return {i for ids in self.pm.hook.virtual_hosts(reader=reader) for i in ids or ()}

    # -- rendering ----------------------------------------------------------------------------

    def render_boot_config(
        self, config: Config, reader: Reader, host: HostRow, flavor: str, attrs: Mapping[str, str]
    ) -> str | None:
        return self.pm.hook.render_boot_config(
            config=config, reader=reader, host=host, flavor=flavor, attrs=attrs, hooks=self
        )

    def render_kickstart(
        self, config: Config, reader: Reader, host: HostRow, attrs: Mapping[str, str]
    ) -> str | None:
        hook = self.pm.hook.render_kickstart
        only = self._only_impl(hook)
        if only is not None:
            # One implementation (the base roll's, nearly always): called as pluggy would,
            # without its per-call machinery; this runs for every kickstart of a storm.
            if only.argnames == _KICKSTART_ARGS:
                return only.function(config, reader, host, attrs, self)  # type: ignore[no-any-return]
            given = {
                "config": config,
                "reader": reader,
                "host": host,
                "attrs": attrs,
                "hooks": self,
            }
            return only.function(*[given[a] for a in only.argnames])  # type: ignore[no-any-return]
        return hook(config=config, reader=reader, host=host, attrs=attrs, hooks=self)  # type: ignore[no-any-return]

    def _only_impl(self, hook: pluggy.HookCaller) -> Any:
        """A hook's sole implementation (pluggy's HookImpl), or None (several, or none)."""
        impls = hook.get_hookimpls()  # checked on every call: a roll may register late
        if len(impls) != 1 or impls[0].hookwrapper or impls[0].wrapper:
            return None
        return impls[0]
