"""Boot actions in both command generations, boot state and boot flags (seeds 002 and 003)."""

from __future__ import annotations

import json

import pytest

UCSD_ARGS = (
    "append ks initrd=initrd.img ramdisk_size=150000 lang= devfs=nomount pxe kssendmac "
    "selinux=0 noipv6 ucsd=rocks"
)


@pytest.fixture
def olympic(rocks):
    rocks.ok("add host compute-0-0")
    rocks.ok("set host boot compute-0-0 action=os")
    return rocks


def table(out: str) -> list[list[str]]:
    # Split on runs of 2+ spaces is not safe for values with spaces; use JSON when it matters.
    return [line.split() for line in out.splitlines()]


def test_default_bootactions(rocks):
    rows = {r["action"]: r for r in json.loads(rocks.ok("list bootaction output-format=json"))}
    # The seed's six (base roll); other rolls add theirs (the Xen roll: install vm...).
    assert set(rows) >= {"install", "install headless", "memtest", "os", "pxeflash", "rescue"}
    assert rows["os"]["kernel"] == "localboot 0"
    assert rows["pxeflash"] == {
        "action": "pxeflash",
        "kernel": "kernel memdisk bigraw",
        "ramdisk": "pxeflash.img",
        "args": "keeppxe",
    }
    assert rows["rescue"]["args"].endswith(" rescue")


def test_seed_003_pxeboot_flow(olympic):
    rocks = olympic
    assert (
        rocks.ok("list host pxeboot")
        == "HOST         ACTION\nfrontend:    -----\ncompute-0-0: os\n"
    )
    rocks.ok('set host pxeboot compute-0-0 action="install"')
    assert rocks.ok("list host pxeboot").splitlines()[2] == "compute-0-0: install"
    rocks.ok(
        f'add host pxeaction action="install ucsd" command="kernel vmlinuz" args="{UCSD_ARGS}"'
    )
    rows = {
        r["action"]: r
        for r in json.loads(rocks.ok("list host pxeaction compute-0-0 output-format=json"))
    }
    assert rows["install ucsd"] == {
        "action": "install ucsd",
        "command": "kernel vmlinuz",
        "args": UCSD_ARGS,
    }
    assert rows["os"] == {"action": "os", "command": "localboot 0", "args": None}
    assert rows["pxeflash"] == {
        "action": "pxeflash",
        "command": "kernel memdisk bigraw",
        "args": "append initrd=pxeflash.img keeppxe",
    }
    rocks.ok('set host pxeboot compute-0-0 action="install ucsd"')
    assert rocks.ok("list host pxeboot").splitlines()[2] == "compute-0-0: install ucsd"
    assert json.loads(rocks.ok("list host boot compute-0-0 output-format=json")) == [
        {"host": "compute-0-0", "action": "install"}
    ]
    # Back to the local disk.
    rocks.ok("set host pxeboot compute-0-0 action=os")
    assert rocks.ok("list host pxeboot").splitlines()[2] == "compute-0-0: os"


def test_per_host_pxeaction_override(olympic):
    rocks = olympic
    rocks.ok("add host compute-0-1")
    rocks.ok(
        f'add host pxeaction compute-0-0 action="install" command="kernel vmlinuz" args="{UCSD_ARGS}"'
    )
    mine = {
        r["action"]: r
        for r in json.loads(rocks.ok("list host pxearg compute-0-0 output-format=json"))
    }
    other = {
        r["action"]: r
        for r in json.loads(rocks.ok("list host pxearg compute-0-1 output-format=json"))
    }
    assert mine["install"]["args"] == UCSD_ARGS
    assert "ucsd=rocks" not in other["install"]["args"]
    assert "ksdevice=bootif" in other["install"]["args"]
    rocks.ok('remove host pxeaction compute-0-0 action="install"')
    mine = {
        r["action"]: r
        for r in json.loads(rocks.ok("list host pxearg compute-0-0 output-format=json"))
    }
    assert mine["install"] == other["install"]


def test_pxeaction_round_trips_to_the_5_2_model(rocks):
    rocks.ok(
        f'add host pxeaction action="install ucsd" command="kernel vmlinuz" args="{UCSD_ARGS}"'
    )
    row = [
        r
        for r in json.loads(rocks.ok("list bootaction output-format=json"))
        if r["action"] == "install ucsd"
    ][0]
    assert row["kernel"] == "vmlinuz" and row["ramdisk"] == "initrd.img"
    assert (
        row["args"]
        == "ks ramdisk_size=150000 lang= devfs=nomount pxe kssendmac selinux=0 noipv6 ucsd=rocks"
    )


def test_seed_002_bootactions_and_installation(rocks):
    rocks.ok(
        'add bootaction action="install vm frontend i386" '
        'kernel="file:///boot/kickstart/xen/vmlinuz-5.2-i386" '
        'ramdisk="file:///boot/kickstart/xen/initrd-xen.iso.gz-5.2-i386" '
        'args="ramdisk_size=150000 lang= devfs=nomount pxe kssendmac selinux=0 noipv6 '
        'ks=http://bayou.rockclusters.org/install/sbin/kickstart.cgi ksdevice=eth1 build"'
    )
    rocks.ok("add host compute-0-0")
    rocks.ok('set host installation compute-0-0 action="install vm frontend i386"')
    assert (
        json.loads(rocks.ok("list host compute-0-0 output-format=json"))[0]["installaction"]
        == "install vm frontend i386"
    )
    assert (
        "no boot action 'install nothing'"
        in rocks('set host installation compute-0-0 action="install nothing"').err
    )
    rocks.ok("set host runaction compute-0-0 action=memtest")
    rocks.ok("set host installaction compute-0-0 none")
    row = json.loads(rocks.ok("list host compute-0-0 output-format=json"))[0]
    assert (row["runaction"], row["installaction"]) == ("memtest", None)
    assert (
        "already exists" in rocks('add bootaction action="install vm frontend i386" kernel=x').err
    )
    assert "is used by host 'compute-0-0'" in rocks("remove bootaction memtest").err
    rocks.ok("set host runaction compute-0-0 os")
    rocks.ok("remove bootaction memtest")
    assert "no boot action 'memtest'" in rocks("remove bootaction memtest").err


def test_set_host_boot_states(rocks):
    rocks.ok("add host compute-0-0")
    rocks.ok("set host boot compute-0-0 action=install")
    assert rocks.ok("list host boot compute-0-0").splitlines()[1].split() == [
        "compute-0-0:",
        "install",
    ]
    assert "must be one of install, os, run" in rocks("set host boot compute-0-0 action=reboot").err


def test_seed_003_bootflags(olympic):
    rocks = olympic
    rocks.ok('set bootflags flags="dom0_mem=1024M"')
    assert (
        rocks.ok("report host bootflags")
        == "frontend: dom0_mem=1024M\ncompute-0-0: dom0_mem=1024M\n"
    )
    rocks.ok('set host bootflags compute-0-0 flags="dom0_mem=1024M ucsd=rocks"')
    assert rocks.ok("report host bootflags") == (
        "frontend: dom0_mem=1024M\ncompute-0-0: dom0_mem=1024M ucsd=rocks\n"
    )
    assert rocks.ok("report host bootflags compute-0-0") == "dom0_mem=1024M ucsd=rocks\n"
    rocks.ok('set host bootflags compute-0-0 flags=""')
    assert rocks.ok("report host bootflags compute-0-0") == "dom0_mem=1024M\n"
