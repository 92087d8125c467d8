"""A compiled kickstart: literal chunks, attribute slots and (rarely) per-host blocks.

Generation from the node files runs once per distinct combination of the attribute values
that conditions read; what differs between the hosts that share it is only the values of the
attributes the text refers to. So the result is a tuple of parts: a `str` is copied, a `Slot`
is replaced by the host's value (an undefined one is an error naming file, line and
attribute), a `Block` is a function of the host's values (an `<eval>`, or a package list whose
names are attributes). Rendering a host is then one pass of `str.join`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from provisioner.graph.errors import GraphError

Values = Mapping[str, str]


@dataclass(frozen=True)
class Slot:
    name: str
    place: str  # file:line of the reference

    def value(self, values: Values) -> str:
        v = values.get(self.name)
        if v is None:
            raise GraphError(f"{self.place}: undefined attribute '{self.name}'")
        return v


@dataclass(frozen=True)
class Block:
    fn: Callable[[Values], str]


Part = str | Slot | Block


class Template:
    """Immutable and shareable between threads."""

    __slots__ = ("parts", "slot_names")

    def __init__(self, parts: Iterable[Part]) -> None:
        merged: list[Part] = []
        for p in parts:
            if isinstance(p, str):
                if not p:
                    continue
                if merged and isinstance(merged[-1], str):
                    merged[-1] = merged[-1] + p
                    continue
            merged.append(p)
        self.parts: tuple[Part, ...] = tuple(merged)
        self.slot_names = frozenset(p.name for p in merged if isinstance(p, Slot))

    def render(self, values: Values) -> str:
        out: list[str] = []
        append = out.append
        for p in self.parts:
            if type(p) is str:
                append(p)
            elif type(p) is Slot:
                v = values.get(p.name)
                if v is None:
                    raise GraphError(f"{p.place}: undefined attribute '{p.name}'")
                append(v)
            else:
                append(p.fn(values))  # type: ignore[union-attr]
        return "".join(out)


def render_parts(parts: Iterable[Part], values: Values) -> str:
    return Template(parts).render(values)
