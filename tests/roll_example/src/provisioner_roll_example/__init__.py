"""An example roll: the `hello roll` command, the `example` node file and the `fake` VM driver.

Everything a roll does goes through hooks (`provisioner.hookspecs`); this module is what the
`example` entry point names, and it stays light: commands are imported when they run.
"""

from __future__ import annotations

from pathlib import Path

from provisioner.hookspecs import hookimpl
from provisioner.specs import CommandRef


@hookimpl
def register_commands() -> list[CommandRef]:
    return [CommandRef("hello roll", "provisioner_roll_example.commands:HelloRoll")]


@hookimpl
def node_directories() -> list[Path]:
    return [Path(__file__).parent]


@hookimpl
def register_vm_drivers() -> list[object]:
    from provisioner_roll_example.fake_driver import FakeDriver

    return [FakeDriver()]
