"""DHCP configuration: ISC dhcpd as Rocks printed it, dnsmasq files written for real."""

from __future__ import annotations

import subprocess

import pytest

from provisioner.db.reader import Reader
from provisioner.dhcp.dnsmasq import DnsmasqOptions, write_config, write_host_files


@pytest.fixture
def cluster(rocks):
    rocks.ok("add host compute-0-0")
    rocks.ok("add host interface compute-0-0 eth0 52:54:00:00:00:01 ip=10.1.255.254 subnet=private")
    rocks.ok("add host interface compute-0-0 eth1 52:54:00:00:00:11")
    rocks.ok("add host power-0-0 membership=power")
    rocks.ok("add host interface power-0-0 eth0 52:54:00:00:00:21 ip=10.1.255.200 subnet=private")
    return rocks


def test_isc_dhcpd_matches_rocks(cluster):
    out = cluster.ok("report host dhcpd")
    assert out.startswith("ddns-update-style none;\nsubnet 10.1.0.0 netmask 255.255.0.0 {\n")
    assert "\toption routers 10.1.1.1;\n" in out
    assert '\toption domain-name "local";\n' in out
    assert (
        "\t\thost compute-0-0.local {\n"
        "\t\t\thardware ethernet 52:54:00:00:00:01;\n"
        '\t\t\toption host-name "compute-0-0.local";\n'
        "\t\t\tfixed-address 10.1.255.254;\n"
        '\t\t\tfilename "lpxelinux.0";\n'
        "\t\t\tnext-server 10.1.1.1;\n"
        "\t\t}\n"
    ) in out
    # The second MAC of a host gets its fixed address under a numbered name.
    assert "host compute-0-0.local-1 {\n\t\t\thardware ethernet 52:54:00:00:00:11;" in out
    # Not kickstartable: an address, no boot file.
    power = out.split("host power-0-0.local {")[1].split("}")[0]
    assert "fixed-address 10.1.255.200" in power and "filename" not in power


def test_dnsmasq_files_written_checked_and_kept_in_line(cluster, config, tmp_path):
    opts = DnsmasqOptions(tmp_path / "dnsmasq", "10.1.1.1", "http://10.1.1.1", 80)
    with Reader.connect(config.db_url) as reader:
        result = write_config(reader, opts)
    assert result["written"] == 2 and result["main"]
    hosts = opts.conf_dir / "hosts"
    assert (
        hosts / "52-54-00-00-00-01"
    ).read_text() == "52:54:00:00:00:01,10.1.255.254,compute-0-0,infinite\n"
    # dnsmasq itself accepts the configuration.
    check = subprocess.run(
        ["dnsmasq", "--test", f"--conf-file={opts.conf_dir / 'dnsmasq.conf'}"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    main = (opts.conf_dir / "dnsmasq.conf").read_text()
    assert "dhcp-boot=tag:!efi64,lpxelinux.0,,10.1.1.1" in main
    assert "dhcp-boot=tag:efi64-fw,ipxe.efi,,10.1.1.1" in main
    assert "dhcp-boot=tag:efi64-ipxe,http://10.1.1.1/boot/ipxe" in main
    assert "dhcp-range=set:pool,10.1.1.2," in main
    # Unchanged: nothing rewritten. A removed host: its file goes.
    with Reader.connect(config.db_url) as reader:
        assert write_config(reader, opts)["written"] == 0
    cluster.ok("remove host power-0-0")
    with Reader.connect(config.db_url) as reader:
        assert write_host_files(reader, opts.conf_dir) == (0, 1)
    assert sorted(p.name for p in hosts.iterdir()) == ["52-54-00-00-00-01"]


def test_lease_script_is_valid_bash(cluster, config, tmp_path):
    opts = DnsmasqOptions(tmp_path / "d", "10.1.1.1", "http://10.1.1.1", 8080)
    with Reader.connect(config.db_url) as reader:
        write_config(reader, opts)
    script = opts.conf_dir / "lease-script"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    assert "/dev/tcp/127.0.0.1/8080" in script.read_text()
    # A "del" event does nothing and succeeds even with no server listening.
    assert (
        subprocess.run([str(script), "del", "52:54:00:00:00:99", "10.1.1.5"], timeout=10).returncode
        == 0
    )


def test_sync_config_command(cluster, config):
    out = cluster.ok("sync config")
    assert "2 host file(s) written" in out and "restart dnsmasq" in out
    assert cluster.ok("sync config quiet=yes") == ""


def test_sync_config_restarts_dnsmasq_only_when_its_configuration_changed(
    cluster, config, hooks, tmp_path
):
    from provisioner.testing.pytest_plugin import Rocks

    marker = tmp_path / "restarted"
    rocks = Rocks(config.with_(dnsmasq_restart=f"echo x >> {marker}"), hooks)
    assert "restarted" in rocks.ok("sync config")
    assert marker.read_text() == "x\n"
    rocks.ok("add host compute-0-9")
    rocks.ok("add host interface compute-0-9 eth0 52:54:00:00:00:99 ip=10.1.255.9 subnet=private")
    out = rocks.ok("sync config")
    assert "1 host file(s) written" in out and "restarted" not in out
    assert marker.read_text() == "x\n"  # host files need no restart
    failing = Rocks(config.with_(dnsmasq_restart="exit 3", dnsmasq_dir=tmp_path / "other"), hooks)
    assert failing("sync config").err == "error: dnsmasq restart failed: 3\n"
