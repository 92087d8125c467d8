"""The command registry: names contributed by rolls, longest-prefix lookup, lazy loading."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable, Sequence

from provisioner.cli.command import Command
from provisioner.errors import ConfigError
from provisioner.specs import CommandRef


class Registry:
    def __init__(self, refs: Iterable[CommandRef]) -> None:
        self.refs: dict[str, CommandRef] = {}
        for ref in refs:
            name = " ".join(ref.words)
            other = self.refs.get(name)
            if other is not None and other.target != ref.target:
                raise ConfigError(
                    f"command 'rocks {name}' is registered by both roll '{other.roll}' "
                    f"and roll '{ref.roll}'"
                )
            self.refs[name] = ref
        self._longest = max((len(r.words) for r in self.refs.values()), default=0)

    def lookup(self, words: Sequence[str]) -> tuple[CommandRef, list[str]] | None:
        """The command named by the longest prefix of `words`, and the words after it."""
        for n in range(min(len(words), self._longest), 0, -1):
            ref = self.refs.get(" ".join(words[:n]).lower())
            if ref is not None:
                return ref, list(words[n:])
        return None

    def below(self, prefix: Sequence[str]) -> list[CommandRef]:
        """Commands whose name starts with the words of `prefix`."""
        p = tuple(w.lower() for w in prefix)
        return sorted(
            (r for r in self.refs.values() if r.words[: len(p)] == p), key=lambda r: r.name
        )

    def suggest(self, words: Sequence[str]) -> list[str]:
        phrase = " ".join(words[: self._longest]).lower()
        return difflib.get_close_matches(phrase, list(self.refs), n=3, cutoff=0.6)

    def of_roll(self, roll: str) -> list[CommandRef]:
        return sorted((r for r in self.refs.values() if r.roll == roll), key=lambda r: r.name)

    @staticmethod
    def load(ref: CommandRef) -> type[Command]:
        target = ref.target
        if isinstance(target, str):
            module, _, attr = target.partition(":")
            try:
                target = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError) as exc:
                raise ConfigError(
                    f"command 'rocks {ref.name}' of roll '{ref.roll}' cannot be loaded: {exc}"
                ) from None
        if not (isinstance(target, type) and issubclass(target, Command)):
            raise ConfigError(f"command 'rocks {ref.name}' of roll '{ref.roll}' is not a Command")
        return target
