"""Boot configs computed per request: pxelinux (Rocks' format), GRUB and iPXE."""

from __future__ import annotations

import pytest

from provisioner.db.reader import Reader
from provisioner.pxe.bootconfig import BootConfigs, hexip, ip_from_hex, mac_from_pxe

KS = "http://10.1.1.1/install/sbin/kickstart.cgi"
FILES = "http://10.1.1.1/boot/files"


@pytest.fixture
def boot(rocks, config):
    rocks.ok("add host compute-0-0")
    rocks.ok("add host interface compute-0-0 eth0 52:54:00:12:34:57 ip=10.1.255.254 subnet=private")
    readers: list[Reader] = []

    def reader() -> Reader:
        r = Reader.connect(config.db_url, snapshot=False)
        readers.append(r)
        return r

    yield BootConfigs(config.with_(http_port=80), reader)
    for r in readers:
        r.close()


def test_names():
    assert hexip("10.1.255.254") == "0A01FFFE"
    assert ip_from_hex("0A01FFFE") == "10.1.255.254"
    assert ip_from_hex("0A01FF") is None
    assert mac_from_pxe("01-52-54-00-12-34-57") == "52:54:00:12:34:57"
    assert mac_from_pxe("52-54-00-12-34-57") is None


def test_install_config_in_rocks_format(boot, rocks):
    rocks.ok("set host boot compute-0-0 action=install")
    rocks.ok('set host bootflags compute-0-0 flags="console=ttyS0"')
    text = boot.tftp("pxelinux.cfg/01-52-54-00-12-34-57", ("10.1.255.254", 2070)).decode()
    assert text == (
        "default rocks\nprompt 0\nlabel rocks\n"
        f"\tkernel {FILES}/vmlinuz\n"
        f"\tappend ks={KS} inst.ks={KS} ramdisk_size=150000 lang= devfs=nomount pxe kssendmac "
        f"inst.ks.sendmac selinux=0 noipv6 ksdevice=bootif console=ttyS0 initrd={FILES}/initrd.img\n"
        "\tipappend 2\n"
    )
    # Rocks' name for the same file answers the same.
    assert boot.tftp("/pxelinux.cfg/0A01FFFE", ("10.1.255.254", 2070)).decode() == text


def test_os_is_localboot_and_flip_is_immediate(boot, rocks):
    rocks.ok("set host boot compute-0-0 action=install")
    assert b"kernel http://" in boot.tftp("pxelinux.cfg/01-52-54-00-12-34-57", ("x", 1))
    rocks.ok("set host boot compute-0-0 action=os")
    assert boot.tftp("pxelinux.cfg/01-52-54-00-12-34-57", ("x", 1)).decode() == (
        "default rocks\nprompt 0\nlabel rocks\n\tlocalboot 0\n"
    )


def test_other_actions(boot, rocks):
    rocks.ok("set host pxeboot compute-0-0 action=pxeflash")
    assert boot.tftp("pxelinux.cfg/01-52-54-00-12-34-57", ("x", 1)).decode() == (
        "default rocks\nprompt 0\nlabel rocks\n"
        f"\tkernel {FILES}/memdisk bigraw\n\tappend initrd={FILES}/pxeflash.img keeppxe\n"
    )
    rocks.ok("set host pxeboot compute-0-0 action=memtest")
    assert (
        boot.tftp("pxelinux.cfg/01-52-54-00-12-34-57", ("x", 1))
        .decode()
        .endswith(f"\tkernel {FILES}/memtest\n")
    )
    rocks.ok('set host pxeboot compute-0-0 action="install headless"')
    assert b"headless inst.text vnc inst.vnc" in boot.tftp("pxelinux.cfg/0A01FFFE", ("x", 1))


def test_unknown_machines_and_default(boot, rocks):
    assert boot.tftp("pxelinux.cfg/01-52-54-00-99-99-99", ("x", 1)) is None
    assert boot.tftp("pxelinux.cfg/0A01FFFD", ("x", 1)) is None
    assert boot.tftp("pxelinux.cfg/0A01F", ("x", 1)) is None
    assert boot.tftp("pxelinux.cfg/default", ("x", 1)).decode().endswith("\tlocalboot 0\n")
    rocks.ok("enable discovery appliance=compute")
    assert f"kernel {FILES}/vmlinuz".encode() in boot.tftp("pxelinux.cfg/default", ("x", 1))
    rocks.ok("disable discovery")
    assert b"localboot" in boot.tftp("pxelinux.cfg/default", ("x", 1))
    assert boot.tftp("pxelinux.0", ("x", 1)) is None


def test_grub_and_ipxe(boot, rocks):
    rocks.ok("set host boot compute-0-0 action=install")
    grub = boot.tftp("grub/grub.cfg-01-52-54-00-12-34-57", ("x", 1)).decode()
    assert (
        "linux (http,10.1.1.1)/boot/files/vmlinuz" in grub
        and f"inst.ks={KS}" in grub
        and "initrd (http,10.1.1.1)/boot/files/initrd.img" in grub
    )
    assert "BOOTIF=01-$net_default_mac" in grub
    ipxe = boot.ipxe("52:54:00:12:34:57")
    assert ipxe.startswith("#!ipxe\nkernel http://10.1.1.1/boot/files/vmlinuz ")
    assert "initrd http://10.1.1.1/boot/files/initrd.img\nboot\n" in ipxe
    rocks.ok("set host boot compute-0-0 action=os")
    assert boot.tftp("grub.cfg-0A01FFFE", ("x", 1)).decode().endswith("exit 1\n")
    assert boot.ipxe("52:54:00:12:34:57") == "#!ipxe\nexit\n"


def test_a_roll_renders_the_boot_config_of_the_hosts_it_cares_about(rocks, config):
    """The render_boot_config hook, through the real TFTP and iPXE paths: a roll answers for
    compute-0-0 only; every other host still gets the base roll's config."""
    from provisioner.hooks import Hooks, get_plugin_manager
    from provisioner.hookspecs import hookimpl

    class Appliance:
        @hookimpl
        def render_boot_config(self, host, flavor, attrs):
            if host.name == "compute-0-0":
                return f"# {flavor} for {host.name}, rack {attrs['rack']}\n"
            return None

    rocks.ok("add host compute-0-0")
    rocks.ok("add host interface compute-0-0 eth0 52:54:00:12:34:57 ip=10.1.255.254 subnet=private")
    rocks.ok("add host compute-0-1")
    rocks.ok("add host interface compute-0-1 eth0 52:54:00:12:34:58 ip=10.1.255.253 subnet=private")
    hooks = Hooks(get_plugin_manager(extra=[("appliance", Appliance())]))
    with Reader.connect(config.db_url, snapshot=False) as reader:
        boot = BootConfigs(config, lambda: reader, hooks)
        assert (
            boot.tftp("pxelinux.cfg/01-52-54-00-12-34-57", ("x", 1))
            == b"# pxelinux for compute-0-0, rack 0\n"
        )
        assert boot.ipxe("52:54:00:12:34:57") == "# ipxe for compute-0-0, rack 0\n"
        assert boot.tftp("pxelinux.cfg/01-52-54-00-12-34-58", ("x", 1)).startswith(
            b"default rocks\n"
        )


def test_the_payload_travels_over_http_unless_told_otherwise(rocks, config):
    """TFTP carries only the loader and its config: kernels and initrds are URLs of nginx's
    /boot/files/ (lpxelinux and GRUB fetch them over HTTP). `boot_payload=tftp` keeps Rocks'
    plain names for loaders that cannot do HTTP."""
    rocks.ok("add host compute-0-0")
    rocks.ok("add host interface compute-0-0 eth0 52:54:00:12:34:57 ip=10.1.255.254 subnet=private")
    rocks.ok("set host boot compute-0-0 action=install")
    reader = Reader.connect(config.db_url, snapshot=False)
    try:
        http = BootConfigs(config.with_(http_port=8080), lambda: reader)
        tftp = BootConfigs(config.with_(http_port=8080, boot_payload="tftp"), lambda: reader)
        name = "pxelinux.cfg/01-52-54-00-12-34-57"
        over_http = http.tftp(name, ("x", 1)).decode()
        assert "\tkernel http://10.1.1.1:8080/boot/files/vmlinuz\n" in over_http
        assert " initrd=http://10.1.1.1:8080/boot/files/initrd.img\n" in over_http
        over_tftp = tftp.tftp(name, ("x", 1)).decode()
        assert "\tkernel vmlinuz\n" in over_tftp and " initrd=initrd.img\n" in over_tftp
        grub = http.tftp("grub.cfg-01-52-54-00-12-34-57", ("x", 1)).decode()
        assert "linux (http,10.1.1.1:8080)/boot/files/vmlinuz " in grub
        assert "linux (tftp)/vmlinuz " in tftp.tftp("grub.cfg-0A01FFFE", ("x", 1)).decode()
        # iPXE fetches over HTTP either way.
        assert "kernel http://10.1.1.1:8080/boot/files/vmlinuz " in tftp.ipxe("52:54:00:12:34:57")
    finally:
        reader.close()
