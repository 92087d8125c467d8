"""The seeds' VM command lines, in their order, against libvirt's test driver: after each,
the database and the libvirt domain say what the seed says happened."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET


def vm_rows(vmc, *hosts: str) -> dict[str, dict]:
    out = vmc.ok("list host vm", *hosts, "status=y", "showdisks=y", "output-format=json")
    rows: dict[str, dict] = {}
    for r in json.loads(out):
        rows.setdefault(r["vm-host"], r)
    return rows


def test_seed_003_single_vm_life_cycle(vmc):
    lv = vmc.lv
    out = vmc.ok('add host vm vm-container-0-0 membership="Compute"')
    assert out == 'added VM on node "vm-container-0-0" slice "0" with vm_name "compute-0-0-0"\n'
    assert lv.state("compute-0-0-0") is None  # only the database knows it yet
    row = vm_rows(vmc)["compute-0-0-0"]
    assert (row["slice"], row["mem"], row["cpus"], row["host"]) == (0, 1024, 1, "vm-container-0-0")
    assert row["mac"] == "72:77:6e:80:00:00" and row["status"] == "nostate"
    disk = vmc.disks / "vm-container-0-0" / "compute-0-0-0.hda"
    assert row["disk"] == f"file:{disk},hda,w" and row["disksize"] == 36

    # create: install, then define and start
    vmc.ok("create host vm compute-0-0-0")
    assert lv.state("compute-0-0-0") == "active"
    boot = json.loads(vmc.ok("list host boot compute-0-0-0 output-format=json"))
    assert boot[0]["action"] == "install"
    live = ET.fromstring(lv.domain("compute-0-0-0").XMLDesc(0))
    assert [b.get("dev") for b in live.findall("./os/boot")] == ["network", "hd"]
    assert live.find("./devices/interface/mac").get("address") == "72:77:6e:80:00:00"
    assert disk.stat().st_size == 36 * 10**9 and disk.stat().st_blocks == 0  # sparse

    # list, as in the seed
    rows = vmc.table("list host vm")
    assert rows[0] == ["VM-HOST", "SLICE", "MEM", "CPUS", "MAC", "HOST"]
    assert rows[1] == ["compute-0-0-0:", "0", "1024", "1", "72:77:6e:80:00:00", "vm-container-0-0"]

    # set mem: the database now, the domain at its next start
    vmc.ok("set host vm compute-0-0-0 mem=4096")
    assert vm_rows(vmc)["compute-0-0-0"]["mem"] == 4096
    vmc.ok("stop host vm compute-0-0-0")
    assert lv.state("compute-0-0-0") == "shutoff"
    vmc.ok("start host vm compute-0-0-0")
    assert lv.state("compute-0-0-0") == "active"
    assert lv.domain("compute-0-0-0").maxMemory() == 4096 * 1024

    vmc.ok("pause host vm compute-0-0-0")
    assert lv.state("compute-0-0-0") == "paused"
    assert vm_rows(vmc)["compute-0-0-0"]["status"] == "paused"
    vmc.ok("resume host vm compute-0-0-0")
    assert lv.state("compute-0-0-0") == "active"

    saved = vmc.disks / "vm-container-0-0" / "compute-0-0-0.saved"
    vmc.ok("save host vm compute-0-0-0")
    assert lv.state("compute-0-0-0") == "shutoff" and saved.exists()
    vmc.ok("restore host vm compute-0-0-0")
    assert lv.state("compute-0-0-0") == "active"

    vmc.ok("stop host vm compute-0-0-0")
    assert lv.state("compute-0-0-0") == "shutoff"
    vmc.ok("start host vm compute-0-0-0")

    # move: saved, copied, restored on the new container
    result = vmc("move host vm compute-0-0-0 vm-container-1-0")
    assert result.status == 0, result.err
    assert "moving compute-0-0-0 to vm-container-1-0 [" in result.err and "100%" in result.err
    row = vm_rows(vmc)["compute-0-0-0"]
    moved = vmc.disks / "vm-container-1-0" / "compute-0-0-0.hda"
    assert row["host"] == "vm-container-1-0" and row["disk"] == f"file:{moved},hda,w"
    assert moved.stat().st_size == 36 * 10**9 and lv.state("compute-0-0-0") == "active"
    persistent = lv.domain("compute-0-0-0").XMLDesc(libvirt_inactive())
    assert str(moved) in persistent
    assert not saved.exists()  # the state image was only for the move

    # report: the definition start uses
    report = ET.fromstring(vmc.ok("report host vm compute-0-0-0"))
    assert report.get("type") == "test" and report.findtext("name") == "compute-0-0-0"
    assert report.find("./memory").text == "4096"
    assert report.find("./devices/disk/source").get("file") == str(moved)

    dump = vmc.ok("dump host vm compute-0-0-0")
    assert dump == (
        "rocks set host vm compute-0-0-0 physnode=vm-container-1-0 slice=0 mem=4096 "
        f"virt-type=hvm disk=file:{moved},hda,w disksize=36\n"
    )

    vmc.ok("remove host vm compute-0-0-0")
    assert lv.state("compute-0-0-0") is None
    assert vmc.table("list host vm") == [["VM-HOST", "SLICE", "MEM", "CPUS", "MAC", "HOST"]]
    assert "compute-0-0-0" in vmc.ok("list host")  # only the VM part went


def libvirt_inactive() -> int:
    import libvirt

    return libvirt.VIR_DOMAIN_XML_INACTIVE


def test_seed_002_virtual_cluster(vmc):
    lv = vmc.lv
    out = vmc.ok("add cluster vi-1.rocksclusters.org 137.110.119.118 2")
    assert out == (
        "created frontend VM named: frontend-0-0-0\n"
        "created compute VM named: hosted-vm-0-0-0\n"
        "created compute VM named: hosted-vm-0-1-0\n"
    )
    # the third container got a compute too? No: two computes, round robin from the first.
    assert vmc.table("list cluster") == [
        ["FRONTEND", "CLIENT", "NODES", "TYPE"],
        ["frontend.example.org:", "-----", "physical"],
        [":", "vm-container-0-0", "physical"],
        [":", "vm-container-0-1", "physical"],
        [":", "vm-container-1-0", "physical"],
        ["vi-1.rocksclusters.org:", "-----", "VM"],
        [":", "hosted-vm-0-0-0", "VM"],
        [":", "hosted-vm-0-1-0", "VM"],
    ]
    assert lv.names() == set()

    # `vi-1` names the frontend VM through its public interface
    vmc.ok("start host vm vi-1")
    assert lv.state("frontend-0-0-0") == "active"
    vmc.ok("start host vm hosted-vm-0-0-0")
    assert lv.state("hosted-vm-0-0-0") == "active"

    assert vmc.table("list cluster status=y") == [
        ["FRONTEND", "CLIENT", "NODES", "TYPE", "STATUS"],
        ["frontend.example.org:", "-----", "physical", "-----"],
        [":", "vm-container-0-0", "physical", "-----"],
        [":", "vm-container-0-1", "physical", "-----"],
        [":", "vm-container-1-0", "physical", "-----"],
        ["vi-1.rocksclusters.org:", "-----", "VM", "active"],
        [":", "hosted-vm-0-0-0", "VM", "active"],
        [":", "hosted-vm-0-1-0", "VM", "nostate"],
    ]
    # the seed's listing, MAC for MAC (its physical frontend is at 137.110.119.114 too)
    assert vmc.table("list host vm status=y") == [
        ["VM-HOST", "SLICE", "MEM", "CPUS", "MAC", "HOST", "STATUS"],
        ["frontend-0-0-0:", "0", "1024", "1", "72:77:6e:80:00:00", "frontend", "active"],
        ["frontend-0-0-0:", "-----", "-----", "-----", "72:77:6e:80:00:01", "-----", "-----"],
        ["hosted-vm-0-0-0:", "0", "1024", "1", "72:77:6e:80:00:02", "vm-container-0-0", "active"],
        ["hosted-vm-0-1-0:", "0", "1024", "1", "72:77:6e:80:00:03", "vm-container-0-1", "nostate"],
    ]

    # the frontend VM: eth0 on the cluster's VLAN, eth1 public with the given name and IP
    ifaces = json.loads(vmc.ok("list host interface frontend-0-0-0 output-format=json"))
    by_dev = {i["iface"]: i for i in ifaces}
    assert by_dev["eth0"]["vlan"] == 2 and by_dev["eth0"]["subnet"] == "private"
    assert by_dev["eth1"]["ip"] == "137.110.119.118" and by_dev["eth1"]["subnet"] == "public"
    assert by_dev["eth1"]["name"] == "vi-1.rocksclusters.org"
    # the containers carry the VLAN, and the VMs' interfaces plug into its bridge
    for host in ("frontend", "vm-container-0-0", "vm-container-0-1"):
        vlans = json.loads(vmc.ok(f"list host interface {host} output-format=json"))
        assert any(i["iface"] == "vlan2" and i["vlan"] == 2 for i in vlans), host
    fe = ET.fromstring(lv.domain("frontend-0-0-0").XMLDesc(0))
    bridges = [s.get("bridge") for s in fe.findall("./devices/interface/source")]
    assert bridges == ["xenbr.eth0.2", "xenbr.eth1"]
    assert fe.find("./devices/disk/source").get("file").endswith("/frontend/frontend-0-0-0.hda")

    # the seed's set/pause/resume/save/restore/stop/move on hosted-vm-0-0-0
    vmc.ok("set host vm hosted-vm-0-0-0 mem=4096")
    vmc.ok("pause host vm hosted-vm-0-0-0")
    assert lv.state("hosted-vm-0-0-0") == "paused"
    vmc.ok("resume host vm hosted-vm-0-0-0")
    assert lv.state("hosted-vm-0-0-0") == "active"
    vmc.ok("save host vm hosted-vm-0-0-0")
    assert lv.state("hosted-vm-0-0-0") == "shutoff"
    vmc.ok("restore host vm hosted-vm-0-0-0")
    assert lv.state("hosted-vm-0-0-0") == "active"
    vmc.ok("move host vm hosted-vm-0-0-0 vm-container-1-0")
    assert vm_rows(vmc)["hosted-vm-0-0-0"]["host"] == "vm-container-1-0"
    assert lv.state("hosted-vm-0-0-0") == "active"
    vmc.ok("stop host vm hosted-vm-0-0-0")
    assert lv.state("hosted-vm-0-0-0") == "shutoff"
    vmc.ok("start host vm hosted-vm-0-0-0")
    assert lv.domain("hosted-vm-0-0-0").maxMemory() == 4096 * 1024

    # `rocks remove host` of a VM takes its VM rows and its domain with it
    vmc.ok("remove host hosted-vm-0-0-0")
    assert lv.state("hosted-vm-0-0-0") is None
    assert "hosted-vm-0-0-0" not in vmc.ok("list host vm")
    assert "hosted-vm-0-0-0" not in vmc.ok("dump host vm")


def test_every_vm_gets_its_own_disk_file(vmc):
    vmc.ok("add cluster vi-1.example.org 137.110.119.118 3")
    vmc.ok("create host vm hosted-vm")  # every Hosted VM at once
    images = sorted(p.name for p in vmc.disks.rglob("*.hda"))
    assert images == ["hosted-vm-0-0-0.hda", "hosted-vm-0-1-0.hda", "hosted-vm-1-0-0.hda"]
    assert {vmc.lv.state(n[:-4]) for n in images} == {"active"}
    assert os.path.isdir(vmc.disks / "vm-container-1-0")
