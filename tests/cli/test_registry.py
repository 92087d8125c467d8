"""The command registry: longest prefix, listings, suggestions, conflicts between rolls."""

from __future__ import annotations

import pytest

from provisioner.cli.registry import Registry
from provisioner.errors import ConfigError
from provisioner.specs import CommandRef

BASE = "provisioner.plugins.base.commands."


def registry() -> Registry:
    return Registry(
        [
            CommandRef("list host", BASE + "host:ListHost", "base"),
            CommandRef("list host attr", BASE + "attr:ListHostAttr", "base"),
            CommandRef("set host attr", BASE + "attr:SetHostAttr", "base"),
        ]
    )


def test_longest_prefix_wins():
    ref, rest = registry().lookup(["list", "host", "attr", "compute-0-0"])
    assert ref.name == "list host attr" and rest == ["compute-0-0"]
    ref, rest = registry().lookup(["list", "host", "compute-0-0"])
    assert ref.name == "list host" and rest == ["compute-0-0"]


def test_lookup_is_case_insensitive_and_misses_return_none():
    assert registry().lookup(["LIST", "Host"])[0].name == "list host"
    assert registry().lookup(["frobnicate"]) is None


def test_below_lists_commands_under_a_prefix():
    assert [r.name for r in registry().below(["list"])] == ["list host", "list host attr"]
    assert registry().below(["remove"]) == []


def test_suggestions_for_typos():
    assert "list host" in registry().suggest(["lsit", "host"])


def test_two_rolls_registering_one_name_fail_at_start():
    with pytest.raises(ConfigError, match="registered by both roll 'base' and roll 'other'"):
        Registry(
            [
                CommandRef("list host", BASE + "host:ListHost", "base"),
                CommandRef("list host", "other.module:Cmd", "other"),
            ]
        )


def test_unloadable_target_is_a_clear_error():
    ref = CommandRef("list nothing", "provisioner.nowhere:Nothing", "broken")
    with pytest.raises(ConfigError, match="'rocks list nothing' of roll 'broken' cannot be loaded"):
        Registry.load(ref)
    with pytest.raises(ConfigError, match="is not a Command"):
        Registry.load(CommandRef("x", "provisioner.errors:ProvisionerError", "r"))


def test_every_base_command_loads_with_matching_name_help_and_examples(hooks):
    reg = Registry(hooks.register_commands())
    assert len(reg.refs) > 60
    for name, ref in reg.refs.items():
        cls = reg.load(ref)
        assert cls.name == name, f"{ref.target} declares '{cls.name}'"
        assert cls.summary(), f"'rocks {name}' has no summary"
        assert cls.examples, f"'rocks {name}' has no example"
        for cmd, _what in cls.examples:
            assert cmd.startswith(f"rocks {name}") or cmd.startswith("printf"), cmd
