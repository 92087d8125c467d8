"""Engine and session factories. The caller owns the session: one per command, per request,
per daemon unit of work (DESIGN "Style").

SQLite gets WAL, a busy timeout and foreign keys; transactions that write start with
BEGIN IMMEDIATE so that two writers queue on the lock instead of one failing with
"database is locked" when it upgrades a read lock. Every commit that changed something bumps
the `generation` counter in `meta`, which is how readers with caches learn they are stale.
"""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import ORMExecuteState, Session

from provisioner.db.models import Meta

GENERATION_KEY = "generation"
_TIMEOUTS: weakref.WeakKeyDictionary[Engine, float] = weakref.WeakKeyDictionary()
_BUMP = (
    update(Meta.__table__)
    .where(Meta.__table__.c.key == GENERATION_KEY)
    .values(value=Meta.__table__.c.value + 1)
)


def make_engine(url: str, timeout: int = 60, **kwargs: Any) -> Engine:
    """An engine for `url`, with the SQLite settings this project relies on."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, timeout, **kwargs)
    kwargs.setdefault("pool_pre_ping", True)
    if parsed.get_backend_name() == "postgresql":
        connect_args = kwargs.setdefault("connect_args", {})
        connect_args.setdefault("connect_timeout", min(timeout, 30))
    return create_engine(url, **kwargs)


def _sqlite_engine(url: str, timeout: int, **kwargs: Any) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": timeout}, **kwargs)
    _TIMEOUTS[engine] = timeout

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        # pysqlite's own transaction handling would defeat BEGIN IMMEDIATE; we emit BEGIN.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


class TrackedSession(Session):
    """A session that bumps the `generation` counter when it commits a change, and that may
    hold this database's writer lock until it is closed (see `WriterLock`)."""

    writer_lock: WriterLock | None = None

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self.writer_lock is not None:
                self.writer_lock.release()
                self.writer_lock = None


class WriterLock:
    """Writers of one SQLite file take turns on an flock before BEGIN IMMEDIATE.

    SQLite's own busy handler polls with sleeps growing to 100 ms, so a burst of concurrent
    writers (a discovery storm, fifty `rocks` commands) mostly sleeps; a kernel lock hands the
    database over the moment the holder is done. Waiting gives up after `timeout` seconds.
    """

    def __init__(self, path: str, timeout: float) -> None:
        import fcntl

        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + timeout
        pause = 0.0005
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(self._fd)
                    from provisioner.errors import DatabaseError

                    raise DatabaseError(
                        "the database is busy (another writer holds it); try again"
                    ) from None
                time.sleep(pause)
                pause = min(pause * 2, 0.005)

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = -1


def new_session(engine: Engine, write: bool = True) -> Session:
    """A session whose transaction takes the write lock up front when `write` (SQLite)."""
    bind = engine.execution_options(sqlite_begin="IMMEDIATE") if write else engine
    session = TrackedSession(bind=bind, expire_on_commit=False, autoflush=True)
    if write and engine.dialect.name == "sqlite":
        database = engine.url.database
        if database and database != ":memory:":
            timeout = _TIMEOUTS.get(engine, 60)
            session.writer_lock = WriterLock(database + "-writelock", timeout)
    return session


@contextmanager
def transaction(engine: Engine, write: bool = True) -> Iterator[Session]:
    """One unit of work: commit if the block ends normally, roll back if it raises."""
    session = new_session(engine, write=write)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# Listeners on the class, registered once: per-session registration costs more than the
# statements of a small command in bulk mode.
@event.listens_for(TrackedSession, "after_flush")
def _flushed(sess: Session, _ctx: Any) -> None:
    sess.info["changed"] = True


@event.listens_for(TrackedSession, "do_orm_execute")
def _executed(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        state.session.info["changed"] = True


@event.listens_for(TrackedSession, "before_commit")
def _bump(sess: Session) -> None:
    sess.flush()
    if sess.info.pop("changed", False):
        sess.connection().execute(_BUMP)


@event.listens_for(TrackedSession, "after_rollback")
def _rolled_back(sess: Session) -> None:
    sess.info.pop("changed", None)
