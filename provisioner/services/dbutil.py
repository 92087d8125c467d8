"""Small SQLAlchemy helpers the services share."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable


@lru_cache(maxsize=64)
def _upsert_statement(
    dialect: str, model: type[Any], keys: tuple[str, ...], values: tuple[str, ...]
) -> Executable:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(model.__table__).values({c: bindparam(c) for c in keys + values})
    return stmt.on_conflict_do_update(
        index_elements=list(keys), set_={c: stmt.excluded[c] for c in values}
    )


def upsert(
    session: Session, model: type[Any], keys: dict[str, Any], values: dict[str, Any]
) -> None:
    """Insert or update one row by its unique key, safely against concurrent writers.

    SQLite and PostgreSQL both have INSERT ... ON CONFLICT DO UPDATE; using it means two
    commands setting the same attribute at once both succeed, the later value winning. The
    statement is built once per shape: bulk mode runs thousands of these.
    """
    dialect = session.get_bind().dialect.name
    if dialect not in ("postgresql", "sqlite"):  # pragma: no cover - read-modify-write elsewhere
        from sqlalchemy import select

        row = session.scalars(select(model).filter_by(**keys)).first()
        if row is None:
            session.add(model(**keys, **values))
        else:
            for k, v in values.items():
                setattr(row, k, v)
        session.flush()
        return
    stmt = _upsert_statement(dialect, model, tuple(keys), tuple(values))
    session.connection().execute(stmt, {**keys, **values})
    mark_changed(session)


def mark_changed(session: Session) -> None:
    """Record that this transaction wrote, for writes that bypass the ORM unit of work."""
    session.info["changed"] = True
