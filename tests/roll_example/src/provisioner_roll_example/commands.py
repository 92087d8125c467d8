"""The example roll's command."""

from __future__ import annotations

from typing import Any

from provisioner.cli.command import Command, Param
from provisioner.cli.context import Context


class HelloRoll(Command):
    """Greet from the example roll, with the number of hosts it sees."""

    name = "hello roll"
    params = (Param("who", "Whom to greet.", default="world", positional=True),)
    examples = (("rocks hello roll", "Say hello."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        hosts = ctx.reader.scalar("SELECT count(*) FROM hosts")
        ctx.write(f"hello {params['who']} from the example roll ({hosts} hosts)")
