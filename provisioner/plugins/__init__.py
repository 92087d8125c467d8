"""Finding and loading rolls: the plugins behind `provisioner.hooks.Hooks`.

Rolls are pluggy plugins found through the `provisioner` entry-point group; the built-in base
and xen rolls are registered the same way (pyproject.toml lists them), with a fallback to
importing them directly when the package runs from a source tree without its metadata.
Rolls named in the `disabled_plugins` setting are blocked; a hook implementation whose name
matches no hookspec (a misspelling) fails the start with the plugin's name.

The plugin manager and the typed facade live in `provisioner.hooks`; `Hooks` and
`get_plugin_manager` are still found here for rolls written against the old path.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import pluggy

from provisioner.errors import ConfigError

BUILTIN_ROLLS: dict[str, str] = {
    "base": "provisioner.plugins.base",
    "xen": "provisioner.plugins.xen",
}
REQUIRED_ROLLS = ("base",)


def load_rolls(
    pm: pluggy.PluginManager, disabled: Sequence[str] = (), extra: Sequence[tuple[str, object]] = ()
) -> None:
    """Register every roll with `pm` (its hookspecs already added), but the disabled ones; then
    `extra`'s (name, plugin) pairs. A roll implementing an unknown hook fails here."""
    for name in disabled:
        if name in REQUIRED_ROLLS:
            raise ConfigError(f"the '{name}' roll cannot be disabled")
        pm.set_blocked(name)
    pm.load_setuptools_entrypoints("provisioner")
    for name, module in BUILTIN_ROLLS.items():
        if pm.get_plugin(name) is None and not pm.is_blocked(name):
            pm.register(importlib.import_module(module), name=name)
    for name, plugin in extra:
        pm.register(plugin, name=name)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        name = pm.get_name(exc.plugin) or getattr(exc.plugin, "__name__", "?")
        raise ConfigError(f"roll '{name}': {exc}") from None


def __getattr__(name: str) -> Any:
    # The old home of the facade; imported lazily so that loading a roll (a subpackage of this
    # one) does not load the hooks module, which imports this one.
    if name in ("Hooks", "get_plugin_manager"):
        from provisioner import hooks

        return getattr(hooks, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
