"""The `rocks` entry point: find the command, parse its words, run it in one transaction.

Errors are one line on stderr, `error: <what was wrong>`, with a non-zero exit status; a
traceback only with `--debug` (or PROVISIONER_DEBUG=1).
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from provisioner.cli.command import Command, parse_words
from provisioner.cli.context import Context
from provisioner.cli.registry import Registry
from provisioner.config import Config
from provisioner.db.errors import translate
from provisioner.errors import ProvisionerError, UsageError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from provisioner.hooks import Hooks

HELP_WORDS = ("help", "--help", "-h")
EXIT_INTERNAL = 70


class App:
    """One CLI process: the config, the rolls, the command registry and a lazy engine."""

    def __init__(
        self,
        config: Config,
        hooks: Hooks | None = None,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
    ) -> None:
        from provisioner.hooks import Hooks

        self.config = config
        self.hooks = hooks or Hooks.from_config(config)
        self.registry = Registry(self.hooks.register_commands())
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from provisioner.db.engine import make_engine

            self._engine = make_engine(self.config.db_url, timeout=self.config.database_timeout)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # -- running ------------------------------------------------------------------------------

    def main(self, words: Sequence[str], debug: bool = False) -> int:
        """Run one command line; print its output or its one-line error. Returns the status."""
        try:
            self.stdout.write(self.execute(words))
            self.stdout.flush()
            return 0
        except ProvisionerError as exc:
            self._error(str(exc), debug)
            return exc.exit_code
        except KeyboardInterrupt:
            self._error("interrupted", debug)
            return 130
        except BrokenPipeError:
            # `rocks list host | head` closing the pipe is not an error.
            try:
                sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the final flush
            except OSError:
                pass
            return 0
        except Exception as exc:  # noqa: BLE001 - the one place that turns bugs into a line
            translated = translate(exc)
            if translated is not None:
                self._error(str(translated), debug)
                return translated.exit_code
            self._error(
                f"internal error: {type(exc).__name__}: {exc} (run with --debug for details)",
                debug,
            )
            return EXIT_INTERNAL

    def _error(self, message: str, debug: bool) -> None:
        if debug:
            traceback.print_exc(file=self.stderr)
        first = message.strip().splitlines()[0] if message.strip() else "unknown error"
        self.stderr.write(f"error: {first}\n")
        self.stderr.flush()

    def execute(self, words: Sequence[str]) -> str:
        """Run one command line and return what it prints. Raises on failure."""
        words = _split_first(words)
        if not words or words[0] in HELP_WORDS:
            from provisioner.cli.help import help_text

            return help_text(self.registry, list(words[1:]))
        found = self.registry.lookup(words)
        if found is None:
            below = self.registry.below(words)
            if below:
                from provisioner.cli.help import listing

                return listing(self.registry, below)
            hint = self.registry.suggest(words)
            more = f" (did you mean: {', '.join('rocks ' + h for h in hint)}?)" if hint else ""
            raise UsageError(f"unknown command 'rocks {' '.join(words)}'{more}")
        ref, rest = found
        cls = self.registry.load(ref)
        if rest and rest[0] in HELP_WORDS:
            from provisioner.cli.help import command_help

            return command_help(cls)
        args, params = parse_words(cls, rest)
        return self.run_command(cls, args, params)

    def run_command(self, cls: type[Command], args: list[str], params: dict[str, Any]) -> str:
        command = cls()
        if not cls.transactional:
            ctx = Context(self, reader=None)  # type: ignore[arg-type]
            command.run(ctx, args, params)
            return ctx.render(params)
        if cls.writes:
            from provisioner.db.engine import transaction
            from provisioner.db.reader import Reader

            with transaction(self.engine) as session:
                ctx = Context(self, Reader.for_session(session), session)
                command.run(ctx, args, params)
            return ctx.render(params)
        from provisioner.db.reader import Reader

        reader = Reader.connect(self.config.db_url, timeout=self.config.database_timeout)
        try:
            ctx = Context(self, reader)
            command.run(ctx, args, params)
        finally:
            reader.close()
        return ctx.render(params)


def _split_first(words: Sequence[str]) -> list[str]:
    # Rocks accepted `rocks "add host" ...`: a first word with spaces is the command phrase.
    words = list(words)
    if words and " " in words[0].strip():
        return words[0].split() + words[1:]
    return words


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("PROVISIONER_DEBUG", "") not in ("", "0")
    while argv and argv[0] in ("--debug", "-d"):
        debug = True
        argv.pop(0)
    try:
        app = App(Config.load())
    except ProvisionerError as exc:
        if debug:
            traceback.print_exc()
        sys.stderr.write(f"error: {exc}\n")
        return exc.exit_code
    try:
        return app.main(argv, debug=debug)
    finally:
        app.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
