"""Small SQLAlchemy helpers the services share."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session


def upsert(
    session: Session, model: type[Any], keys: dict[str, Any], values: dict[str, Any]
) -> None:
    """Insert or update one row by its unique key, safely against concurrent writers.

    SQLite and PostgreSQL both have INSERT ... ON CONFLICT DO UPDATE; using it means two
    commands setting the same attribute at once both succeed, the later value winning.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - other databases: plain read-modify-write
        from sqlalchemy import select

        row = session.scalars(select(model).filter_by(**keys)).first()
        if row is None:
            session.add(model(**keys, **values))
        else:
            for k, v in values.items():
                setattr(row, k, v)
        session.flush()
        return
    stmt = insert(model).values(**keys, **values)
    stmt = stmt.on_conflict_do_update(index_elements=list(keys), set_=values)
    session.execute(stmt)
