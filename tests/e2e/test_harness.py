"""Self-tests of the network-boot harness: real BIOS and UEFI PXE boots and a libvirt-managed
boot, each ending with the busybox initrd fetching a kickstart (with anaconda's MAC header)
and calling back; plus the parsers the harness relies on."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from provisioner.testing import netlab
from provisioner.testing.netlab import HttpServer, Netns, PxeBootFiles
from provisioner.testing.netlab_assets import BootAssets, newc_archive

BOOT_TIMEOUT = 120.0


def kickstart(tag: str) -> str:
    # A per-test token makes the md5 the callback reports specific to this test.
    return f"# netlab kickstart {tag} {time.time_ns()}\ntext\nreboot\n%post\necho {tag}\n%end\n"


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def assert_installed(http: HttpServer, mac: str, ks: str, client_ip: str) -> None:
    """The guest fetched the kickstart like anaconda with kssendmac and reported it intact."""
    gets = [r for r in http.requests() if r.method == "GET" and r.path == "/ks.cfg"]
    assert gets, "kickstart never fetched"
    assert gets[-1].header("X-RHN-Provisioning-MAC-0") == f"eth0 {mac}"
    assert gets[-1].client == client_ip
    posts = [r for r in http.requests() if r.method == "POST" and r.path == "/callback"]
    assert len(posts) == 1
    report = posts[0].json()
    assert isinstance(report, dict)
    assert report["mac"] == mac
    assert report["ip"] == client_ip
    assert report["status"] == "ok"
    assert report["bytes"] == len(ks.encode())
    assert report["md5"] == md5(ks)
    assert posts[0].client == client_ip


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_bios_pxe_dnsmasq_tftp(
    netns: Netns, http_server: HttpServer, tftp_root: Path, start_dnsmasq, start_vm
) -> None:
    mac = "52:54:00:98:00:01"
    fixed_ip = netns.host(50)
    ks = kickstart("bios")
    (http_server.root / "ks.cfg").write_text(ks)
    append = netlab.kernel_append(http_server.url("ks.cfg"), http_server.url("callback"))
    cfg = tftp_root / "pxelinux.cfg" / netlab.pxelinux_cfg_name(mac)
    cfg.write_text(netlab.pxelinux_config("vmlinuz", "initrd.gz", append))
    dnsmasq = start_dnsmasq(
        netlab.dnsmasq_config(
            netns, boot=PxeBootFiles(efi64=None), tftp_root=tftp_root, hosts={mac: fixed_ip}
        )
    )

    vm = start_vm(mac=mac)
    assert vm.wait(BOOT_TIMEOUT) == 0, "QEMU should exit because the guest powered off"
    print(f"timing bios: QEMU exit +{vm.elapsed:.1f}s")

    log = dnsmasq.log()
    assert {a.ip for a in log.acks_for(mac)} == {fixed_ip}
    sent = [Path(path).relative_to(tftp_root).as_posix() for path, _ in log.tftp_sent]
    for name in ("pxelinux.0", "ldlinux.c32", cfg.relative_to(tftp_root).as_posix()):
        assert name in sent
    assert {"vmlinuz", "initrd.gz"} <= set(sent)
    assert_installed(http_server, mac, ks, fixed_ip)
    report = vm.report()
    assert report.get("start", "bootif") == netlab.pxelinux_cfg_name(mac)
    assert report.get("ks", "md5") == md5(ks)
    assert report.ks_lines[0] == ks.splitlines()[0]
    assert report.get("poweroff", "reason") == "done"


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_libvirt_pxe_with_suspend_resume(
    netns: Netns, http_server: HttpServer, tftp_root: Path, start_dnsmasq, libvirtd, tmp_path
) -> None:
    import libvirt

    from provisioner.testing.netlab_libvirt import domain_xml

    mac = "52:54:00:98:00:02"
    ks = kickstart("libvirt")
    (http_server.root / "ks.cfg").write_text(ks)
    append = netlab.kernel_append(http_server.url("ks.cfg"), http_server.url("callback"))
    (tftp_root / "pxelinux.cfg" / netlab.pxelinux_cfg_name(mac)).write_text(
        netlab.pxelinux_config("vmlinuz", "initrd.gz", append)
    )
    # As the project will run it: dnsmasq does DHCP only and names another TFTP server
    # (next-server); here a TFTP-only dnsmasq on a second bridge address stands in for it.
    tftp_ip = netns.host(2)
    netns.add_address(f"{tftp_ip}/24")
    tftpd = start_dnsmasq(
        f"listen-address={tftp_ip}\nbind-interfaces\nenable-tftp\ntftp-root={tftp_root}\n",
        name="tftpd",
    )
    dhcp = start_dnsmasq(
        netlab.dnsmasq_config(netns, boot=PxeBootFiles(efi64=None), tftp_server=tftp_ip)
    )

    conn = libvirtd.connect()
    serial = tmp_path / "lv-vm.serial.log"
    dom = conn.defineXML(domain_xml("netlab-vm", mac=mac, serial_log=serial, bridge=netns.bridge))
    started = time.monotonic()
    dom.create()
    ack = dhcp.wait_ack(mac, BOOT_TIMEOUT)
    # The guest's tap was created by libvirtd inside the namespace, on its bridge.
    assert "vnet" in netns.ip("-o", "link", "show", "master", netns.bridge)

    dom.suspend()
    assert dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED
    cpu_before = dom.info()[4]
    time.sleep(1.0)
    assert dom.info()[4] == cpu_before, "a paused guest must not run"
    dom.resume()
    assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING

    http_server.wait_request(lambda r: r.method == "POST", BOOT_TIMEOUT, "the callback")
    netlab.wait_until(
        lambda: dom.state()[0] == libvirt.VIR_DOMAIN_SHUTOFF, 60, "the domain to shut off"
    )
    print(f"timing libvirt: shutoff +{time.monotonic() - started:.1f}s (1 s paused)")
    assert dom.state() == [libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN]
    assert_installed(http_server, mac, ks, ack.ip)
    assert {c for _, c in tftpd.log().tftp_sent} == {ack.ip}
    assert dhcp.log().tftp_sent == []
    report = netlab.parse_netboot_serial(serial.read_text(errors="replace"))
    assert report.get("ks", "md5") == md5(ks)


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_uefi_pxe_ipxe_http(
    netns: Netns,
    http_server: HttpServer,
    tftp_root: Path,
    boot_assets: BootAssets,
    start_dnsmasq,
    start_vm,
) -> None:
    """OVMF's own PXE -> TFTP snponly.efi -> iPXE script, kernel and initrd over HTTP."""
    mac = "52:54:00:98:00:03"
    ks = kickstart("uefi")
    www = http_server.root
    (www / "ks.cfg").write_text(ks)
    boot_assets.populate_tftp(www, loaders=[])
    append = netlab.kernel_append(http_server.url("ks.cfg"), http_server.url("callback"))
    (www / "boot.ipxe").write_text(
        netlab.ipxe_script(http_server.url("vmlinuz"), http_server.url("initrd.gz"), append)
    )
    boot = PxeBootFiles(bios=None, efi64="snponly.efi", efi64_ipxe=http_server.url("boot.ipxe"))
    dnsmasq = start_dnsmasq(netlab.dnsmasq_config(netns, boot=boot, tftp_root=tftp_root))

    vm = start_vm(mac=mac, firmware="uefi")
    assert vm.wait(BOOT_TIMEOUT) == 0
    print(f"timing uefi: QEMU exit +{vm.elapsed:.1f}s")

    log = dnsmasq.log()
    assert log.lines("PXEClient:Arch:00007"), "the firmware should have asked as UEFI x86-64"
    assert [Path(p).name for p, _ in log.tftp_sent if p.endswith(".efi")][-1] == "snponly.efi"
    paths = [r.path for r in http_server.requests() if r.method == "GET"]
    assert paths[:3] == ["/boot.ipxe", "/vmlinuz", "/initrd.gz"]
    assert_installed(http_server, mac, ks, log.acks_for(mac)[-1].ip)


def test_netboot_report_parsing() -> None:
    serial = (
        "[    3.1] Run /init as init process\r\n"
        "netboot-init: start mac=52:54:00:00:00:01 iface=eth0 bootif= ks=http://h/ks?a=1&b=2\r\n"
        "noise netboot-init: ks status=ok http=200 bytes=12 md5=0123abcd\r\n"
        "netboot-init: ks| # first line\r\n"
        "netboot-init: callback status=failed tries=3\r\n"
    )
    report = netlab.parse_netboot_serial(serial)
    assert report.get("start", "ks") == "http://h/ks?a=1&b=2"
    assert report.get("start", "bootif") == ""
    assert report.get("ks", "md5") == "0123abcd"
    assert report.ks_lines == ["# first line"]
    assert report.get("callback", "status") == "failed"
    assert report.get("poweroff", "reason") is None


def test_dnsmasq_log_parsing() -> None:
    text = (
        "Nov 22 02:36:30 dnsmasq[1]: started, version 2.90 DNS disabled\n"
        "Nov 22 02:36:35 dnsmasq-dhcp[1]: 30 DHCPACK(br0) 10.98.0.157 52:54:00:12:34:56\n"
        "Nov 22 02:36:36 dnsmasq-dhcp[1]: 31 DHCPACK(br0) 10.98.0.158 52:54:00:AB:CD:EF node1\n"
        "Nov 22 02:36:37 dnsmasq-tftp[1]: sent /t/pxelinux.0 to 10.98.0.157\n"
        "Nov 22 02:36:37 dnsmasq-tftp[1]: file /t/pxelinux.cfg/default not found\n"
    )
    log = netlab.DnsmasqLog(text)
    assert log.started
    assert log.acks_for("52:54:00:ab:cd:ef")[0].hostname == "node1"
    assert [a.ip for a in log.acks] == ["10.98.0.157", "10.98.0.158"]
    assert log.tftp_sent == [("/t/pxelinux.0", "10.98.0.157")]
    assert log.tftp_errors == ["file /t/pxelinux.cfg/default not found"]


def test_dnsmasq_config_keeps_runs_apart(tmp_path: Path) -> None:
    ns = Netns("pvnl-test", tmp_path, "br0", 7)  # not created: only its addresses are used
    text = netlab.dnsmasq_config(ns, boot=PxeBootFiles(), tftp_server=ns.host(2))
    assert "dhcp-range=10.98.7.100,10.98.7.200,255.255.255.0,1h" in text
    assert "dhcp-boot=tag:bios-fw,pxelinux.0,,10.98.7.2" in text
    assert "dhcp-boot=tag:efi64-fw,ipxe.efi,,10.98.7.2" in text
    assert "enable-tftp" not in text
    full = netlab.Dnsmasq(ns, text + "log-facility=/var/log/x\nport=5353\n").config
    assert "log-facility=/var/log/x" not in full
    assert f"log-facility={tmp_path}/dnsmasq.log" in full
    assert "port=0" not in full, "an explicit port of the caller wins"
    assert f"dhcp-leasefile={tmp_path}/dnsmasq.leases" in full
    assert f"pid-file={tmp_path}/dnsmasq.pid" in full


def test_newc_archive_unpacks_with_cpio(tmp_path: Path) -> None:
    if shutil.which("busybox") is None:
        pytest.skip("busybox is not installed (Debian package busybox-static)")
    script = b"#!/bin/sh\necho hi\n"
    archive = newc_archive([("bin", 0o040755, b""), ("bin/hello", 0o100755, script)])
    subprocess.run(
        ["busybox", "cpio", "-i", "-d"],
        input=archive,
        cwd=tmp_path,
        capture_output=True,
        check=True,
    )
    hello = tmp_path / "bin" / "hello"
    assert hello.read_bytes() == script
    assert hello.stat().st_mode & 0o777 == 0o755
