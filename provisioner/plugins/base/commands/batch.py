"""`rocks batch`: many commands in one process, one transaction per line."""

from __future__ import annotations

import shlex
import sys
from typing import Any

from provisioner.cli.command import Command, Param
from provisioner.cli.context import Context
from provisioner.errors import ProvisionerError, UsageError


class Batch(Command):
    """Run rocks commands from a file or standard input, one per line.

    Each line is a command as typed after 'rocks' (a leading 'rocks' is allowed); '#' starts a
    comment. Every line runs in its own transaction, so a failing line changes nothing and the
    others still run (unless stop-on-error=yes). A site script setting a thousand attributes
    pays the interpreter's start-up once instead of a thousand times.
    """

    name = "batch"
    transactional = False
    params = (
        Param("file", "File of commands; - for standard input.", default="-", positional=True),
        Param("stop-on-error", "Stop at the first failing line.", "bool", False),
    )
    examples = (
        ("rocks batch site-setup.rocks", "Run a file of commands."),
        ("printf 'set attr x11 true\\nlist attr x11\\n' | rocks batch", "From a pipe."),
    )

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        app = ctx.app
        source = params["file"]
        try:
            stream = sys.stdin if source == "-" else open(source)  # noqa: SIM115
        except OSError as exc:
            raise UsageError(f"cannot read {source}: {exc.strerror}") from None
        failed = total = 0
        try:
            for number, line in enumerate(stream, 1):
                try:
                    words = shlex.split(line, comments=True)
                except ValueError as exc:
                    words, error = [], f"line {number}: {exc}"
                    app.stderr.write(f"error: {error}\n")
                    failed += 1
                    total += 1
                    continue
                if words[:1] == ["rocks"]:
                    words = words[1:]
                if not words:
                    continue
                if words[0] == "batch":
                    app.stderr.write(f"error: line {number}: batch cannot run batch\n")
                    failed += 1
                    continue
                total += 1
                try:
                    app.stdout.write(app.execute(words))
                except ProvisionerError as exc:
                    failed += 1
                    app.stderr.write(f"error: line {number}: {exc}\n")
                    if params["stop-on-error"]:
                        break
                except Exception as exc:  # noqa: BLE001 - one bad line must not hide the rest
                    from provisioner.db.errors import translate as translate_db_error

                    translated = translate_db_error(exc)
                    if translated is None:
                        raise
                    failed += 1
                    app.stderr.write(f"error: line {number}: {translated}\n")
                    if params["stop-on-error"]:
                        break
            app.stdout.flush()
        finally:
            if stream is not sys.stdin:
                stream.close()
        if failed:
            raise ProvisionerError(f"{failed} of {total} commands failed")
