"""The install endpoints: who gets which kickstart, callbacks, partitions, events, files."""

from __future__ import annotations

import json

import pytest

from provisioner.hooks import Hooks, get_plugin_manager
from provisioner.hookspecs import hookimpl
from provisioner.web import create_app


class EchoKickstart:
    """Renders a marker kickstart naming the host and a secret only that host may see."""

    @hookimpl
    def render_kickstart(self, config, reader, host, attrs):
        return f"# kickstart of {host.name}\nrootpw --iscrypted {attrs.get('secret', 'none')}\n"


@pytest.fixture
def app(config, rocks):
    rocks.ok("add host compute-0-0")
    rocks.ok("add host interface compute-0-0 eth0 52:54:00:00:00:01 ip=10.1.255.254 subnet=private")
    rocks.ok("add host compute-0-1")
    rocks.ok("add host interface compute-0-1 eth0 52:54:00:00:00:02 ip=10.1.255.253 subnet=private")
    rocks.ok("add host compute-0-2")
    rocks.ok("add host interface compute-0-2 eth0 52:54:00:00:00:03")
    rocks.ok("set host attr compute-0-0 secret S0")
    rocks.ok("set host attr compute-0-1 secret S1")
    rocks.ok("set host attr compute-0-2 secret S2")
    hooks = Hooks(get_plugin_manager(extra=[("echo", EchoKickstart())]))
    app = create_app(config, hooks)
    app.testing = True
    yield app
    app.extensions["provisioner"].events.stop()


def get(app, path, ip, headers=None):
    return app.test_client().get(path, environ_base={"REMOTE_ADDR": ip}, headers=headers or {})


def test_a_host_gets_its_own_kickstart(app):
    r = get(app, "/install/sbin/kickstart.cgi", "10.1.255.254")
    assert r.status_code == 200 and b"compute-0-0" in r.data and b"S0" in r.data
    r = get(app, "/install/sbin/public/kickstart.cgi?arch=x86_64&np=4", "10.1.255.253")
    assert r.status_code == 200 and b"S1" in r.data


def test_naming_another_host_is_403_without_secrets(app):
    r = get(app, "/install/sbin/kickstart.cgi?client=compute-0-1", "10.1.255.254")
    assert r.status_code == 403 and b"S0" not in r.data and b"S1" not in r.data
    assert r.data.decode().count("\n") == 1
    r = get(
        app,
        "/install/sbin/kickstart.cgi",
        "10.1.255.254",
        {"X-RHN-Provisioning-MAC-0": "eth0 52:54:00:00:00:02"},
    )
    assert r.status_code == 403 and b"S1" not in r.data


def test_unknown_source_is_404_with_a_reason(app):
    r = get(app, "/install/sbin/kickstart.cgi", "10.1.200.9")
    assert r.status_code == 404
    assert r.data == b"no host has address 10.1.200.9\n"


def test_mac_header_serves_a_host_without_address_from_the_private_network(app):
    r = get(
        app,
        "/install/sbin/kickstart.cgi",
        "10.1.0.50",
        {"X-RHN-Provisioning-MAC-0": "eth0 52:54:00:00:00:03 virtio_net ks"},
    )
    assert r.status_code == 200 and b"compute-0-2" in r.data and b"S2" in r.data


def test_mac_header_cannot_take_a_host_that_has_an_address(app):
    # compute-0-0 has 10.1.255.254: its kickstart goes there only, not to whoever sends its MAC.
    r = get(
        app,
        "/install/sbin/kickstart.cgi",
        "10.1.0.50",
        {"X-RHN-Provisioning-MAC-0": "eth0 52:54:00:00:00:01"},
    )
    assert r.status_code == 403 and b"S0" not in r.data


def test_mac_header_from_outside_the_private_network_is_refused(app):
    r = get(
        app,
        "/install/sbin/kickstart.cgi",
        "192.0.2.77",
        {"X-RHN-Provisioning-MAC-0": "eth0 52:54:00:00:00:03"},
    )
    assert r.status_code == 403 and b"S2" not in r.data


def test_installer_reports_cpus_and_arch(app, rocks):
    get(app, "/install/sbin/kickstart.cgi?arch=i386&np=8", "10.1.255.254")
    row = json.loads(rocks.ok("list host compute-0-0 output-format=json"))[0]
    assert row["cpus"] == 8
    assert "i386" in rocks.ok("list host attr compute-0-0 attr=arch")


def test_kickstart_events_are_recorded(app, rocks):
    get(app, "/install/sbin/kickstart.cgi", "10.1.255.254")
    app.extensions["provisioner"].events.flush()
    assert "kickstart" in rocks.ok("list host event compute-0-0")


def test_set_pxeboot_flips_to_os(app, rocks):
    rocks.ok("set host boot compute-0-0 action=install")
    r = app.test_client().get(
        "/install/sbin/public/setPxeboot.cgi", environ_base={"REMOTE_ADDR": "10.1.255.254"}
    )
    assert r.status_code == 200 and r.data == b"compute-0-0: boot action os\n"
    assert "compute-0-0: os" in rocks.ok("list host boot compute-0-0")
    r = app.test_client().post(
        "/install/sbin/public/setPxeboot.cgi?action=install",
        environ_base={"REMOTE_ADDR": "10.1.255.254"},
    )
    assert "compute-0-0: install" in rocks.ok("list host boot compute-0-0")
    assert (
        app.test_client()
        .get("/install/sbin/public/setPxeboot.cgi", environ_base={"REMOTE_ADDR": "10.9.9.9"})
        .status_code
        == 404
    )
    assert "done" in rocks.ok("list host event compute-0-0")


def test_partition_report(app, rocks):
    body = {
        "partitions": [
            {"device": "sda1", "mountpoint": "/", "partitionsize": "16GB", "fstype": "ext4"}
        ]
    }
    r = app.test_client().post(
        "/install/sbin/public/partitions", json=body, environ_base={"REMOTE_ADDR": "10.1.255.253"}
    )
    assert r.status_code == 200
    rows = json.loads(rocks.ok("list host partition compute-0-1 output-format=json"))
    assert [(p["device"], p["mountpoint"], p["size"]) for p in rows] == [("sda1", "/", "16GB")]
    bad = app.test_client().post(
        "/install/sbin/public/partitions",
        json={"partitions": [{"x": 1}]},
        environ_base={"REMOTE_ADDR": "10.1.255.253"},
    )
    assert bad.status_code == 400


def test_install_events(app, rocks):
    c = app.test_client()
    r = c.post(
        "/install/sbin/public/events",
        json={"event": "post", "detail": {"step": 3}},
        environ_base={"REMOTE_ADDR": "10.1.255.254"},
    )
    assert r.status_code == 204
    assert (
        c.post(
            "/install/sbin/public/events",
            json={"event": "rm -rf"},
            environ_base={"REMOTE_ADDR": "10.1.255.254"},
        ).status_code
        == 400
    )
    app.extensions["provisioner"].events.flush()
    out = rocks.ok("list host event compute-0-0")
    assert "post" in out and '"step": 3' in out


def test_api_reads_are_open_writes_need_the_token(app, config, rocks):
    c = app.test_client()
    hosts = c.get("/api/hosts").get_json()
    assert [h["name"] for h in hosts] == ["frontend", "compute-0-0", "compute-0-1", "compute-0-2"]
    assert c.get("/api/hosts/compute-0-0").get_json()["attrs"]["secret"] == "S0"
    assert c.put("/api/hosts/compute-0-0/boot", json={"action": "install"}).status_code == 401
    assert (
        c.put(
            "/api/hosts/compute-0-0/boot",
            json={"action": "install"},
            headers={"Authorization": "Bearer wrong"},
        ).status_code
        == 401
    )
    token = (config.home / "api-token").read_text().strip()
    r = c.put(
        "/api/hosts/compute-0-0/boot",
        json={"action": "install"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200
    assert "compute-0-0: install" in rocks.ok("list host boot compute-0-0")
    assert c.get("/api/hosts/nosuch").status_code == 404


def test_real_kickstart_from_the_node_graph(config, rocks, hooks):
    from provisioner.kickstart.validate import validate

    rocks.ok("add host compute-0-0")
    rocks.ok("add host interface compute-0-0 eth0 52:54:00:00:00:01 ip=10.1.255.254 subnet=private")
    rocks.ok("add host compute-0-1")
    rocks.ok("add host interface compute-0-1 eth0 52:54:00:00:00:02 ip=10.1.255.253 subnet=private")
    rocks.ok('set host attr compute-0-1 Kickstart_PrivateRootPassword "$6$only.for.compute-0-1"')
    rocks.ok('set host bootflags compute-0-0 flags="console=ttyS0"')
    app = create_app(config, hooks)
    try:
        r = get(app, "/install/sbin/kickstart.cgi", "10.1.255.254")
        assert r.status_code == 200
        ks = r.data.decode()
        assert validate(ks, "RHEL9") == []
        assert "%include /tmp/partition-info" in ks and "console=ttyS0" in ks
        assert "only.for.compute-0-1" not in ks
        other = get(app, "/install/sbin/kickstart.cgi", "10.1.255.253").data.decode()
        assert "only.for.compute-0-1" in other
        # Same text as the CLI prints.
        assert rocks.ok("list host profile compute-0-0") == ks
    finally:
        app.extensions["provisioner"].events.stop()


def test_dashboard_lists_hosts_and_escapes(app, rocks):
    rocks.ok("set host boot compute-0-0 action=install")
    rocks.ok('set host comment compute-0-1 "<script>"')
    html = app.test_client().get("/").data.decode()
    assert html.startswith("<!doctype html>")
    assert "<td>compute-0-0</td>" in html and "<td>10.1.255.254</td>" in html
    assert "1 to install at next boot" in html
    assert "<script>" not in html
    rocks.ok("set attr Info_ClusterName '<b>x</b>'")
    assert "&lt;b&gt;x&lt;/b&gt; cluster" in app.test_client().get("/ui/hosts").data.decode()


def test_the_workers_own_kickstart_path_answers_as_the_wsgi_one(app):
    """The HTTP worker answers kickstart.cgi from nginx's headers without WSGI
    (provisioner/web/worker.py); same status and body as the WSGI path, for every case."""
    answer = app.extensions["provisioner.kickstart"].behind_proxy
    cases = [
        ("10.1.255.254", "", {}),
        ("10.1.255.253", "arch=x86_64&np=4", {}),
        ("10.1.255.254", "client=compute-0-1", {}),
        ("10.1.200.9", "", {"X-RHN-Provisioning-MAC-0": "eth0 52:54:00:00:00:03"}),
        ("10.1.255.254", "", {"X-RHN-Provisioning-MAC-0": "eth0 52:54:00:00:00:02"}),
        ("10.9.9.9", "", {}),
    ]
    for ip, query, headers in cases:
        r = get(app, "/install/sbin/kickstart.cgi" + (f"?{query}" if query else ""), ip, headers)
        status, body = answer([("X-Real-IP", ip), *headers.items()], query)
        assert (status, body) == (r.status_code, r.data), (ip, query, headers)
    # Without nginx's address header there is no client to answer.
    assert answer([], "") == (400, b"no client address from the proxy\n")
