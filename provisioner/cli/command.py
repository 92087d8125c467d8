"""How a command declares itself: positional arguments, key=value parameters, examples.

The declaration is the single source of the parser's behaviour, of `help` and of
docs/commands.md (R11). Rocks' grammar: any word with `=` is a parameter; parameters marked
`positional` may instead be given as trailing words (`rocks set host attr compute-0-0 x11 true`
is `attr=x11 value=true`); what remains are the arguments.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from provisioner.errors import UsageError

if TYPE_CHECKING:
    from provisioner.cli.context import Context

TRUE_WORDS = frozenset({"1", "y", "yes", "true", "on"})
FALSE_WORDS = frozenset({"0", "n", "no", "false", "off"})


def parse_bool(value: str) -> bool | None:
    """Rocks' boolean words; None if the word is not one."""
    low = value.strip().lower()
    if low in TRUE_WORDS:
        return True
    if low in FALSE_WORDS:
        return False
    return None


@dataclass(frozen=True)
class Arg:
    """A positional argument. `repeat` takes any number of words (hosts, usually)."""

    name: str
    doc: str
    optional: bool = False
    repeat: bool = False

    def usage(self) -> str:
        text = self.name + ("..." if self.repeat else "")
        return f"[{text}]" if self.optional else f"{{{text}}}"


@dataclass(frozen=True)
class Param:
    """A key=value parameter. `type` is string, int, bool or choice (with `choices`)."""

    name: str
    doc: str
    type: str = "string"
    default: Any = None
    required: bool = False
    positional: bool = False
    choices: tuple[str, ...] = ()

    def usage(self) -> str:
        if self.type == "choice":
            shown = "|".join(self.choices)
        elif self.type == "bool":
            shown = "yes|no"
        else:
            shown = self.type
        text = f"{self.name}={shown}"
        return text if self.required else f"[{text}]"

    def convert(self, raw: str, command: str) -> Any:
        if self.type == "int":
            try:
                return int(raw)
            except ValueError:
                raise UsageError(
                    f"parameter '{self.name}' of 'rocks {command}' must be a whole number, "
                    f"not '{raw}'"
                ) from None
        if self.type == "bool":
            value = parse_bool(raw)
            if value is None:
                raise UsageError(
                    f"parameter '{self.name}' of 'rocks {command}' must be yes or no, not '{raw}'"
                )
            return value
        if self.type == "choice":
            if raw not in self.choices:
                raise UsageError(
                    f"parameter '{self.name}' of 'rocks {command}' must be one of "
                    f"{', '.join(self.choices)}, not '{raw}'"
                )
        return raw


OUTPUT_PARAMS = (
    Param(
        "output-format", "table (the default) or json", "choice", "table", choices=("table", "json")
    ),
    Param("output-header", "print the header line of a table", "bool", True),
    Param("output-col", "comma-separated columns to show, by header name", "string", ""),
)


class Command(ABC):
    """Base class of every command. Subclasses set the class attributes and implement `run`.

    The first line of the docstring is the summary shown in listings; the rest is the
    description shown by `help`.
    """

    name: ClassVar[str] = ""
    args: ClassVar[tuple[Arg, ...]] = ()
    params: ClassVar[tuple[Param, ...]] = ()
    examples: ClassVar[tuple[tuple[str, str], ...]] = ()
    #: the command changes the database: it runs in a write transaction (with SQLAlchemy)
    writes: ClassVar[bool] = False
    #: the command prints a table and takes output-format/output-header/output-col
    table: ClassVar[bool] = False
    #: the command manages its own transactions (batch mode)
    transactional: ClassVar[bool] = True
    #: any key=value is accepted and passed in `params` (for attribute lists)
    extra_params: ClassVar[bool] = False

    @classmethod
    def summary(cls) -> str:
        doc = inspect.getdoc(cls) or ""
        return doc.split("\n\n", 1)[0].replace("\n", " ").strip()

    @classmethod
    def description(cls) -> str:
        doc = inspect.getdoc(cls) or ""
        parts = doc.split("\n\n", 1)
        return parts[1].strip() if len(parts) > 1 else ""

    @classmethod
    def all_params(cls) -> tuple[Param, ...]:
        return cls.params + (OUTPUT_PARAMS if cls.table else ())

    @classmethod
    def usage(cls) -> str:
        parts = ["rocks", cls.name]
        parts += [a.usage() for a in cls.args]
        parts += [p.usage() for p in cls.all_params()]
        if cls.extra_params:
            parts.append("[key=value...]")
        return " ".join(parts)

    @abstractmethod
    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        """Do the command's work; output through `ctx`."""


def parse_words(cls: type[Command], words: Sequence[str]) -> tuple[list[str], dict[str, Any]]:
    """Split the words after the command name into arguments and converted parameters."""
    declared = {p.name: p for p in cls.all_params()}
    raw: dict[str, str] = {}
    positional: list[str] = []
    for word in words:
        key, eq, value = word.partition("=")
        if eq and key:
            # Declared keys match in any case; extra keys (attribute names) keep theirs.
            key = key.strip()
            if key.lower() in declared:
                key = key.lower()
            elif not cls.extra_params:
                known = ", ".join(p.name for p in cls.params) or "none"
                raise UsageError(
                    f"unknown parameter '{key}' for 'rocks {cls.name}' (parameters: {known})"
                )
            if key in raw:
                raise UsageError(f"parameter '{key}' given twice")
            raw[key] = value
        else:
            positional.append(word)

    # Trailing words fill positional parameters not given as key=value, leaving the required
    # arguments their words: `set host attr h1 x11 true` -> args [h1], attr=x11, value=true.
    missing = [p for p in cls.params if p.positional and p.name not in raw]
    min_args = sum(1 for a in cls.args if not a.optional)
    take = min(len(missing), max(len(positional) - min_args, 0))
    if take:
        for param, word in zip(missing[:take], positional[-take:], strict=True):
            raw[param.name] = word
        positional = positional[:-take]

    if not any(a.repeat for a in cls.args) and len(positional) > len(cls.args):
        extra = positional[len(cls.args)]
        raise UsageError(f"unexpected argument '{extra}' for 'rocks {cls.name}'")
    for i, arg in enumerate(cls.args):
        if not arg.optional and len(positional) <= i:
            raise UsageError(f"missing argument: {arg.name} (usage: {cls.usage()})")

    params: dict[str, Any] = {}
    for name, value in raw.items():
        param = declared.get(name)
        params[name] = param.convert(value, cls.name) if param else value
    for param in cls.all_params():
        if param.name not in params:
            if param.required:
                raise UsageError(f"missing parameter: {param.name} (usage: {cls.usage()})")
            params[param.name] = param.default
    return positional, params
