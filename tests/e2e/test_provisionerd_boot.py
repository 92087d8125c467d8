"""Issue 4, end to end: a real PXE client discovered and installed by our own provisionerd.

In a namespace of its own the test runs provisionerd (nginx on 80 in front of gunicorn, TFTP on
69), dnsmasq with the configuration `rocks sync config` wrote (DHCP only, with its lease
script), and a QEMU machine (TCG) that network-boots. With discovery on, the unknown machine
becomes compute-0-0, loads lpxelinux and its config from our TFTP, the netlab kernel and initrd
over HTTP from nginx (the server's log shows it), fetches its kickstart from its own address
and calls setPxeboot; its next TFTP config is `localboot 0`.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from provisioner.testing import netlab
from provisioner.testing.netlab import Dnsmasq, Netns

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
MAC = "52:54:00:4e:00:01"


def rocks(env: dict[str, str], *words: str) -> str:
    done = subprocess.run(
        [str(BIN / "rocks"), *words], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"rocks {' '.join(words)}: {done.stderr}"
    return done.stdout


@pytest.fixture
def cluster(netns: Netns, boot_assets, tmp_path: Path):
    """A cluster whose private network is the namespace's, served by provisionerd inside it."""
    home = tmp_path / "home"
    tftp = boot_assets.populate_tftp(tmp_path / "tftpboot", initrd_name="initrd.img")
    env = {
        **os.environ,
        "PROVISIONER_HOME": str(home),
        "PROVISIONER_TFTP_ROOT": str(tftp),
        "PROVISIONER_HTTP_PORT": "80",
        "PROVISIONER_HTTP_WORKERS": "2",
        # pytest's directories are private (0700): nginx's workers stay root here.
        "PROVISIONER_HTTP_USER": "root",
        "PROVISIONER_DNS_PORT": "0",
        "PROVISIONER_DNSMASQ_DIR": str(home / "dnsmasq"),
    }
    env.pop("PROVISIONER_DATABASE_URL", None)
    net = netns.address.rsplit(".", 1)[0]
    rocks(
        env,
        "init",
        "frontend",
        "Kickstart_PrivateHostname=frontend",
        f"Kickstart_PrivateAddress={netns.address}",
        f"Kickstart_PrivateNetwork={net}.0",
        "Kickstart_PrivateNetmask=255.255.255.0",
        "Kickstart_PublicAddress=192.0.2.10",
        "Kickstart_PublicNetmask=255.255.255.0",
    )
    # What the netlab initrd needs on its command line: a serial console, and where to report
    # that the install is done (setPxeboot, as Rocks' pxeboot.xml does at the end of %post).
    callback = f"http://{netns.address}/install/sbin/public/setPxeboot.cgi"
    rocks(env, "set", "bootflags", f"flags=console=ttyS0 panic=-1 callback={callback}")
    server = netns.spawn("provisionerd", [str(BIN / "provisionerd")], env=env)
    netns.wait_listening(80, "tcp", timeout=60, process=server)
    netns.wait_listening(69, "udp", timeout=60, process=server)
    return env, server, tftp


def dnsmasq_text(env: dict[str, str], netns: Netns) -> str:
    out = rocks(env, "sync", "config")
    assert "dnsmasq" in out
    conf = (Path(env["PROVISIONER_DNSMASQ_DIR"]) / "dnsmasq.conf").read_text()
    # The bridge also needs router advertisements (iPXE waits ~13 s without one).
    return conf + f"interface={netns.bridge}\nenable-ra\ndhcp-range={netns.prefix6},ra-only\n"


def payload_came_over_http(netns: Netns, client_ip: str | None, tftp: Path) -> None:
    """From provisionerd's own log: the kernel and initrd were HTTP requests to nginx, whole,
    from the node (`client_ip`, or any lab address: a machine being discovered loads them
    from its pool lease); TFTP sent only the first-stage loader and configs."""
    log = netns.workdir / "provisionerd.log"

    def records() -> list[dict]:
        out = []
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    def files_over_http() -> list[dict] | None:
        got = [
            r
            for r in records()
            if r.get("component") == "nginx" and str(r.get("uri", "")).startswith("/boot/files/")
        ]
        return got if len(got) >= 2 else None

    # nginx flushes its access log at least once a second.
    http = netlab.wait_until(files_over_http, 10, "nginx to log the kernel and initrd")
    by_uri = {r["uri"]: r for r in http}
    for name in ("vmlinuz", "initrd.img"):
        r = by_uri[f"/boot/files/{name}"]
        assert r["status"] == 200, r
        if client_ip is not None:
            assert r["client"] == client_ip, r
        else:
            assert r["client"].startswith(netns.host(0)[:-1]) and r["client"] != netns.address
        assert r["bytes"] == (tftp / name).stat().st_size, r
    sent = [
        str(r["message"])
        for r in records()
        if r.get("component") == "tftp" and "TFTP sending" in str(r.get("message"))
    ]
    assert sent, "no TFTP transfer logged"
    assert not [m for m in sent if "vmlinuz" in m or "initrd" in m], sent


def tftp_get(netns: Netns, path: str) -> str:
    done = netns.run(
        ["busybox", "tftp", "-g", "-r", path, "-l", "/dev/stdout", netns.address], timeout=30
    )
    return done.stdout


def test_unknown_pxe_client_is_discovered_installed_and_flipped(netns, cluster, start_vm):
    env, server, _tftp = cluster
    rocks(env, "enable", "discovery", "appliance=compute")
    dnsmasq = Dnsmasq(netns, dnsmasq_text(env, netns), name="dnsmasq").start()
    vm = start_vm(mac=MAC, firmware="bios")
    assert vm.wait(180) == 0, vm.serial()[-3000:]
    report = vm.report()
    assert report.get("ks", "status") == "ok", vm.serial()[-3000:]
    assert report.get("ks", "http") == "200"

    # It became compute-0-0 with the top address of the network, from its DHCP lease.
    hosts = json.loads(rocks(env, "list", "host", "interface", "compute-0-0", "output-format=json"))
    assert [(h["mac"], h["ip"]) for h in hosts] == [(MAC, netns.host(254))]
    # It fetched the kickstart from that address and it was its own (by name in the file).
    assert report.get("dhcp", "ip") == netns.host(254)
    profile = rocks(env, "list", "host", "profile", "compute-0-0")
    assert report.get("ks", "md5") == hashlib.md5(profile.encode()).hexdigest()
    assert int(report.get("ks", "bytes")) == len(profile.encode())
    events = rocks(env, "list", "host", "event", "compute-0-0")
    assert "discovered" in events and "kickstart" in events and "done" in events
    # lpxelinux came from our TFTP (dnsmasq only did DHCP), the kernel and initrd from nginx.
    assert dnsmasq.log().tftp_sent == []
    payload_came_over_http(netns, None, _tftp)
    assert "compute-0-0: os" in rocks(env, "list", "host", "boot", "compute-0-0")
    # The flip is visible in the very next boot config.
    cfg = tftp_get(netns, f"pxelinux.cfg/{netlab.pxelinux_cfg_name(MAC)}")
    assert cfg == "default rocks\nprompt 0\nlabel rocks\n\tlocalboot 0\n"
    assert server.alive()


def test_uefi_client_boots_through_ipxe_over_http(netns, cluster, start_vm):
    """UEFI firmware (OVMF): ipxe.efi from our TFTP, then our iPXE script and the kernel over
    HTTP; a known host this time, installing because its boot action says so."""
    env, server, _tftp = cluster
    mac = "52:54:00:4e:00:02"
    rocks(env, "add", "host", "compute-0-5")
    rocks(
        env,
        "add",
        "host",
        "interface",
        "compute-0-5",
        "eth0",
        mac,
        f"ip={netns.host(200)}",
        "subnet=private",
    )
    rocks(env, "set", "host", "boot", "compute-0-5", "action=install")
    dnsmasq = Dnsmasq(netns, dnsmasq_text(env, netns), name="dnsmasq").start()
    vm = start_vm(mac=mac, firmware="uefi")
    assert vm.wait(240) == 0, vm.serial()[-3000:]
    report = vm.report()
    assert report.get("ks", "status") == "ok", vm.serial()[-3000:]
    assert report.get("dhcp", "ip") == netns.host(200)
    profile = rocks(env, "list", "host", "profile", "compute-0-5")
    assert report.get("ks", "md5") == hashlib.md5(profile.encode()).hexdigest()
    assert "compute-0-5: os" in rocks(env, "list", "host", "boot", "compute-0-5")
    # ipxe.efi came from our TFTP; the rest over HTTP, from nginx.
    assert dnsmasq.log().tftp_sent == []
    payload_came_over_http(netns, netns.host(200), _tftp)
    script = netns.run(
        ["busybox", "wget", "-q", "-O", "-", f"http://{netns.address}/boot/ipxe?mac={mac}"]
    ).stdout
    assert script == "#!ipxe\nexit\n"
    assert server.alive()
