"""The `rocks` entry point: help, listings, one-line errors, exit codes, transactions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from provisioner.errors import Vetoed
from provisioner.hooks import Hooks, get_plugin_manager
from provisioner.hookspecs import hookimpl
from provisioner.testing.pytest_plugin import Rocks


def test_unknown_command_is_one_line_with_a_suggestion(rocks):
    result = rocks("lsit host")
    assert result.status == 2
    assert result.err.startswith(
        "error: unknown command 'rocks lsit host' (did you mean: rocks list host"
    )
    assert result.err.count("\n") == 1


def test_bare_prefix_lists_the_commands_below_it(rocks):
    out = rocks.ok("set host interface")
    names = [line.split("  ")[0].strip() for line in out.splitlines()]
    assert "rocks set host interface ip" in names
    assert "rocks set host interface mac" in names
    assert all(n.startswith("rocks set host interface") for n in names)


def test_help_of_a_command_shows_usage_params_and_examples(rocks):
    out = rocks.ok("set host attr help")
    assert out.startswith("usage: rocks set host attr {host...} attr=string value=string")
    assert "examples:" in out and "Kickstart_PublicHostname" in out
    assert rocks.ok("help set host attr") == out


def test_help_without_arguments_lists_verbs(rocks):
    out = rocks.ok("help")
    assert "verbs:" in out and "list" in out and "set" in out
    assert rocks.ok("") == out


def test_every_command_answers_help(rocks, hooks):
    from provisioner.cli.registry import Registry

    for name in Registry(hooks.register_commands()).refs:
        if name.startswith(
            (
                "list host profile",
                "list host xml",
                "list node xml",
                "report host graph",
                "list roll",
            )
        ):
            continue  # lands with its own issue
        result = rocks(*name.split(), "help")
        assert result.status == 0, f"rocks {name} help: {result.err}"
        assert result.out.startswith(f"usage: rocks {name}")


def test_unknown_host_is_a_one_line_error(rocks):
    result = rocks("list host attr nosuchhost")
    assert result.status == 1
    assert result.err == "error: unknown host 'nosuchhost'\n"


def test_missing_argument_names_it(rocks):
    result = rocks("set host attr compute-0-0")
    assert result.status == 2
    assert result.err.startswith("error: missing parameter: attr (usage: rocks set host attr")


def test_bad_key_names_it(rocks):
    result = rocks("list host colour=red")
    assert result.status == 2 and "unknown parameter 'colour'" in result.err


def test_uninitialised_database_says_what_to_do(tmp_path, hooks):
    from provisioner.config import Config

    rocks = Rocks(Config.for_home(tmp_path), hooks)
    result = rocks("list host")
    assert result.status == 3
    assert "run 'rocks init frontend'" in result.err and result.err.count("\n") == 1


def test_debug_shows_the_traceback(tmp_path, hooks):
    from provisioner.config import Config

    os.environ["PROVISIONER_TEST_DEBUG"] = "1"
    try:
        result = Rocks(Config.for_home(tmp_path), hooks)("list host")
    finally:
        del os.environ["PROVISIONER_TEST_DEBUG"]
    assert "Traceback" in result.err
    assert result.err.splitlines()[-1].startswith("error: no database at")


class KeepMe:
    """A roll that refuses to let compute-0-5 go."""

    @hookimpl
    def host_removing(self, session, host):
        if host.name == "compute-0-5":
            raise Vetoed("compute-0-5 is protected by the keep-me roll")


def test_a_failing_command_changes_nothing(config):
    hooks = Hooks(get_plugin_manager(extra=[("keepme", KeepMe())]))
    rocks = Rocks(config, hooks)
    rocks.ok("add host compute-0-0")
    rocks.ok("add host compute-0-5")
    rocks.ok("set host attr compute-0-0 color blue")
    before = rocks.ok("list host")
    result = rocks("remove host compute-0-0 compute-0-5")
    assert result.status == 1
    assert result.err == "error: compute-0-5 is protected by the keep-me roll\n"
    # compute-0-0 was removed first, then the veto rolled the whole command back.
    assert rocks.ok("list host") == before
    assert "blue" in rocks.ok("list host attr compute-0-0 attr=color")


def test_the_frontend_cannot_be_removed(rocks):
    result = rocks("remove host frontend")
    assert result.status == 1 and "frontend" in result.err
    assert "frontend:" in rocks.ok("list host")


def test_console_script_runs_and_pipes(config, tmp_path):
    """The installed `rocks` entry point, as a user runs it, closing the pipe early."""
    rocks_bin = Path(sys.executable).parent / "rocks"
    env = {
        **os.environ,
        "PROVISIONER_HOME": str(config.home),
        "PROVISIONER_DATABASE_URL": config.db_url,
    }
    out = subprocess.run(
        [rocks_bin, "list", "host"], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[1].startswith("frontend:")
    bad = subprocess.run(
        [rocks_bin, "list", "host", "nosuch"], env=env, capture_output=True, text=True, timeout=60
    )
    assert (
        bad.returncode == 1 and bad.stderr == "error: unknown host 'nosuch'\n" and bad.stdout == ""
    )
    piped = subprocess.run(
        f"'{rocks_bin}' list host attr | head -1",
        shell=True,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert piped.stdout.startswith("HOST") and "Traceback" not in piped.stderr


def test_insert_ethers_turns_discovery_on_shows_hosts_and_off(config, rocks):
    """The Rocks program, scripted: on, a machine appears and fetches its kickstart, off."""
    import threading

    from provisioner.cli import insert_ethers
    from provisioner.db.engine import make_engine, transaction
    from provisioner.services.discovery import discover

    os.environ["PROVISIONER_HOME"] = str(config.home)
    os.environ["PROVISIONER_DATABASE_URL"] = config.db_url
    import contextlib
    import io

    out = io.StringIO()

    def later() -> None:
        import time

        time.sleep(1.5)
        engine = make_engine(config.db_url)
        with transaction(engine) as session:
            host = discover(session, rocks.hooks, "52:54:00:ee:00:01")
            assert host is not None
            from provisioner.db.models import InstallEvent

            session.add(InstallEvent(host_id=host.id, event="kickstart", detail="{}"))
        engine.dispose()

    t = threading.Thread(target=later)
    t.start()
    try:
        with contextlib.redirect_stdout(out):
            status = insert_ethers.main(
                ["--appliance", "compute", "--rack", "2", "--timeout", "20", "--count", "1"]
            )
    finally:
        t.join()
        del os.environ["PROVISIONER_HOME"], os.environ["PROVISIONER_DATABASE_URL"]
    assert status == 0
    text = out.getvalue()
    assert "discovery on" in text and "discovery off" in text
    assert "compute-2-0" in text and "52:54:00:ee:00:01" in text and "(*)" in text
    assert "discovery is off" in rocks.ok("list discovery")
