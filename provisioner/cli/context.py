"""What a running command gets: the config, the hooks, its database handles and its output.

A command that writes gets a SQLAlchemy session in a write transaction and a reader on the same
connection; a read-only command gets only a light reader (no SQLAlchemy import), which is what
keeps `rocks list host` fast. The App commits or rolls back; commands never do.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from provisioner.cli.output import Table

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from provisioner.cli.main import App
    from provisioner.config import Config
    from provisioner.db.reader import Reader
    from provisioner.hooks import Hooks
    from provisioner.services.hostargs import HostRow


class Context:
    def __init__(self, app: App, reader: Reader, session: Session | None = None) -> None:
        self.app = app
        self.reader = reader
        self._session = session
        self.tables: list[Table] = []
        self.chunks: list[str | None] = []
        self.stderr: TextIO = app.stderr or sys.stderr

    @property
    def config(self) -> Config:
        return self.app.config

    @property
    def hooks(self) -> Hooks:
        return self.app.hooks

    @property
    def session(self) -> Session:
        if self._session is None:
            raise RuntimeError("this command is declared read-only (writes = False)")
        return self._session

    def table(self, header: Sequence[str], trim_owner: bool = False) -> Table:
        table = Table(header, trim_owner=trim_owner)
        self.tables.append(table)
        self.chunks.append(None)  # placeholder keeps tables and text in order
        return table

    def write(self, text: str) -> None:
        if text:
            self.chunks.append(text if text.endswith("\n") else text + "\n")

    def progress(self, text: str) -> None:
        """Progress goes to stderr at once, so long work shows while it happens."""
        self.stderr.write(text)
        self.stderr.flush()

    def hosts(self, words: Sequence[str], *, at_least_one: bool = False) -> list[HostRow]:
        from provisioner.errors import UsageError
        from provisioner.services.hostargs import resolve_hosts

        hosts = resolve_hosts(self.reader, words)
        if at_least_one and not hosts:
            raise UsageError("no host matches")
        return hosts

    def host(self, word: str) -> HostRow:
        from provisioner.services.hostargs import resolve_host

        return resolve_host(self.reader, word)

    def render(self, params: dict[str, Any]) -> str:
        fmt = params.get("output-format") or "table"
        header = params.get("output-header", True)
        cols = params.get("output-col") or ""
        out: list[str] = []
        tables = iter(self.tables)
        for chunk in self.chunks:
            if chunk is None:
                out.append(next(tables).render(fmt, header if header is not None else True, cols))
            else:
                out.append(chunk)
        return "".join(out)
