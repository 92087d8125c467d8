"""A third-party roll, loaded the way a user installs one: through its entry point in the
`provisioner` group. Its command, its node file and its fake VM driver are all honoured; the
disabled_plugins setting keeps it out; a misspelled hook implementation fails the start."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SRC = HERE / "src"


def install(tmp_path: Path, monkeypatch, name: str, version: str, entries: dict[str, str]) -> None:
    """What `pip install` leaves behind that entry-point discovery reads: a dist-info
    directory with METADATA and entry_points.txt, on sys.path, beside the package."""
    site = tmp_path / "site-packages"
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = "".join(f"{key} = {value}\n" for key, value in entries.items())
    (info / "entry_points.txt").write_text(f"[provisioner]\n{lines}")
    monkeypatch.syspath_prepend(str(SRC))
    monkeypatch.syspath_prepend(str(site))


@pytest.fixture
def example(tmp_path, monkeypatch, config):
    """The example roll installed from its pyproject.toml, and a `rocks` that loads it."""
    from provisioner.hooks import Hooks
    from provisioner.testing.pytest_plugin import Rocks

    project = tomllib.loads((HERE / "pyproject.toml").read_text())["project"]
    install(
        tmp_path,
        monkeypatch,
        project["name"],
        project["version"],
        project["entry-points"]["provisioner"],
    )
    from provisioner_roll_example import fake_driver

    fake_driver.VMS.clear()
    fake_driver.CALLS.clear()
    return Rocks(config, Hooks.from_config(config))


def test_the_roll_is_loaded_through_its_entry_point(example):
    rows = {r["name"]: r for r in json.loads(example.ok("list roll output-format=json"))}
    assert rows["example"]["version"] == "0.1"
    assert rows["example"]["source"] == "provisioner-roll-example (provisioner_roll_example)"
    assert rows["example"]["enabled"] is True
    assert {"base", "xen", "example"} <= set(rows)


def test_hook_register_commands(example):
    assert example.ok("hello roll") == "hello world from the example roll (1 hosts)\n"
    assert example.ok("hello roll rocks") == "hello rocks from the example roll (1 hosts)\n"
    listed = json.loads(example.ok("list roll command example output-format=json"))
    assert listed == [
        {
            "roll": "example",
            "command": "hello roll",
            "summary": "Greet from the example roll, with the number of hosts it sees.",
        }
    ]
    assert "rocks hello roll [who=string]" in example.ok("hello roll help")


def test_hook_node_directories(example):
    node_dir = SRC / "provisioner_roll_example"
    assert node_dir in example.hooks.node_directories()
    out = example.ok("list node xml example")
    assert "example-roll-package" in out and "example roll was here" in out


def test_hook_register_vm_drivers(example):
    from provisioner_roll_example.fake_driver import CALLS, VMS

    rocks = example
    assert set(rocks.hooks.vm_drivers()) == {"libvirt", "fake"}
    for n, name in enumerate(("vm-container-0-0", "vm-container-0-1")):
        rocks.ok(f"add host {name}")
        rocks.ok(f"add host interface {name} eth0 52:54:00:bb:00:0{n} ip=10.1.255.{250 - n}")
        rocks.ok(f"set host attr {name} vm_driver fake")
        rocks.ok(f"set host attr {name} vm_uri fake://{name}")

    def status() -> str:
        return json.loads(rocks.ok("list host vm status=y output-format=json"))[0]["status"]

    rocks.ok("add host vm vm-container-0-0 membership=Compute")
    assert status() == "nostate"
    rocks.ok("create host vm compute-0-0-0")
    assert VMS[("vm-container-0-0", "compute-0-0-0")]["state"] == "active" == status()
    assert CALLS[:2] == [("define", "compute-0-0-0"), ("start", "compute-0-0-0")]
    for command, state in [
        ("pause", "paused"),
        ("resume", "active"),
        ("save", "shutoff"),
        ("restore", "active"),
        ("stop", "shutoff"),
        ("start", "active"),
    ]:
        rocks.ok(f"{command} host vm compute-0-0-0")
        assert status() == state, command
    report = json.loads(rocks.ok("report host vm compute-0-0-0"))
    assert report["fake"]["uri"] == "fake://vm-container-0-0" and report["fake"]["driver"] == "fake"
    result = rocks("move host vm compute-0-0-0 vm-container-0-1")
    assert result.status == 0 and "100%" in result.err
    assert ("vm-container-0-1", "compute-0-0-0") in VMS
    assert json.loads(rocks.ok("list host vm output-format=json"))[0]["host"] == "vm-container-0-1"
    assert rocks.ok("open host console compute-0-0-0") == "fake console of compute-0-0-0\n"
    out = rocks.ok("open host console compute-0-0-0 attach=yes", stdin="root\n")
    assert out == "compute-0-0-0 login: ROOT\n"
    # a failure of the driver is one line naming the VM and its container
    assert rocks("resume host vm compute-0-0-0").err == (
        "error: cannot resume VM compute-0-0-0 on container vm-container-0-1: "
        "fake VM is active, cannot resume\n"
    )
    rocks.ok("remove host compute-0-0-0")
    assert ("undefine", "compute-0-0-0") == CALLS[-1] and VMS == {}


def test_disabled_plugins_keeps_a_roll_out(tmp_path, monkeypatch, config):
    from provisioner.hooks import Hooks
    from provisioner.testing.pytest_plugin import Rocks

    project = tomllib.loads((HERE / "pyproject.toml").read_text())["project"]
    install(tmp_path, monkeypatch, project["name"], "0.1", project["entry-points"]["provisioner"])
    blocked = config.with_(disabled_plugins=("example", "xen"))
    rocks = Rocks(blocked, Hooks.from_config(blocked))
    assert rocks.hooks.roll_names() == ["base"]
    assert rocks("hello roll").err.startswith("error: unknown command 'rocks hello roll'")
    assert rocks("list cluster").err.startswith("error: unknown command 'rocks list cluster'")
    rows = {r["name"]: r for r in json.loads(rocks.ok("list roll output-format=json"))}
    assert rows["example"]["enabled"] is False and rows["xen"]["enabled"] is False
    assert rocks.hooks.vm_drivers() == {}
    from provisioner.errors import ConfigError

    with pytest.raises(ConfigError, match="the 'base' roll cannot be disabled"):
        Hooks.from_config(config.with_(disabled_plugins=("base",)))


def test_a_misspelled_hook_implementation_fails_at_start(tmp_path, monkeypatch, config):
    from provisioner.cli.main import App
    from provisioner.errors import ConfigError
    from provisioner.hooks import Hooks

    install(
        tmp_path,
        monkeypatch,
        "provisioner-roll-broken",
        "0.1",
        {"broken": "provisioner_roll_broken"},
    )
    with pytest.raises(ConfigError, match=r"roll 'broken'.*register_comands"):
        Hooks.from_config(config)
    with pytest.raises(ConfigError, match="roll 'broken'"):
        App(config)
    # a site that cannot fix the roll yet blocks it, and starts
    assert (
        "broken" not in Hooks.from_config(config.with_(disabled_plugins=("broken",))).roll_names()
    )
