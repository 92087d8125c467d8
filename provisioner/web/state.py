"""Per-worker state of the web app: config, rolls, database handles, caches."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import current_app

from provisioner.db.reader import Reader

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

    from provisioner.config import Config
    from provisioner.hooks import Hooks
    from provisioner.pxe.bootconfig import BootConfigs
    from provisioner.services.events import EventRecorder
    from provisioner.services.hostargs import HostRow


class WebState:
    def __init__(self, config: Config, hooks: Hooks) -> None:
        self.config = config
        self.hooks = hooks
        self._local = threading.local()
        self._engine: Engine | None = None
        self._lock = threading.Lock()
        self._boot: BootConfigs | None = None
        self._events: EventRecorder | None = None

    # -- database -----------------------------------------------------------------------------

    def reader(self) -> Reader:
        """This thread's reader: no snapshot, each query sees the latest committed state."""
        reader = getattr(self._local, "reader", None)
        if reader is None:
            reader = Reader.connect(
                self.config.db_url, self.config.database_timeout, snapshot=False
            )
            self._local.reader = reader
        return reader

    @property
    def engine(self) -> Engine:
        with self._lock:
            if self._engine is None:
                from provisioner.db.engine import make_engine

                self._engine = make_engine(self.config.db_url, timeout=self.config.database_timeout)
            return self._engine

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One write transaction for the request (commit on success, roll back on error)."""
        from provisioner.db.engine import transaction

        with transaction(self.engine) as session:
            yield session

    def teardown(self, _exc: BaseException | None) -> None:
        # Readers live for the thread (connections are reused across requests).
        return None

    # -- services -----------------------------------------------------------------------------

    @property
    def boot(self) -> BootConfigs:
        if self._boot is None:
            from provisioner.pxe.bootconfig import BootConfigs

            self._boot = BootConfigs(self.config, self.reader, self.hooks)
        return self._boot

    @property
    def events(self) -> EventRecorder:
        if self._events is None:
            from provisioner.services.events import EventRecorder

            self._events = EventRecorder(self)
        return self._events

    def kickstart(self, reader: Reader, host: HostRow) -> str:
        """The host's kickstart from the first roll that renders one (the node graph last)."""
        from provisioner.errors import ProvisionerError
        from provisioner.services.attrs import LazyAttrs

        text = self.hooks.render_kickstart(self.config, reader, host, LazyAttrs(reader, host))
        if text is None:
            raise ProvisionerError(f"no roll renders a kickstart for {host.name}")
        return text

    def api_token(self) -> str:
        if self.config.api_token:
            return self.config.api_token
        return read_or_create_token(self.config.home / "api-token")


def read_or_create_token(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        import secrets

        path.parent.mkdir(parents=True, exist_ok=True)
        token = secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token + "\n")
        return token


def state() -> WebState:
    return current_app.extensions["provisioner"]  # type: ignore[no-any-return]


def client_ip(environ: dict[str, Any]) -> str:
    """The peer address; never a header a node could forge."""
    return str(environ.get("REMOTE_ADDR") or "")
