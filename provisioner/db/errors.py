"""Database and driver errors that have a plain meaning, as one-line errors: the one place that
knows the drivers' wording (SQLite, psycopg), used by the CLI, the web and the reader."""

from __future__ import annotations

from provisioner.errors import Conflict, DatabaseError, ProvisionerError


def translate(exc: BaseException) -> ProvisionerError | None:
    """The one-line error `exc` means, or None when it is not a database error we can name."""
    module = type(exc).__module__ or ""
    if not module.startswith(("sqlalchemy", "sqlite3", "psycopg")):
        return None
    text = str(getattr(exc, "orig", None) or exc)
    if "no such table" in text or ("relation" in text and "does not exist" in text):
        return DatabaseError("the database is not initialised: run 'rocks init frontend'")
    if "database is locked" in text or "could not obtain lock" in text:
        return DatabaseError("the database is busy (locked by another writer); try again")
    if (
        "unable to open database" in text
        or "could not connect" in text
        or "Connection refused" in text
    ):
        return DatabaseError(f"cannot open the database: {text.splitlines()[0]}")
    if type(exc).__name__ == "IntegrityError":
        return Conflict(f"the change conflicts with existing data: {text.splitlines()[0]}")
    return None
