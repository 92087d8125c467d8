"""Every hook is documented in docs/hooks.md and tested (R6), and each hook's test shows that
a plugin implementing it is honoured. The hooks the Xen roll and the example roll exercise
are tested beside them (tests/xen, tests/roll_example)."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from provisioner import hookspecs
from provisioner.hookspecs import hookimpl

ROOT = Path(__file__).resolve().parent.parent
HOOKS_MD = ROOT / "docs" / "hooks.md"


def specs() -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(fn)
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(fn, "provisioner_spec")
    }


def test_hooks_are_found():
    assert {"register_commands", "host_removing", "register_vm_drivers"} <= set(specs())


@pytest.mark.parametrize("name", sorted(specs()))
def test_hook_is_documented_with_its_arguments(name):
    text = HOOKS_MD.read_text()
    m = re.search(rf"^## {name}\((.*)\)$", text, re.MULTILINE)
    assert m, f"docs/hooks.md has no '## {name}(...)' section"
    documented = [a.strip() for a in m.group(1).split(",") if a.strip()]
    assert documented == list(specs()[name].parameters), f"arguments of {name} differ"


@pytest.mark.parametrize("name", sorted(specs()))
def test_hook_has_a_test(name):
    pattern = re.compile(rf"^\s*def test_hook_{name}\(", re.MULTILINE)
    found = [p for p in (ROOT / "tests").rglob("*.py") if pattern.search(p.read_text())]
    assert found, f"no test named test_hook_{name} under tests/"


@pytest.mark.parametrize("name", sorted(specs()))
def test_hookspec_is_typed_and_explained(name):
    fn = getattr(hookspecs, name)
    sig = specs()[name]
    assert fn.__doc__ and fn.__doc__.strip(), f"{name} has no docstring"
    assert sig.return_annotation is not inspect.Signature.empty, f"{name} has no return type"
    for param in sig.parameters.values():
        assert param.annotation is not inspect.Parameter.empty, f"{name}({param.name}) untyped"
    if fn.provisioner_spec.get("firstresult"):
        assert "Stops at first non-None result" in fn.__doc__


def hooks_with(*plugins: object):
    from provisioner.hooks import Hooks, get_plugin_manager

    extra = [(f"plugin{n}", p) for n, p in enumerate(plugins)]
    return Hooks(get_plugin_manager(extra=extra))


def rocks_with(config, *plugins: object):
    from provisioner.testing.pytest_plugin import Rocks

    return Rocks(config, hooks_with(*plugins))


def test_hook_register_appliances(config):
    class Robots:
        @hookimpl
        def register_appliances(self):
            from provisioner.specs import ApplianceSpec

            return [ApplianceSpec("robot", "Robots", node="compute", attrs={"wheels": "4"})]

    rocks = rocks_with(config, Robots())
    rocks.ok("init frontend")
    assert "Robots:" in rocks.ok("list membership")
    rocks.ok("add host robot-0-0")
    attrs = rocks.ok("report host attr robot-0-0").splitlines()
    assert "wheels:4" in attrs and "appliance:robot" in attrs


def test_hook_register_bootactions(config):
    class Actions:
        @hookimpl
        def register_bootactions(self):
            from provisioner.specs import BootActionSpec

            return [BootActionSpec("install robot", "vmlinuz-robot", "initrd-robot", "ks x=1")]

    rocks = rocks_with(config, Actions())
    rocks.ok("init frontend")
    rows = {r["action"]: r for r in json.loads(rocks.ok("list bootaction output-format=json"))}
    assert rows["install robot"]["kernel"] == "vmlinuz-robot"
    assert rows["install robot"]["args"] == "ks x=1"


def test_hook_register_attributes(config):
    class Attrs:
        @hookimpl
        def register_attributes(self):
            from provisioner.specs import AttrSpec

            return [AttrSpec("robot_color", "blue", "Color of robots.")]

    rocks = rocks_with(config, Attrs())
    rocks.ok("init frontend")
    assert "robot_color:blue" in rocks.ok("report host attr frontend").splitlines()


class Recorder:
    """Records the life-cycle hooks and leaves a mark through the caller's session."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, object]] = []

    @hookimpl
    def host_added(self, session, host, hooks):
        from provisioner.services.attrs import set_host

        self.calls.append(("added", host.name, hooks))
        set_host(session, host.id, "seen_by_plugin", "yes")

    @hookimpl
    def host_removing(self, host):
        from provisioner.errors import Vetoed

        self.calls.append(("removing", host.name, None))
        if host.name == "keep-me":
            raise Vetoed("keep-me is protected by the plugin")

    @hookimpl
    def host_changed(self, host, changes):
        self.calls.append(("changed", host.name, dict(changes)))

    @hookimpl
    def install_event(self, session, host, event, detail):
        from provisioner.services.attrs import set_host

        self.calls.append((event, host.name, detail))
        set_host(session, host.id, "install_state", event)


def test_hook_host_added(config):
    recorder = Recorder()
    rocks = rocks_with(config, recorder)
    rocks.ok("add host compute-0-0")
    assert recorder.calls[0][:2] == ("added", "compute-0-0")
    assert recorder.calls[0][2] is rocks.hooks  # the facade that called
    # the plugin's write went in with the host
    assert "seen_by_plugin:yes" in rocks.ok("report host attr compute-0-0").splitlines()


def test_hook_host_removing(config):
    recorder = Recorder()
    rocks = rocks_with(config, recorder)
    rocks.ok("add host keep-me membership=compute")
    rocks.ok("add host compute-0-0")
    result = rocks("remove host keep-me compute-0-0")
    assert result.err == "error: keep-me is protected by the plugin\n"
    # the veto undid the whole command, compute-0-0 included
    hosts = rocks.ok("list host")
    assert "keep-me:" in hosts and "compute-0-0:" in hosts
    rocks.ok("remove host compute-0-0")
    assert ("removing", "compute-0-0", None) in recorder.calls
    assert "compute-0-0:" not in rocks.ok("list host")


def test_hook_host_changed(config):
    recorder = Recorder()
    rocks = rocks_with(config, recorder)
    rocks.ok("add host compute-0-0")
    rocks.ok("set host rack compute-0-0 3")
    rocks.ok("set host comment compute-0-0 spare")
    changed = [c for c in recorder.calls if c[0] == "changed"]
    assert changed == [
        ("changed", "compute-0-0", {"rack": 3}),
        ("changed", "compute-0-0", {"comment": "spare"}),
    ]


def test_hook_install_event(config, engine):
    from sqlalchemy import select

    from provisioner.db.engine import transaction
    from provisioner.db.models import Host

    recorder = Recorder()
    hooks = hooks_with(recorder)
    with transaction(engine) as session:
        host = session.scalar(select(Host).where(Host.name == "frontend"))
        hooks.install_event(session, host, "partitions", {"disks": ["sda"]})
    assert recorder.calls == [("partitions", "frontend", {"disks": ["sda"]})]
    with transaction(engine) as session:
        host = session.scalar(select(Host).where(Host.name == "frontend"))
        hooks.install_event(session, host, "done", {})
    from provisioner.testing.pytest_plugin import Rocks

    assert "install_state:done" in Rocks(config, hooks).ok("report host attr frontend").split()


def test_hook_register_blueprints():
    flask = pytest.importorskip("flask")

    class Web:
        @hookimpl
        def register_blueprints(self):
            bp = flask.Blueprint("robots", __name__, url_prefix="/robots")
            bp.add_url_rule("/ping", "ping", lambda: "pong")
            return [bp]

    blueprints = hooks_with(Web()).register_blueprints()
    app = flask.Flask("test")
    for bp in blueprints:
        app.register_blueprint(bp)
    response = app.test_client().get("/robots/ping")
    assert response.status_code == 200 and response.data == b"pong"


_NOTES_REVISION = """
import sqlalchemy as sa
from alembic import op

revision = "n0001"
down_revision = None
branch_labels = ("notes",)
depends_on = "0001"


def upgrade():
    op.create_table(
        "notes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("host_id", sa.Integer(), sa.ForeignKey("hosts.id"), nullable=False),
    )


def downgrade():
    op.drop_table("notes")
"""


def test_hook_migration_directories(tmp_path):
    from sqlalchemy import inspect, text

    from provisioner.db import schema
    from provisioner.db.engine import make_engine

    versions = tmp_path / "notes_migrations"
    versions.mkdir()
    (versions / "n0001_notes.py").write_text(_NOTES_REVISION)

    class Notes:
        @hookimpl
        def migration_directories(self):
            return [versions]

    hooks = hooks_with(Notes())
    assert ("plugin0", versions) in hooks.migration_directories()
    engine = make_engine(f"sqlite:///{tmp_path / 'state' / 'provisioner.db'}")
    try:
        assert schema.upgrade(engine, hooks=hooks) == (None, schema.head_revision())
        assert "notes" in inspect(engine).get_table_names()
        with engine.connect() as conn:
            rows = set(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
        assert "n0001" in rows and schema.head_revision() in rows
    finally:
        engine.dispose()


class Fallback:
    """Stands in for the base roll's renderers (trylast), which other work provides."""

    @hookimpl(trylast=True)
    def render_boot_config(self, host, flavor):
        return f"fallback {flavor} for {host.name}"

    @hookimpl(trylast=True)
    def render_kickstart(self, host):
        return f"# fallback kickstart for {host.name}"


class RobotRenderer:
    """Takes over the hosts of its appliance only."""

    @hookimpl
    def render_boot_config(self, host, flavor, attrs):
        if host.appliance != "compute":
            return None
        return f"robot {flavor} {attrs['hostname']}"

    @hookimpl
    def render_kickstart(self, config, reader, host, attrs):
        if host.appliance != "compute":
            return None
        count = reader.scalar("SELECT count(*) FROM hosts")
        return f"# robot kickstart for {attrs['hostname']} of {count} hosts"


def _host_rows(rocks, config):
    from provisioner.db.reader import Reader
    from provisioner.services.hostargs import resolve_host

    rocks.ok("add host compute-0-0")
    reader = Reader.connect(config.db_url)
    return reader, resolve_host(reader, "compute-0-0"), resolve_host(reader, "frontend")


def test_hook_render_boot_config(rocks, config):
    reader, compute, frontend = _host_rows(rocks, config)
    try:
        hooks = hooks_with(Fallback(), RobotRenderer())
        attrs = {"hostname": "compute-0-0"}
        assert hooks.render_boot_config(config, reader, compute, "pxelinux", attrs) == (
            "robot pxelinux compute-0-0"
        )
        got = hooks.render_boot_config(config, reader, frontend, "ipxe", {"hostname": "f"})
        assert got is not None and not got.startswith("robot")
    finally:
        reader.close()


def test_hook_render_kickstart(rocks, config):
    reader, compute, frontend = _host_rows(rocks, config)
    try:
        hooks = hooks_with(Fallback(), RobotRenderer())
        assert hooks.render_kickstart(config, reader, compute, {"hostname": "compute-0-0"}) == (
            "# robot kickstart for compute-0-0 of 2 hosts"
        )
        got = hooks.render_kickstart(config, reader, frontend, {"hostname": "frontend"})
        assert got is not None and "robot" not in got
    finally:
        reader.close()


class Witness:
    """Sees which facade the render hooks are called with, and leaves the answer to others."""

    def __init__(self):
        self.seen = []

    @hookimpl(tryfirst=True)
    def render_boot_config(self, hooks):
        self.seen.append(hooks)

    @hookimpl(tryfirst=True)
    def render_kickstart(self, hooks):
        self.seen.append(hooks)


def test_render_hooks_get_the_calling_hooks(rocks, config):
    reader, compute, _ = _host_rows(rocks, config)
    try:
        witness = Witness()
        hooks = hooks_with(Fallback(), witness)
        hooks.render_boot_config(config, reader, compute, "pxelinux", {"hostname": "c"})
        hooks.render_kickstart(config, reader, compute, {"hostname": "c"})
        assert witness.seen == [hooks, hooks]
    finally:
        reader.close()


def test_a_sole_kickstart_renderer_gets_what_it_declares(rocks, config):
    """The one-implementation fast path passes what pluggy would: the arguments it names."""

    class Only:
        @hookimpl
        def render_kickstart(self, hooks, host):
            return f"{host.name} {type(hooks).__name__}"

    reader, compute, _ = _host_rows(rocks, config)
    try:
        hooks = hooks_with(Only())
        hooks.pm.unregister(name="base")
        assert hooks.render_kickstart(config, reader, compute, {}) == "compute-0-0 Hooks"
    finally:
        reader.close()


class Hypervisor:
    """Runs the frontend as a VM (as a roll running virtual frontends would say of its own)."""

    def __init__(self, ids):
        self.ids = ids

    @hookimpl
    def virtual_hosts(self, reader):
        return list(self.ids)


def test_hook_virtual_hosts(rocks, config):
    """A frontend's kickstart off our private network names this server by the public name of
    the frontend that is not a VM; the rolls say which are VMs."""
    from provisioner.db.reader import Reader
    from provisioner.services.hostargs import resolve_host
    from provisioner.services.rolls import server_url

    rocks.ok("remove attr Kickstart_PublicHostname")
    rocks.ok("add host frontend-1 membership=Frontend rack=1 rank=0")
    rocks.ok("add host interface frontend-1 eth1 ip=137.110.119.200 subnet=public name=far")
    reader = Reader.connect(config.db_url)
    try:
        frontend, far = resolve_host(reader, "frontend"), resolve_host(reader, "frontend-1")
        hooks = hooks_with(Hypervisor([frontend.id]))
        assert hooks.virtual_hosts(reader) >= {frontend.id}
        assert server_url(config, reader, far, {}, hooks) == "http://far"
        plain = hooks_with(Hypervisor([]))
        assert server_url(config, reader, far, {}, plain) == "http://frontend.example.org"
    finally:
        reader.close()


def test_facade_wraps_every_hook():
    from provisioner.hooks import Hooks

    for name in specs():
        assert callable(getattr(Hooks, name, None)), f"Hooks has no typed wrapper for {name}"


def test_two_rolls_cannot_register_one_vm_driver_name():
    from provisioner.errors import ConfigError

    class Again:
        @hookimpl
        def register_vm_drivers(self):
            return [SimpleNamespace(name="libvirt")]

    with pytest.raises(ConfigError, match="VM driver 'libvirt' is registered by both"):
        hooks_with(Again()).vm_drivers()
