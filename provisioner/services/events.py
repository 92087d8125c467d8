"""Install events: what installing nodes report, written to the database.

Most events (kickstart fetched, pre, post, ...) are history, queued and written in batches off
the request path: a kickstart storm serves thousands of kickstarts a second, and a database
commit per request for its "kickstart fetched" event would cost more than the kickstart itself.
`EventRecorder` queues them and a background thread writes them every `interval` seconds in one
transaction, calling each roll's `install_event` hook there. Events that change state (the end
of an install flips the boot action; partition reports) are written in the caller's session
before the request is answered: `install_finished`, `partitions_reported`.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from provisioner.db.reader import Reader
    from provisioner.hooks import Hooks

log = logging.getLogger("provisioner.events")


class SessionOwner(Protocol):
    """What the recorder needs of its owner (the web's state): sessions and the hooks."""

    hooks: Hooks

    def session(self) -> AbstractContextManager[Session]: ...


def install_finished(session: Session, hooks: Hooks, host_id: int, action: str) -> None:
    """The end of an install (Rocks' setPxeboot.cgi): the next network boot is `action` (`os`,
    or `install` for a reinstall), recorded as the event `done` or `reinstall`."""
    from provisioner.db.models import Host, InstallEvent
    from provisioner.services.boot import set_state

    row = session.get(Host, host_id)
    if row is None:
        from provisioner.errors import NotFound

        raise NotFound(f"host {host_id} is gone")
    set_state(session, row, action)
    event = "done" if action == "os" else "reinstall"
    session.add(InstallEvent(host_id=host_id, event=event, detail=json.dumps({"action": action})))
    hooks.install_event(session, row, event, {"action": action})


def partitions_reported(
    session: Session, hooks: Hooks, host_id: int, rows: Sequence[dict[str, str]]
) -> int:
    """The partitions an installed host reports, upserted by device; how many there were."""
    from provisioner.db.models import Host
    from provisioner.services.partitions import replace_partitions

    count = replace_partitions(session, host_id, rows)
    row = session.get(Host, host_id)
    if row is not None:
        hooks.install_event(session, row, "partitions", {"count": count})
    return count


class EventRow(NamedTuple):
    host_id: int
    created: Any
    event: str
    detail: str | None  # JSON


def events_of(reader: Reader, host_ids: list[int]) -> list[EventRow]:
    """These hosts' install events, oldest first."""
    clause, params = reader.in_clause("h", host_ids)
    rows = reader.all(
        f"SELECT host_id, created, event, detail FROM install_events WHERE host_id IN {clause} "
        "ORDER BY id",
        **params,
    )
    return [EventRow(*r) for r in rows]


class EventRecorder:
    def __init__(self, owner: SessionOwner, interval: float = 0.25) -> None:
        self.state = owner
        self.interval = interval
        # A deque: appends and pops are atomic without a lock (queue.Queue took two per event).
        self._queue: collections.deque[tuple[int, str, dict[str, Any]]] = collections.deque()
        self.limit = 100_000
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def record(self, host_id: int, event: str, detail: dict[str, Any]) -> None:
        if self._thread is None:
            self._ensure_thread()
        if len(self._queue) >= self.limit:
            log.warning("install event queue full; dropped %s for host %s", event, host_id)
            return
        self._queue.append((host_id, event, detail))

    def _ensure_thread(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="install-events", daemon=True
                    )
                    self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()
        self.flush()

    def flush(self) -> int:
        batch: list[tuple[int, str, dict[str, Any]]] = []
        pop = self._queue.popleft
        for _ in range(len(self._queue)):
            batch.append(pop())
        if not batch:
            return 0
        from sqlalchemy import select

        from provisioner.db.models import Host, InstallEvent

        hooks = self.state.hooks
        try:
            with self.state.session() as session:
                ids = {h for h, _, _ in batch}
                alive = set(session.scalars(select(Host.id).where(Host.id.in_(ids))))
                rows = [(h, e, json.dumps(d)) for h, e, d in batch if h in alive]
                if rows:
                    # One executemany, straight to the driver: a storm queues thousands of
                    # these a second (SQLAlchemy's insert() cost 20 us a row). Not marked as a
                    # change: events are history, not configuration, and bumping the
                    # generation would throw away every reader's cache four times a second.
                    conn = session.connection()
                    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
                    conn.exec_driver_sql(
                        f"INSERT INTO {InstallEvent.__tablename__} (host_id, event, detail) "
                        f"VALUES ({mark}, {mark}, {mark})",
                        rows,
                    )
                if hooks.has_impls("install_event"):
                    for host_id, event, detail in batch:
                        host = session.get(Host, host_id)
                        if host is not None:
                            hooks.install_event(session, host, event, detail)
        except Exception:  # noqa: BLE001 - a failed batch must not kill the writer thread
            log.exception("could not record %d install events", len(batch))
        return len(batch)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
