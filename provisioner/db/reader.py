"""Read-only access in plain SQL over a DB-API connection.

Importing SQLAlchemy costs about half a second on a small server; `rocks list host` must answer
in a fraction of that, and the kickstart, TFTP and DNS services answer thousands of reads a
second. So reads go through `Reader`: the same SQL on a light connection of its own (sqlite3 or
psycopg, for read-only commands) or on the connection of a SQLAlchemy session (inside a write
command or a request, seeing that transaction's changes). Writes always go through the
services and the ORM.

SQL is written with `:name` parameters; for psycopg they are rewritten to `%(name)s` once.
Tests run every query on SQLite and PostgreSQL against the migrated schema.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provisioner.db.errors import translate
from provisioner.errors import DatabaseError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

_NAMED = re.compile(r"(?<![:\w]):(\w+)")


class Reader:
    """Runs read-only SQL and returns tuples. Owns its connection only when made by `connect`."""

    def __init__(self, dbapi_conn: Any, dialect: str, owned: bool = False) -> None:
        self._conn = dbapi_conn
        self.dialect = dialect
        self._owned = owned
        self._sql_cache: dict[str, str] = {}

    @classmethod
    def connect(cls, url: str, timeout: int = 60, snapshot: bool = True) -> Reader:
        """A light connection of its own: no SQLAlchemy import.

        With `snapshot` (a command) every query sees the database as of the first one; without
        (a long-lived reader in a daemon) every query sees the latest committed state.
        """
        scheme, _, rest = url.partition("://")
        backend = scheme.split("+", 1)[0]
        if backend == "sqlite":
            import sqlite3

            path = rest[1:] if rest.startswith("/") else rest
            if path and path != ":memory:" and not Path(path).is_file():
                raise DatabaseError(
                    f"no database at {path}: run 'rocks init frontend' to create it"
                )
            conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            if snapshot:
                conn.execute("BEGIN")
            return cls(conn, "sqlite", owned=True)
        if backend in ("postgresql", "postgres"):
            try:
                import psycopg
            except ImportError as exc:  # pragma: no cover - psycopg is a dependency
                raise DatabaseError(f"PostgreSQL driver missing: {exc}") from None
            try:
                conn = psycopg.connect(
                    "postgresql://" + rest,
                    connect_timeout=min(timeout, 30),
                    autocommit=not snapshot,
                )
            except psycopg.OperationalError as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                raise DatabaseError(f"cannot connect to the database: {first}") from None
            return cls(conn, "postgresql", owned=True)
        raise DatabaseError(f"unsupported database URL scheme '{scheme}'")

    @classmethod
    def for_session(cls, session: Session) -> Reader:
        """Reads inside the session's own transaction (it sees its flushed changes)."""
        session.flush()
        conn = session.connection()
        return cls(conn.connection.dbapi_connection, conn.dialect.name)

    def _sql(self, sql: str) -> str:
        if self.dialect == "sqlite":
            return sql
        cached = self._sql_cache.get(sql)
        if cached is None:
            cached = _NAMED.sub(r"%(\1)s", sql.replace("%", "%%"))
            self._sql_cache[sql] = cached
        return cached

    def all(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        cur = self._conn.cursor()
        try:
            cur.execute(self._sql(sql), params)
            return [tuple(r) for r in cur.fetchall()]
        except Exception as exc:
            raise _translate(exc) from exc
        finally:
            cur.close()

    def one(self, sql: str, **params: Any) -> tuple[Any, ...] | None:
        rows = self.all(sql, **params)
        return rows[0] if rows else None

    def scalar(self, sql: str, **params: Any) -> Any:
        row = self.one(sql, **params)
        return row[0] if row else None

    def column(self, sql: str, **params: Any) -> list[Any]:
        return [r[0] for r in self.all(sql, **params)]

    def pairs(self, sql: str, **params: Any) -> dict[Any, Any]:
        """The first column of each row to its second (`SELECT key, value ...`)."""
        return {r[0]: r[1] for r in self.all(sql, **params)}

    def in_clause(self, prefix: str, values: Sequence[Any]) -> tuple[str, dict[str, Any]]:
        """`(:p0, :p1, ...)` and its parameters, for `WHERE x IN ...`."""
        names = {f"{prefix}{i}": v for i, v in enumerate(values)}
        if not names:
            return "(NULL)", {}
        return "(" + ", ".join(":" + n for n in names) + ")", names

    def generation(self) -> int:
        return int(self.scalar("SELECT value FROM meta WHERE key = 'generation'") or 0)

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owned:
            try:
                self._conn.rollback()
            except Exception:  # noqa: BLE001 - closing anyway
                pass
            self._conn.close()


def _translate(exc: Exception) -> Exception:
    """Missing tables mean an uninitialised database; say so instead of a driver message."""
    return translate(exc) or exc


def rows_to_dicts(cols: Iterable[str], rows: Iterable[tuple[Any, ...]]) -> list[dict[str, Any]]:
    names = list(cols)
    return [dict(zip(names, r, strict=True)) for r in rows]
