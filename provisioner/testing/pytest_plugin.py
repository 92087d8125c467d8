"""pytest fixtures: `rocks` (run commands in-process), `cluster_url` (an initialised database,
once on SQLite and once on PostgreSQL), `empty_url`, `config`, `hooks`, `postgres_server`.

Imports of the project happen inside fixtures, so loading the plugin costs nothing.
"""

from __future__ import annotations

import io
import itertools
import os
import shlex
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# The frontend every test cluster starts with (no detection of this machine's addresses).
TEST_ATTRS = (
    "Kickstart_PrivateHostname=frontend",
    "Kickstart_PublicHostname=frontend.example.org",
    "Kickstart_PublicAddress=137.110.119.114",
    "Kickstart_PublicNetmask=255.255.255.0",
    "Kickstart_PublicGateway=137.110.119.1",
    "Kickstart_PublicDNSDomain=example.org",
    "Kickstart_PublicDNSServers=127.0.0.1",
)
_counter = itertools.count()


@dataclass
class Result:
    status: int
    out: str
    err: str

    @property
    def ok(self) -> bool:
        return self.status == 0

    def lines(self) -> list[str]:
        return self.out.splitlines()


class Rocks:
    """`rocks("list host compute")` or `rocks("set", "host", "attr", ...)` in-process."""

    def __init__(self, config: Any, hooks: Any) -> None:
        self.config = config
        self.hooks = hooks

    def __call__(self, *words: str, stdin: str | None = None) -> Result:
        from provisioner.cli.main import App

        argv: Sequence[str] = shlex.split(words[0]) if len(words) == 1 else list(words)
        out, err = io.StringIO(), io.StringIO()
        app = App(self.config, hooks=self.hooks, stdout=out, stderr=err)
        old_stdin = None
        if stdin is not None:
            import sys

            old_stdin, sys.stdin = sys.stdin, io.StringIO(stdin)
        try:
            status = app.main(list(argv), debug=bool(os.environ.get("PROVISIONER_TEST_DEBUG")))
        finally:
            app.close()
            if old_stdin is not None:
                import sys

                sys.stdin = old_stdin
        return Result(status, out.getvalue(), err.getvalue())

    def ok(self, *words: str, stdin: str | None = None) -> str:
        """Run and require success; returns stdout."""
        result = self(*words, stdin=stdin)
        assert result.status == 0, f"rocks {' '.join(words)} failed ({result.status}): {result.err}"
        return result.out


@pytest.fixture(scope="session")
def hooks() -> Any:
    from provisioner.hooks import Hooks, get_plugin_manager

    return Hooks(get_plugin_manager())


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    from provisioner.testing.postgres import PostgresServer, PostgresUnavailable

    try:
        server = PostgresServer().start()
    except PostgresUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL must run in CI: {exc}")
        pytest.skip(f"PostgreSQL tests need Debian's postgresql package: {exc}")
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def empty_url(request: pytest.FixtureRequest, db_backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty database (no schema) on the current backend."""
    if db_backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'state' / 'provisioner.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    name = f"t{os.getpid()}_{next(_counter)}"
    yield server.create_database(name)
    server.drop_database(name)


@pytest.fixture(scope="session")
def _seeded(tmp_path_factory: pytest.TempPathFactory, hooks: Any) -> dict[str, Any]:
    """Initialised template databases, made once per session and per backend on demand."""
    return {"dir": tmp_path_factory.mktemp("seed"), "hooks": hooks}


def _init_cluster(url: str, home: Path, hooks: Any) -> None:
    from provisioner.config import Config

    rocks = Rocks(Config.for_home(home, database_url=url), hooks)
    rocks.ok("init", "frontend", *TEST_ATTRS)


@pytest.fixture
def cluster_url(
    request: pytest.FixtureRequest, db_backend: str, tmp_path: Path, _seeded: dict[str, Any]
) -> Iterator[str]:
    """A database initialised by `rocks init frontend` (frontend at 137.110.119.114)."""
    if db_backend == "sqlite":
        seed = _seeded["dir"] / "seed.db"
        if not seed.exists():
            _init_cluster(f"sqlite:///{seed}", _seeded["dir"], _seeded["hooks"])
        target = tmp_path / "state" / "provisioner.db"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(seed, target)
        yield f"sqlite:///{target}"
        return
    server = request.getfixturevalue("postgres_server")
    if "pg_seed" not in _seeded:
        server.create_database("seed")
        _init_cluster(server.url("seed"), _seeded["dir"], _seeded["hooks"])
        _seeded["pg_seed"] = True
    name = f"t{os.getpid()}_{next(_counter)}"
    yield server.create_database(name, template="seed")
    server.drop_database(name)


@pytest.fixture
def config(tmp_path: Path, cluster_url: str) -> Any:
    from provisioner.config import Config

    return Config.for_home(tmp_path / "state", database_url=cluster_url)


@pytest.fixture
def rocks(config: Any, hooks: Any) -> Rocks:
    """Run `rocks` commands in-process against a fresh initialised cluster database."""
    return Rocks(config, hooks)


@pytest.fixture
def engine(config: Any) -> Iterator[Any]:
    from provisioner.db.engine import make_engine

    e = make_engine(config.db_url)
    yield e
    e.dispose()
