"""add/list/remove/set host, and the ways a host can be named on the command line."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def cluster(rocks):
    rocks.ok("add host compute-0-0 cpus=2")
    rocks.ok("add host interface compute-0-0 eth0 52:54:00:00:00:01 ip=10.1.255.254 subnet=private")
    rocks.ok("add host compute-0-1")
    rocks.ok("add host interface compute-0-1 eth0 52:54:00:00:00:02 ip=10.1.255.253 subnet=private")
    rocks.ok("add host compute-1-0")
    rocks.ok("add host nas-0-0")
    return rocks


def names(out: str) -> list[str]:
    return [line.split(":")[0] for line in out.splitlines()[1:]]


def test_add_host_takes_membership_rack_rank_from_the_name(cluster):
    rows = json.loads(cluster.ok("list host compute-1-0 output-format=json"))
    assert rows == [
        {
            "host": "compute-1-0",
            "membership": "Compute",
            "cpus": 1,
            "rack": 1,
            "rank": 0,
            "runaction": "os",
            "installaction": "install",
            "comment": None,
        }
    ]


def test_rank_defaults_to_next_in_rack(rocks):
    rocks.ok("add host node-a membership=compute rack=3")
    rocks.ok("add host node-b membership=Compute rack=3")
    rows = json.loads(rocks.ok("list host node-a node-b output-format=json output-col=host,rank"))
    assert rows == [{"host": "node-a", "rank": 0}, {"host": "node-b", "rank": 1}]


def test_add_host_errors(cluster):
    assert cluster("add host compute-0-0").err == "error: host 'compute-0-0' already exists\n"
    assert "missing parameter: membership" in cluster("add host mynode").err
    assert (
        "unknown membership or appliance 'toaster'" in cluster("add host x membership=toaster").err
    )
    assert "bad host name 'Bad_Name'" in cluster("add host Bad_Name membership=compute").err
    assert "reads as a rack, IP or MAC" in cluster("add host rack5 membership=compute").err
    assert "name of another appliance" in cluster("add host nas membership=compute").err
    assert "cpus must be at least 1" in cluster("add host compute-5-5 cpus=0").err


def test_list_host_order_and_columns(cluster):
    out = cluster.ok("list host")
    assert names(out) == ["frontend", "compute-0-0", "compute-0-1", "compute-1-0", "nas-0-0"]
    header = out.splitlines()[0].split()
    assert header == [
        "HOST",
        "MEMBERSHIP",
        "CPUS",
        "RACK",
        "RANK",
        "RUNACTION",
        "INSTALLACTION",
        "COMMENT",
    ]


@pytest.mark.parametrize(
    "word,expected",
    [
        ("compute-0-1", ["compute-0-1"]),
        ("10.1.255.254", ["compute-0-0"]),
        ("52:54:00:00:00:02", ["compute-0-1"]),
        ("52-54-00-00-00-02", ["compute-0-1"]),
        ("compute", ["compute-0-0", "compute-0-1", "compute-1-0"]),
        ("rack0", ["compute-0-0", "compute-0-1", "nas-0-0"]),
        ("rack1", ["compute-1-0"]),
        ("compute-0-*", ["compute-0-0", "compute-0-1"]),
        ("compute-%-0", ["compute-0-0", "compute-1-0"]),
        ("compute-0-0.local", ["compute-0-0"]),
        ("frontend.example.org", ["frontend"]),
        ("nas", ["nas-0-0"]),
    ],
)
def test_host_arguments(cluster, word, expected):
    assert names(cluster.ok("list host", word)) == expected


def test_appliance_without_hosts_and_rack_without_hosts_are_empty_not_errors(cluster):
    assert names(cluster.ok("list host power")) == []
    assert names(cluster.ok("list host rack7")) == []
    assert cluster("list host compute-9-*").out.splitlines()[1:] == []


def test_several_words_union_without_duplicates(cluster):
    assert names(cluster.ok("list host compute-0-0 10.1.255.254 nas-0-0")) == [
        "compute-0-0",
        "nas-0-0",
    ]


def test_alias_names_a_host(cluster):
    cluster.ok("add host alias nas-0-0 storage")
    assert names(cluster.ok("list host storage")) == ["nas-0-0"]
    assert cluster.ok("list host alias") == "HOST     ALIAS\nnas-0-0: storage\n"
    assert "is the name of a host" in cluster("add host alias nas-0-0 compute-0-0").err
    cluster.ok("remove host alias nas-0-0 storage")
    assert cluster("list host storage").status == 1


def test_set_host_fields(cluster):
    cluster.ok("set host rack compute-0-1 4")
    cluster.ok("set host rank compute-0-1 rank=7")
    cluster.ok("set host cpus compute 16")
    cluster.ok('set host comment compute-0-1 "new disk"')
    cluster.ok("set host os compute-0-1 linux")
    cluster.ok("set host arch compute-0-1 i386")
    rows = json.loads(cluster.ok("list host compute output-format=json"))
    by = {r["host"]: r for r in rows}
    assert by["compute-0-1"]["rack"] == 4 and by["compute-0-1"]["rank"] == 7
    assert {r["cpus"] for r in rows} == {16}
    assert by["compute-0-1"]["comment"] == "new disk"
    assert "i386" in cluster.ok("list host attr compute-0-1 attr=arch")
    cluster.ok('set host comment compute-0-1 ""')
    assert json.loads(cluster.ok("list host compute-0-1 output-format=json"))[0]["comment"] is None


def test_set_host_membership_appliance_and_name(cluster):
    cluster.ok('set host membership compute-1-0 "NAS Appliance"')
    assert "NAS Appliance" in cluster.ok("list host compute-1-0")
    cluster.ok("set host appliance compute-1-0 compute")
    assert "Compute" in cluster.ok("list host compute-1-0")
    cluster.ok("set host name compute-1-0 node7")
    assert names(cluster.ok("list host node7")) == ["node7"]
    assert (
        cluster("set host name node7 compute-0-0").err
        == "error: host 'compute-0-0' already exists\n"
    )
    assert "must be at least 0" in cluster("set host rack node7 -1").err


def test_remove_host_removes_everything_of_it(cluster):
    cluster.ok("set host attr compute-0-0 x11 true")
    cluster.ok("set host bootflags compute-0-0 flags=quiet")
    cluster.ok("remove host compute-0-0")
    assert "compute-0-0" not in cluster.ok("list host")
    # Its MAC and IP are free again.
    cluster.ok("add host compute-0-9")
    cluster.ok(
        "add host interface compute-0-9 eth0 52:54:00:00:00:01 ip=10.1.255.254 subnet=private"
    )


def test_remove_host_needs_a_host(cluster):
    assert cluster("remove host").status == 2


def test_the_frontend_cannot_be_removed(cluster):
    # The base roll vetoes it (host_removing): everything hangs off the frontend.
    out = cluster("remove host frontend")
    assert out.status != 0
    assert out.err == "error: 'frontend' is the frontend and cannot be removed\n"
    assert "frontend" in cluster.ok("list host")
