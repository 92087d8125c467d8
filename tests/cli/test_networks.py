"""Networks and host interfaces."""

from __future__ import annotations

import json


def test_default_networks(rocks):
    rows = json.loads(rocks.ok("list network output-format=json"))
    assert rows == [
        {
            "network": "private",
            "subnet": "10.1.0.0",
            "netmask": "255.255.0.0",
            "mtu": 1500,
            "dnszone": "local",
            "servedns": True,
        },
        {
            "network": "public",
            "subnet": "137.110.119.0",
            "netmask": "255.255.255.0",
            "mtu": 1500,
            "dnszone": "example.org",
            "servedns": False,
        },
    ]


def test_add_set_remove_network(rocks):
    rocks.ok("add network ib 192.168.10.0 255.255.255.0 dnszone=ib servedns=yes")
    rocks.ok("set network mtu ib 65520")
    rocks.ok("set network zone ib ibnet")
    rocks.ok("set network servedns ib no")
    rocks.ok("set network netmask ib 255.255.0.0")
    row = json.loads(rocks.ok("list network ib output-format=json"))[0]
    assert row == {
        "network": "ib",
        "subnet": "192.168.0.0",
        "netmask": "255.255.0.0",
        "mtu": 65520,
        "dnszone": "ibnet",
        "servedns": False,
    }
    assert rocks("add network ib 10.0.0.0 255.0.0.0").err == "error: network 'ib' already exists\n"
    assert "bad network" in rocks("add network bad 10.0.0.0 255.0.255.0").err
    rocks.ok("remove network ib")
    assert rocks("list network ib").err == "error: unknown network 'ib'\n"


def test_network_in_use_cannot_be_removed(rocks):
    assert "is used by 1 interface(s)" in rocks("remove network private").err


def test_interfaces(rocks):
    rocks.ok("add host compute-0-0")
    rocks.ok(
        "add host interface compute-0-0 eth0 52:54:00:AA:00:01 ip=10.1.255.254 subnet=private module=e1000"
    )
    rocks.ok("add host interface compute-0-0 iface=eth1 subnet=public ip=137.110.119.20")
    out = rocks.ok("list host interface compute-0-0")
    assert out.splitlines() == [
        "HOST         SUBNET  IFACE MAC               IP             NETMASK       MODULE NAME        VLAN  OPTIONS",
        "compute-0-0: private eth0  52:54:00:aa:00:01 10.1.255.254   255.255.0.0   e1000  compute-0-0 ----- -----",
        "compute-0-0: public  eth1  -----             137.110.119.20 255.255.255.0 -----  -----       ----- -----",
    ]


def test_interface_rules(rocks):
    rocks.ok("add host compute-0-0")
    rocks.ok("add host compute-0-1")
    rocks.ok("add host interface compute-0-0 eth0 52:54:00:00:00:01 ip=10.1.255.254 subnet=private")
    assert rocks("add host interface compute-0-1 eth0 52:54:00:00:00:01").err == (
        "error: MAC 52:54:00:00:00:01 is already used by another interface\n"
    )
    assert rocks("add host interface compute-0-1 eth0 ip=10.1.255.254 subnet=private").err == (
        "error: IP 10.1.255.254 is already used by another interface\n"
    )
    assert (
        "is not in network 'private'"
        in rocks("add host interface compute-0-1 eth0 ip=10.2.0.1 subnet=private").err
    )
    assert "bad MAC address" in rocks("add host interface compute-0-1 eth0 zz:00").err
    assert "interface 'eth0' already exists" in rocks("add host interface compute-0-0 eth0").err
    assert "bad vlan" in rocks("add host interface compute-0-1 vlan9 vlan=5000").err


def test_set_host_interface_fields(rocks):
    rocks.ok("add host compute-0-0")
    rocks.ok("add host interface compute-0-0 eth0 52:54:00:00:00:01 ip=10.1.255.254 subnet=private")
    rocks.ok("set host interface ip compute-0-0 eth0 10.1.255.200")
    rocks.ok("set host interface mac compute-0-0 iface=eth0 mac=52:54:00:00:00:09")
    rocks.ok("set host interface module compute-0-0 eth0 virtio_net")
    rocks.ok("set host interface vlan compute-0-0 eth0 12")
    rocks.ok("set host interface name compute-0-0 eth0 c0")
    rocks.ok("set host interface iface compute-0-0 mac=52:54:00:00:00:09 eth2")
    row = json.loads(rocks.ok("list host interface compute-0-0 output-format=json"))[0]
    assert (row["iface"], row["ip"], row["mac"], row["module"], row["vlan"], row["name"]) == (
        "eth2",
        "10.1.255.200",
        "52:54:00:00:00:09",
        "virtio_net",
        12,
        "c0",
    )
    rocks.ok("set host interface ip compute-0-0 eth2 none")
    assert (
        json.loads(rocks.ok("list host interface compute-0-0 output-format=json"))[0]["ip"] is None
    )
    rocks.ok("remove host interface compute-0-0 eth2")
    assert json.loads(rocks.ok("list host interface compute-0-0 output-format=json")) == []
    assert rocks("remove host interface compute-0-0 eth2").err == "error: no interface 'eth2'\n"


def test_ipv6_network_and_interface(rocks):
    rocks.ok("add network v6 fd00:1:: ffff:ffff:ffff:ffff:: dnszone=v6 servedns=yes")
    rocks.ok("add host compute-0-0")
    rocks.ok("add host interface compute-0-0 eth0 ip=fd00:1::5 subnet=v6")
    row = json.loads(rocks.ok("list host interface compute-0-0 output-format=json"))[0]
    assert (row["subnet"], row["ip"], row["netmask"]) == (
        "v6",
        "fd00:1::5",
        "ffff:ffff:ffff:ffff::",
    )
    assert (
        "is not in network 'v6'"
        in rocks("add host interface compute-0-0 eth1 ip=fd00:2::5 subnet=v6").err
    )
