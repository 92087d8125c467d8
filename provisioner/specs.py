"""The declarative objects that registration hooks return (DESIGN "Plugins", R5).

This module imports nothing heavy: the CLI builds its command registry from these on every
start. A roll author imports them as `from provisioner.specs import CommandRef, ...`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CommandRef:
    """A command contributed by a roll. `target` is the Command class or, to keep start-up
    light, a "package.module:Class" string imported only when the command runs."""

    name: str
    target: str | type[Any]
    roll: str = ""

    @property
    def words(self) -> tuple[str, ...]:
        return tuple(self.name.split())


@dataclass(frozen=True)
class ApplianceSpec:
    """An appliance with its membership, the root node of its graph traversal (empty: not
    installed by us) and the appliance-level attributes `rocks init frontend` gives it."""

    name: str
    membership: str
    node: str = ""
    graph: str = "default"
    public: bool = False
    attrs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BootActionSpec:
    """A named boot action: a kernel (file name, URL, or a raw pxelinux line such as
    "localboot 0"), a ramdisk and kernel arguments."""

    action: str
    kernel: str = ""
    ramdisk: str = ""
    args: str = ""


@dataclass(frozen=True)
class AttrSpec:
    """A documented attribute with its default global value (None: documented, not set)."""

    name: str
    default: str | None
    doc: str
    level: str = "G"
