"""Alembic environment: always run programmatically by `provisioner.db.schema` with a connection
passed in `config.attributes["connection"]`."""

from __future__ import annotations

from alembic import context

from provisioner.db.models import Base

config = context.config
connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things; batch mode copies the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
