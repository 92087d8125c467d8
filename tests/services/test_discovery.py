"""Node discovery: unknown MACs from DHCP leases become hosts, uniquely, only while it is on."""

from __future__ import annotations

import json
import threading

import pytest

from provisioner.web import create_app


@pytest.fixture
def app(config, rocks, hooks):
    app = create_app(config.with_(dnsmasq_dir=config.home / "dnsmasq"), hooks)
    yield app
    app.extensions["provisioner"].events.stop()


def lease(app, mac, ip="127.0.0.1"):
    return app.test_client().post(
        "/discovery/lease",
        data={"action": "add", "mac": mac, "ip": "10.1.0.9"},
        environ_base={"REMOTE_ADDR": ip},
    )


def test_discovery_names_addresses_and_boot(app, rocks, config):
    assert lease(app, "52:54:00:00:aa:01").data == b"nothing to do\n"  # off: nothing happens
    assert "discovery is off" in rocks.ok("list discovery")
    rocks.ok("add host compute-0-0")  # rank 0 is taken
    rocks.ok("enable discovery appliance=compute")
    assert lease(app, "52:54:00:00:aa:01").data == b"discovered compute-0-1\n"
    assert lease(app, "52:54:00:00:aa:02").data == b"discovered compute-0-2\n"
    assert lease(app, "52:54:00:00:aa:01").data == b"nothing to do\n"  # known now
    rows = json.loads(rocks.ok("list host interface compute-0-1 compute-0-2 output-format=json"))
    assert [(r["host"], r["mac"], r["ip"], r["subnet"]) for r in rows] == [
        ("compute-0-1", "52:54:00:00:aa:01", "10.1.255.254", "private"),
        ("compute-0-2", "52:54:00:00:aa:02", "10.1.255.253", "private"),
    ]
    assert "compute-0-1: install" in rocks.ok("list host boot compute-0-1")
    # dnsmasq got each new host's fixed address at once.
    hosts = config.home / "dnsmasq" / "hosts"
    assert (
        hosts / "52-54-00-00-aa-02"
    ).read_text() == "52:54:00:00:aa:02,10.1.255.253,compute-0-2,infinite\n"
    listing = rocks.ok("list discovery")
    assert listing.startswith("discovery is on: appliance compute, rack 0")
    assert "compute-0-2" in listing and "waiting for kickstart" in listing
    rocks.ok("disable discovery")
    assert lease(app, "52:54:00:00:aa:03").data == b"nothing to do\n"


def test_rack_and_first_rank(app, rocks):
    rocks.ok("enable discovery appliance=nas rack=2 rank=5")
    assert lease(app, "52:54:00:00:bb:01").data == b"discovered nas-2-5\n"
    assert lease(app, "52:54:00:00:bb:02").data == b"discovered nas-2-6\n"


def test_only_the_local_lease_script_may_report(app, rocks):
    rocks.ok("enable discovery")
    r = lease(app, "52:54:00:00:cc:01", ip="10.1.0.9")
    assert r.status_code == 403
    assert "52:54:00:00:cc:01" not in rocks.ok("list host interface")


def test_bad_input(app, rocks):
    rocks.ok("enable discovery")
    assert lease(app, "not-a-mac").status_code == 400
    assert "not installed by this server" in rocks("enable discovery appliance=power").err
    assert "unknown appliance" in rocks("enable discovery appliance=toaster").err


def test_concurrent_discoveries_are_unique(app, rocks):
    rocks.ok("enable discovery appliance=compute rack=1")
    results: list[bytes] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        r = lease(app, f"52:54:00:01:{i // 256:02x}:{i % 256:02x}")
        with lock:
            results.append(r.data)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(r.startswith(b"discovered compute-1-") for r in results), results
    rows = json.loads(rocks.ok("list host interface rack1 output-format=json"))
    assert len(rows) == 40
    assert len({r["host"] for r in rows}) == 40 and len({r["ip"] for r in rows}) == 40
    ranks = sorted(int(r["host"].rsplit("-", 1)[1]) for r in rows)
    assert ranks == list(range(40))
