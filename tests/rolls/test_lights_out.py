"""Lights-out virtual frontends (seed 002): the seed's commands against libvirt's test
driver, the frontend's kickstart with its site.attrs and rolls.xml, secrets kept to that
host, the %post that makes it a provisioner server, and the i386 boot actions."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import xml.etree.ElementTree as ET
from pathlib import Path

from rollkit import Serve, read_repo

from provisioner.kickstart.validate import validate

SEED_ROLLS_XML = """\
<rolls>
<roll
  name="os"
  version="5.2"
  arch="x86_64"
  url="http://bayou.rocksclusters.org/install/rolls/"
  diskid=""
/>
<roll
  name="base"
  version="5.2"
  arch="x86_64"
  url="http://bayou.rocksclusters.org/install/rolls/"
  diskid=""
/>
<roll
  name="kernel"
  version="5.2"
  arch="x86_64"
  url="http://bayou.rocksclusters.org/install/rolls/"
  diskid=""
/>
</rolls>
"""
PASSWORD = "$6$rounds=5000$saltsalt$Zx9S0cretHashOnlyForVi1"


def containers(rocks, disks: Path) -> None:
    """Two VM containers on the private network, on libvirt's test driver."""
    rocks.ok("set attr vm_uri value=test:///default")
    rocks.ok(f"set attr vm_disk_dir value={disks}/frontend")
    for n in range(2):
        name = f"vm-container-0-{n}"
        rocks.ok(f"add host {name}")
        rocks.ok(
            f"add host interface {name} eth0 52:54:00:aa:00:0{n} ip=10.1.255.{250 - n} subnet=private"
        )
        rocks.ok(f"set host attr {name} vm_disk_dir {disks}/{name}")


def seed_002(rocks, disks: Path) -> None:
    """The seed's lights-out commands, in order, as shown."""
    containers(rocks, disks)
    assert rocks.ok("add cluster vi-1.rocksclusters.org 137.110.119.118 2") == (
        "created frontend VM named: frontend-0-0-0\n"
        "created compute VM named: hosted-vm-0-0-0\n"
        "created compute VM named: hosted-vm-0-1-0\n"
    )
    for line in (
        "set host attr vi-1 Kickstart_PrivateHostname vi-1",
        "set host attr vi-1 Kickstart_PublicAddress 137.110.119.118",
        "set host attr vi-1 Kickstart_PublicHostname vi-1.rocksclusters.org",
        "set host attr vi-1 Kickstart_PublicKickstartHost bayou.rocksclusters.org",
        "set host roll vi-1 os 5.2 x86_64",
        "set host roll vi-1 base 5.2 x86_64",
        "set host roll vi-1 kernel 5.2 x86_64",
    ):
        assert rocks.ok(line) == ""


def heredoc(text: str, delim: str) -> str:
    m = re.search(rf"<< '{delim}'\n(.*?)^{delim}$", text, re.S | re.M)
    assert m is not None, f"no here-document {delim}"
    return m.group(1)


def sections(ks: str, node: str) -> list[tuple[str, str]]:
    """(%pre/%post line, body) of the sections the node file gave the kickstart."""
    found = re.findall(
        rf"^# base:nodes/{re.escape(node)} line \d+\n(%(?:pre|post)[^\n]*)\n(.*?)\n%end$",
        ks,
        re.S | re.M,
    )
    assert found, f"no section of {node}"
    return found


def test_seed_002_lights_out_virtual_frontend(rocks, test_driver, tmp_path):
    seed_002(rocks, tmp_path / "disks")
    table = [line.split() for line in rocks.ok("list host roll vi-1").splitlines()]
    assert table == [
        ["HOST", "NAME", "VERSION", "ARCH", "OS"],
        ["frontend-0-0-0:", "os", "5.2", "x86_64", "linux"],
        ["frontend-0-0-0:", "base", "5.2", "x86_64", "linux"],
        ["frontend-0-0-0:", "kernel", "5.2", "x86_64", "linux"],
    ]
    assert rocks.ok("report host roll vi-1") == SEED_ROLLS_XML
    # setting a roll again changes nothing
    rocks.ok("set host roll vi-1 os 5.2 x86_64")
    assert rocks.ok("report host roll vi-1") == SEED_ROLLS_XML

    assert rocks.ok("start host vm vi-1") == ""
    dom = test_driver.lookupByName("frontend-0-0-0")
    assert dom.isActive()

    # the kickstart: valid, non-interactive, with the two files equal to the reports
    ks = rocks.ok("list host profile vi-1")
    assert validate(ks, "RHEL9") == []
    site_attrs = rocks.ok("report host attr vi-1")
    assert heredoc(ks, "ROCKS_SITE_ATTRS_EOF") == site_attrs
    assert heredoc(ks, "ROCKS_ROLLS_XML_EOF") == SEED_ROLLS_XML
    assert "Kickstart_PublicKickstartHost:bayou.rocksclusters.org\n" in site_attrs
    assert "hostname:frontend-0-0-0\n" in site_attrs
    assert re.search(
        r"^url --url http://bayou\.rocksclusters\.org/install/rocks-dist/x86_64$", ks, re.M
    )
    assert "--device=72:77:6e:80:00:01 --bootproto=static --ip=137.110.119.118 " in ks
    assert re.search(
        r"^network --device=72:77:6e:80:00:00 .* --ip=10\.1\.1\.1 .*--hostname=vi-1\.local",
        ks,
        re.M,
    )
    assert '/bin/rocks" init frontend attrs="$DIR/site.attrs"' in ks and "pip/index.html" in ks
    for interactive in ("\ninteractive", "\ncmdline", "\ngraphical"):
        assert interactive not in ks
    # partitioning by a scheme, not by the installer asking
    assert "Server_Partitioning:force-default-root-disk-only\n" in site_attrs
    assert "\ntext\n" in ks and "\nreboot\n" in ks

    # the %pre writes exactly those files (run as the installer would, under a root prefix)
    (pre_line, pre_body), (nochroot_line, nochroot_body), _ = sections(ks, "lights-out.xml")
    assert pre_line.startswith("%pre ") and "--nochroot" in nochroot_line
    root = tmp_path / "installer"
    env = {**os.environ, "LIGHTS_OUT_ROOT": str(root)}
    subprocess.run(["bash", "-e", "-c", pre_body], check=True, env=env, timeout=30)
    assert (root / "tmp" / "site.attrs").read_text() == site_attrs
    assert (root / "tmp" / "rolls.xml").read_text() == SEED_ROLLS_XML
    assert oct((root / "tmp" / "site.attrs").stat().st_mode & 0o777) == "0o600"
    subprocess.run(["bash", "-e", "-c", nochroot_body], check=True, env=env, timeout=30)
    copied = root / "mnt" / "sysimage" / "root" / "lights-out"
    assert (copied / "rolls.xml").read_text() == SEED_ROLLS_XML

    # a compute node's kickstart has no lights-out part
    rocks.ok("add host compute-0-0")
    rocks.ok("add host interface compute-0-0 eth0 52:54:00:00:00:01 ip=10.1.200.1 subnet=private")
    assert "ROCKS_SITE_ATTRS_EOF" not in rocks.ok("list host profile compute-0-0")


def test_the_root_password_reaches_only_its_own_kickstart(rocks, tmp_path, config):
    seed_002(rocks, tmp_path / "disks")
    rocks.ok("set host attr vi-1", "attr=Kickstart_PrivateRootPassword", f"value={PASSWORD}")
    rocks.ok("add host compute-0-0")
    rocks.ok("add host interface compute-0-0 eth0 52:54:00:00:00:01 ip=10.1.200.1 subnet=private")
    ks = rocks.ok("list host profile vi-1")
    assert f"rootpw --iscrypted {PASSWORD}\n" in ks
    assert f"Kickstart_PrivateRootPassword:{PASSWORD}\n" in heredoc(ks, "ROCKS_SITE_ATTRS_EOF")
    for other in ("compute-0-0", "frontend"):
        assert PASSWORD not in rocks.ok(f"list host profile {other}")
    assert PASSWORD not in rocks.ok("report host attr frontend")

    # over HTTP: vi-1 from its public address gets it, nobody else does
    from provisioner.web import create_app

    app = create_app(config)
    app.testing = True
    try:
        client = app.test_client()

        def get(path: str, ip: str):
            return client.get(path, environ_base={"REMOTE_ADDR": ip})

        r = get("/install/sbin/kickstart.cgi?arch=x86_64&np=1", "137.110.119.118")
        assert r.status_code == 200 and PASSWORD.encode() in r.data
        assert b"ROCKS_ROLLS_XML_EOF" in r.data
        r = get("/install/sbin/kickstart.cgi", "10.1.200.1")
        assert r.status_code == 200 and PASSWORD.encode() not in r.data
        r = get("/install/sbin/kickstart.cgi?client=vi-1", "10.1.200.1")
        assert r.status_code == 403 and PASSWORD.encode() not in r.data
        r = get("/install/sbin/kickstart.cgi", "137.110.119.200")
        assert r.status_code == 404 and PASSWORD.encode() not in r.data
        # claiming its MAC from an unused private address does not work either
        r = client.get(
            "/install/sbin/kickstart.cgi",
            environ_base={"REMOTE_ADDR": "10.1.200.9"},
            headers={"X-RHN-Provisioning-MAC-0": "eth0 72:77:6e:80:00:00"},
        )
        assert r.status_code == 403 and PASSWORD.encode() not in r.data
    finally:
        app.extensions["provisioner"].events.stop()


def test_seed_002_i386_boot_actions_direct_kernel_boot(rocks, test_driver, tmp_path):
    """i386 and x86_64 VMs side by side; `file://` kernels boot directly on the container."""
    seed_002(rocks, tmp_path / "disks")
    rocks.ok(
        'add bootaction action="install vm i386" '
        'kernel="file:///boot/kickstart/xen/vmlinuz-5.2-i386" '
        'ramdisk="file:///boot/kickstart/xen/initrd-xen.iso.gz-5.2-i386" '
        'args="ks ramdisk_size=150000 lang= devfs=nomount kssendmac selinux=0 noipv6"'
    )
    rocks.ok(
        'add bootaction action="install vm frontend i386" '
        'kernel="file:///boot/kickstart/xen/vmlinuz-5.2-i386" '
        'ramdisk="file:///boot/kickstart/xen/initrd-xen.iso.gz-5.2-i386" '
        'args="ramdisk_size=150000 lang= devfs=nomount pxe kssendmac selinux=0 noipv6 '
        'ks=http://bayou.rockclusters.org/install/sbin/kickstart.cgi ksdevice=eth1 build"'
    )
    rocks.ok('set host installation frontend-0-0-0 action="install vm frontend i386"')
    rocks.ok('set host installation hosted-vm-0-0-0 action="install vm i386"')
    rocks.ok("set host arch frontend-0-0-0 hosted-vm-0-0-0 i386")

    report = ET.fromstring(rocks.ok("report host vm frontend-0-0-0"))
    assert report.find("./os/type").get("arch") == "i686"
    assert report.findtext("./os/kernel") == "/boot/kickstart/xen/vmlinuz-5.2-i386"
    assert report.findtext("./os/initrd") == "/boot/kickstart/xen/initrd-xen.iso.gz-5.2-i386"
    assert report.findtext("./os/cmdline").endswith(
        "ks=http://bayou.rockclusters.org/install/sbin/kickstart.cgi ksdevice=eth1 build"
    )
    assert report.find("./os/boot") is None

    rocks.ok("start host vm frontend-0-0-0 hosted-vm-0-0-0 hosted-vm-0-1-0")
    import libvirt

    for name, arch, kernel in (
        ("frontend-0-0-0", "i686", "vmlinuz-5.2-i386"),
        ("hosted-vm-0-0-0", "i686", "vmlinuz-5.2-i386"),
        ("hosted-vm-0-1-0", "x86_64", None),
    ):
        dom = test_driver.lookupByName(name)
        live = ET.fromstring(dom.XMLDesc(0))
        assert live.find("./os/type").get("arch") == arch, name
        if kernel is None:  # the x86_64 one boots from the network as before
            assert live.find("./os/kernel") is None
            assert [b.get("dev") for b in live.findall("./os/boot")] == ["network", "hd"]
            continue
        assert live.findtext("./os/kernel") == f"/boot/kickstart/xen/{kernel}", name
        # installed once: the definition for the next boot is the disk, the state os
        after = ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        assert after.find("./os/kernel") is None, name
        boot = json.loads(rocks.ok(f"list host boot {name} output-format=json"))[0]
        assert boot["action"] == "os", name

    # the i386 frontend installs from the i386 tree
    assert re.search(
        r"^url --url \S+/install/rocks-dist/i386$", rocks.ok("list host profile vi-1"), re.M
    )


def test_install_vm_frontend_fetches_its_kickstart_from_this_server(rocks, test_driver, tmp_path):
    """The Xen roll's `install vm frontend` names &Kickstart_PublicHostname;: this server's
    public name, not the one site.attrs gives the virtual frontend."""
    seed_002(rocks, tmp_path / "disks")
    rocks.ok('set host installaction frontend-0-0-0 "install vm frontend"')
    rocks.ok("start host vm vi-1")
    live = ET.fromstring(test_driver.lookupByName("frontend-0-0-0").XMLDesc(0))
    cmdline = live.findtext("./os/cmdline")
    assert "ks=http://frontend.example.org/install/sbin/kickstart.cgi" in cmdline
    assert "vi-1.rocksclusters.org" not in cmdline


def test_pxelinux_entries_of_the_other_boot_actions(rocks):
    """pxeflash (memdisk), memtest and rescue as pxelinux files, from the boot-config service."""
    from provisioner.db.reader import Reader
    from provisioner.pxe.bootconfig import BootConfigs

    rocks.ok("add host compute-0-0")
    rocks.ok("add host interface compute-0-0 eth0 52:54:00:00:00:01 ip=10.1.200.1 subnet=private")
    boot = BootConfigs(rocks.config, lambda: Reader.connect(rocks.config.db_url))

    def pxelinux(action: str) -> str:
        rocks.ok(f"set host runaction compute-0-0 action={action}")
        rocks.ok("set host boot compute-0-0 action=os")
        return boot.tftp("pxelinux.cfg/01-52-54-00-00-00-01", ("10.1.255.254", 0)).decode()

    files = "http://10.1.1.1/boot/files"
    assert pxelinux("pxeflash").splitlines()[-2:] == [
        f"\tkernel {files}/memdisk bigraw",
        f"\tappend initrd={files}/pxeflash.img keeppxe",
    ]
    assert pxelinux("memtest").splitlines()[-1] == f"\tkernel {files}/memtest"
    rocks.ok("set host installaction compute-0-0 action=rescue")
    rocks.ok("set host boot compute-0-0 action=install")
    lines = boot.tftp("pxelinux.cfg/01-52-54-00-00-00-01", ("10.1.255.254", 0)).decode()
    assert f"\tkernel {files}/vmlinuz\n" in lines
    append = next(x for x in lines.splitlines() if x.startswith("\tappend "))
    # Rocks' word and today's installer's: anaconda honours inst.rescue.
    assert append.split()[-3:] == ["rescue", "inst.rescue", f"initrd={files}/initrd.img"]
    assert "ks=http://10.1.1.1/install/sbin/kickstart.cgi" in append


def test_lights_out_post_makes_a_provisioner_server(two_rolls, tmp_path, hooks):
    """The frontend's own %pre and %post sections, run under a root prefix: provisioner is
    pip-installed from this server's distribution into a venv, initialised from site.attrs,
    fetches the rolls of rolls.xml from this server's /install/rolls/ (on 127.0.0.1) and
    builds a distribution of its own. Database-independent: one run, on SQLite."""
    from provisioner.config import Config
    from provisioner.testing.pytest_plugin import TEST_ATTRS, Rocks

    config = Config.for_home(tmp_path / "server")
    rocks = Rocks(config, hooks)
    rocks.ok("init", "frontend", *TEST_ATTRS)
    rocks.ok("add roll", str(two_rolls.hpc), str(two_rolls.bio))
    rocks.ok("create distro")
    seed_002(rocks, tmp_path / "disks")
    rocks.ok("set host roll vi-1 hpc 1.0 x86_64")
    rocks.ok("set host roll vi-1 bio 2.0 x86_64")
    rocks.ok("set host attr vi-1", "attr=Kickstart_PrivateRootPassword", f"value={PASSWORD}")
    with Serve(config) as base:
        rocks.ok(f"set host attr vi-1 Kickstart_PublicKickstartHost {base[len('http://') :]}")
        ks = rocks.ok("list host profile vi-1")
        assert f'url="{base}/install/rolls/"' in heredoc(ks, "ROCKS_ROLLS_XML_EOF")
        (_, pre), (_, nochroot), (_, post) = sections(ks, "lights-out.xml")
        installer = tmp_path / "installer"
        sysimage = installer / "mnt" / "sysimage"
        # our dependencies, without our own installation (pip must install the wheel)
        deps = tmp_path / "deps"
        deps.mkdir()
        for item in Path(sysconfig.get_paths()["purelib"]).iterdir():
            if not item.name.startswith(("provisioner", "__editable__")):
                (deps / item.name).symlink_to(item)
        env = {
            **os.environ,
            "LIGHTS_OUT_ROOT": str(installer),
            # pip takes provisioner from the distribution only; its dependencies are ours
            "PIP_NO_INDEX": "1",
            "PIP_NO_DEPS": "1",
            "PYTHONPATH": str(deps),
            "LIGHTS_OUT_PYTHON": getattr(sys, "_base_executable", sys.executable),
        }
        env.pop("PROVISIONER_HOME", None)
        for body in (pre, nochroot):
            subprocess.run(["bash", "-c", body], check=True, env=env, timeout=30, cwd=tmp_path)
        env["LIGHTS_OUT_ROOT"] = str(sysimage)  # the chroot's / is the new system
        done = subprocess.run(
            ["bash", "-c", post], env=env, timeout=300, cwd=tmp_path, capture_output=True, text=True
        )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "warning: roll os 5.2 x86_64" in done.stderr  # in rolls.xml, not on this server

    new_env = {**env, "PROVISIONER_HOME": str(sysimage / "var" / "lib" / "provisioner")}
    new_rocks = str(sysimage / "opt" / "provisioner" / "bin" / "rocks")

    def new(*words: str) -> str:
        out = subprocess.run(
            [new_rocks, *words],
            env=new_env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    # its own provisioner, from the wheel in this server's distribution
    probe = subprocess.run(
        [
            str(sysimage / "opt" / "provisioner" / "bin" / "python"),
            "-c",
            "import provisioner; print(provisioner.__file__)",
        ],
        env=new_env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert probe.stdout.startswith(str(sysimage / "opt" / "provisioner"))
    hosts = json.loads(new("list host output-format=json"))
    assert [(h["host"], h["membership"]) for h in hosts] == [("vi-1", "Frontend")]
    attrs = json.loads(new("list attr output-format=json"))
    values = {a["attr"]: a["value"] for a in attrs}
    assert values["Kickstart_PublicHostname"] == "vi-1.rocksclusters.org"
    assert values["Kickstart_PrivateRootPassword"] == PASSWORD  # for its own nodes
    rolls = {r["name"]: r for r in json.loads(new("list roll output-format=json"))}
    assert rolls["hpc"]["enabled"] and rolls["bio"]["enabled"] and "os" not in rolls
    dist = sysimage / "var" / "lib" / "provisioner" / "install" / "rocks-dist"
    assert set(read_repo(dist / "x86_64")) == {"hpc-mpi", "hpc-tools", "bio-blast"}
    kept = (sysimage / "root" / "lights-out" / "site.attrs").read_text()
    assert "Kickstart_PrivateRootPassword" not in kept and "Kickstart_PrivateHostname:vi-1" in kept
    unit = (sysimage / "etc" / "systemd" / "system" / "provisionerd.service").read_text()
    assert "ExecStart=/opt/provisioner/bin/provisionerd" in unit
