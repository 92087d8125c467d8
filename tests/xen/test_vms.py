"""Adding VMs and virtual clusters: MAC addresses, names, slices, VLANs, disks; changing,
dumping and removing VMs; errors from the hypervisor; consoles."""

from __future__ import annotations

import json

import pytest

from provisioner.plugins.xen.macs import MacAllocator, base_and_mask, base_from_ip


@pytest.mark.parametrize(
    "ip,base",
    [
        ("137.110.119.114", "72:77:6e:80:00:00"),  # the seed's frontend
        ("137.110.119.117", "76:77:6e:40:00:00"),  # Rocks 5.4.3 docs
        ("137.110.119.118", "76:77:6e:80:00:00"),  # the virtual frontend's IP, for contrast
        ("137.110.119.55", "36:77:6e:c0:00:00"),  # Rocks 5.4 docs
        ("10.0.0.1", "02:00:00:40:00:00"),  # multicast bit cleared, local bit set
        ("1.2.3.255", "fe:03:02:c0:00:00"),
    ],
)
def test_mac_base_from_public_ip(ip, base):
    assert base_from_ip(ip) == base
    first = int(base[:2], 16)
    assert first & 1 == 0 and first & 2 == 2  # unicast, locally administered


def test_mac_allocation_continues_above_the_highest_in_range():
    base, mask = base_and_mask("137.110.119.114")
    assert mask == "ff:ff:ff:c0:00:00"
    used = ["72:77:6e:80:00:07", "72:77:6e:80:00:02", "52:54:00:00:00:99", "72:77:6f:80:00:00"]
    alloc = MacAllocator(base, mask, used)
    assert [alloc.next(), alloc.next()] == ["72:77:6e:80:00:08", "72:77:6e:80:00:09"]
    assert base_and_mask(None) == ("00:16:3e:00:00:00", "ff:ff:ff:00:00:00")


def test_mac_range_ends():
    from provisioner.errors import Conflict

    alloc = MacAllocator("72:77:6e:80:00:00", "ff:ff:ff:c0:00:00", ["72:77:6e:bf:ff:ff"])
    with pytest.raises(Conflict, match="no VM MAC address left"):
        alloc.next()


def macs_of(vmc) -> list[str]:
    rows = json.loads(vmc.ok("list host interface output-format=json"))
    return [r["mac"] for r in rows if r["mac"]]


def test_first_vm_macs_follow_the_seed(vmc):
    vmc.ok('add host vm vm-container-0-0 membership="Compute" num-macs=2')
    vmc.ok('add host vm vm-container-0-0 membership="Compute"')
    rows = json.loads(vmc.ok("list host vm output-format=json"))
    assert [(r["vm-host"], r["slice"], r["mac"]) for r in rows] == [
        ("compute-0-0-0", 0, "72:77:6e:80:00:00"),
        ("compute-0-0-0", None, "72:77:6e:80:00:01"),
        ("compute-0-0-1", 1, "72:77:6e:80:00:02"),
    ]
    # the base is stored once: a new public address does not move the range
    vmc.ok("set attr Kickstart_PublicAddress 137.110.119.117")
    vmc.ok('add host vm vm-container-0-1 membership="Compute"')
    assert "72:77:6e:80:00:03" in macs_of(vmc)
    attrs = vmc.ok("report host attr frontend").splitlines()
    assert "vm_mac_base_addr:72:77:6e:80:00:00" in attrs
    assert "vm_mac_base_addr_mask:ff:ff:ff:c0:00:00" in attrs


def test_without_a_public_address_vms_get_xen_macs(vmc):
    vmc.ok("remove attr Kickstart_PublicAddress")
    vmc.ok('add host vm vm-container-0-0 membership="Compute"')
    vmc.ok('add host vm vm-container-0-0 membership="Compute"')
    vm_macs = sorted(m for m in macs_of(vmc) if not m.startswith("52:54"))
    assert vm_macs == ["00:16:3e:00:00:00", "00:16:3e:00:00:01"]


def test_names_slices_and_addresses(vmc):
    out = vmc.ok("add host vm vm-container-0-0 vm-container-1-0 membership=Compute")
    assert out.splitlines() == [
        'added VM on node "vm-container-0-0" slice "0" with vm_name "compute-0-0-0"',
        'added VM on node "vm-container-1-0" slice "0" with vm_name "compute-1-0-0"',
    ]
    # a name taken by another host is skipped, like Rocks' loop on the name
    vmc.ok("add host hosted-vm-0-0-1 membership=hosted-vm")
    out = vmc.ok('add host vm vm-container-0-0 membership="Hosted VM" mem=2048 cpus=2')
    assert out == 'added VM on node "vm-container-0-0" slice "2" with vm_name "hosted-vm-0-0-2"\n'
    ifaces = {
        (r["host"], r["iface"]): r
        for r in json.loads(vmc.ok("list host interface output-format=json"))
    }
    # a Compute VM gets the next free private address and its name; a Hosted VM none
    assert ifaces[("compute-0-0-0", "eth0")]["ip"] == "10.1.255.254"
    assert ifaces[("compute-1-0-0", "eth0")]["ip"] == "10.1.255.253"
    assert ifaces[("compute-0-0-0", "eth0")]["name"] == "compute-0-0-0"
    hosted = ifaces[("hosted-vm-0-0-2", "eth0")]
    assert hosted["ip"] is None and hosted["subnet"] is None and hosted["module"] is None
    host = json.loads(vmc.ok("list host hosted-vm-0-0-2 output-format=json"))[0]
    assert (host["cpus"], host["rack"], host["rank"]) == (2, 0, 0)
    assert (host["installaction"], host["runaction"]) == ("install", "os")
    row = json.loads(vmc.ok("list host vm hosted-vm-0-0-2 output-format=json"))[0]
    assert (row["mem"], row["cpus"]) == (2048, 2)
    # listing a container lists its VMs
    listed = json.loads(vmc.ok("list host vm vm-container-0-0 output-format=json"))
    assert [r["vm-host"] for r in listed] == ["compute-0-0-0", "hosted-vm-0-0-2"]


def test_many_vms_have_unique_names_and_macs(vmc):
    vmc.ok("add cluster a.example.org 137.110.119.201 7")
    vmc.ok("add cluster b.example.org 137.110.119.202 5 container-hosts=vm-container-1-0")
    vmc.ok("add host vm vm-container-0-0 vm-container-0-1 membership=Compute num-macs=3")
    rows = json.loads(vmc.ok("list host vm output-format=json"))
    names = [r["vm-host"] for r in rows if r["slice"] is not None]
    macs = [r["mac"] for r in rows]
    assert len(names) == 2 + 7 + 5 + 2 == len(set(names))
    assert len(macs) == 2 * 2 + 7 + 5 + 2 * 3 == len(set(macs))
    all_macs = macs_of(vmc)
    assert len(all_macs) == len(set(all_macs))
    # round robin: 7 computes over three containers
    hosts = [r["host"] for r in rows if r["vm-host"].startswith("hosted-vm") and r["slice"] == 0]
    assert sorted(hosts).count("vm-container-0-0") == 1
    per_container = {}
    for r in rows:
        if r["vm-host"].startswith("hosted-vm"):
            per_container[r["host"]] = per_container.get(r["host"], 0) + 1
    assert per_container == {"vm-container-0-0": 3, "vm-container-0-1": 2, "vm-container-1-0": 7}


def vlans(vmc, host: str) -> dict[str, int | None]:
    rows = json.loads(vmc.ok(f"list host interface {host} output-format=json"))
    return {r["iface"]: r["vlan"] for r in rows}


def test_vlan_allocation(vmc):
    vmc.ok("add cluster a.example.org 137.110.119.201 1")
    assert vlans(vmc, "hosted-vm-0-0-0") == {"eth0": 2}
    # a VLAN already used anywhere is skipped
    vmc.ok("add host interface vm-container-0-1 vlan3 subnet=private vlan=3")
    vmc.ok("add cluster b.example.org 137.110.119.202 2")
    assert vlans(vmc, "frontend-0-0-1")["eth0"] == 4
    assert vlans(vmc, "vm-container-0-0") == {"eth0": None, "vlan2": 2, "vlan4": 4}
    assert vlans(vmc, "frontend") == {"eth0": None, "eth1": None, "vlan2": 2, "vlan4": 4}
    # a given VLAN is used as is, and the interfaces are added only once
    vmc.ok("add cluster c.example.org 137.110.119.203 1 vlan=100 container-hosts=vm-container-0-0")
    vmc.ok("add cluster d.example.org 137.110.119.204 1 vlan=100 container-hosts=vm-container-0-0")
    assert vlans(vmc, "vm-container-0-0")["vlan100"] == 100
    assert "vlan100" not in vlans(vmc, "vm-container-0-1")
    assert vmc("add cluster e.example.org 137.110.119.205 1 vlan=4095").err == (
        "error: bad vlan 4095: 2 to 4094\n"
    )
    # per-interface VLANs of add host vm
    vmc.ok("add host vm vm-container-1-0 membership=Compute num-macs=2 vlan=7,none")
    assert vlans(vmc, "compute-1-0-0") == {"eth0": 7, "eth1": None}
    assert "3 VLANs for 1" in vmc("add host vm vm-container-1-0 membership=Compute vlan=1,2,3").err


def test_add_cluster_checks(vmc):
    assert "not in network 'public'" in vmc("add cluster x.example.org 10.9.9.9 1").err
    assert "already used" in vmc("add cluster x.example.org 137.110.119.114 1").err
    vmc.ok("add cluster x.example.org 137.110.119.150 0")
    assert "already the name" in vmc("add cluster x.example.org 137.110.119.151 0").err
    # nothing of the failed ones stayed
    rows = json.loads(vmc.ok("list host vm output-format=json"))
    assert {r["vm-host"] for r in rows} == {"frontend-0-0-0"}


def test_disk_goes_on_the_largest_partition(rocks, engine):
    from sqlalchemy import text

    from provisioner.db.engine import transaction
    from provisioner.services.partitions import replace_partitions

    rocks.ok("add host vm-container-0-0")
    with transaction(engine) as session:
        host_id = session.execute(
            text("SELECT id FROM hosts WHERE name = 'vm-container-0-0'")
        ).scalar()
        replace_partitions(
            session,
            host_id,
            [
                {"device": "sda1", "mountpoint": "/", "partitionsize": "16.0GB"},
                {"device": "sda2", "mountpoint": "swap", "partitionsize": "900GB"},
                {"device": "sda3", "mountpoint": "/var", "partitionsize": "4096MB"},
                {"device": "sda4", "mountpoint": "/state/partition1", "partitionsize": "72.5GB"},
                {
                    "device": "sdb1",
                    "mountpoint": "/export",
                    "partitionsize": "1.5TB",
                    "fstype": "swap",
                },
            ],
        )
    rocks.ok("add host vm vm-container-0-0 membership=Compute disksize=20")
    rocks.ok("add host vm frontend membership=Compute")
    rows = {
        r["vm-host"]: r for r in json.loads(rocks.ok("list host vm showdisks=y output-format=json"))
    }
    assert rows["compute-0-0-0"]["disk"] == (
        "file:/state/partition1/xen/disks/compute-0-0-0.hda,hda,w"
    )
    assert rows["compute-0-0-0"]["disksize"] == 20
    # no partitions reported, no vm_disk_dir: the documented default
    assert rows["compute-0-0-1"]["disk"] == (
        "file:/state/partition1/xen/disks/compute-0-0-1.hda,hda,w"
    )
    assert rows["compute-0-0-1"]["host"] == "frontend"


def test_set_dump_and_restore(vmc):
    vmc.ok("add cluster a.example.org 137.110.119.201 2")
    vmc.ok("add host vm vm-container-1-0 membership=Compute virt-type=para")
    vmc.ok("set host vm hosted-vm-0-0-0 mem=4096 slice=5 disksize=10")
    vmc.ok("set host vm hosted-vm-0-1-0 disk=phy:/dev/vg0/vm1,xvda,w")
    vmc.ok("set host vm compute-1-0-0 virt-type=hvm")
    host = json.loads(vmc.ok("list host compute-1-0-0 output-format=json"))[0]
    assert (host["installaction"], host["runaction"]) == ("install", "os")
    vmc.ok("set host vm compute-1-0-0 virt-type=para")
    host = json.loads(vmc.ok("list host compute-1-0-0 output-format=json"))[0]
    assert (host["installaction"], host["runaction"]) == ("install vm", None)
    before = vmc.ok("list host vm showdisks=y")
    dump = vmc.ok("dump host vm")
    assert "rocks set host vm hosted-vm-0-1-0 physnode=vm-container-0-1 slice=0 mem=1024 " in dump
    assert "disk=phy:/dev/vg0/vm1,xvda,w disksize=36" in dump
    for name in ("frontend-0-0-0", "hosted-vm-0-0-0", "hosted-vm-0-1-0", "compute-1-0-0"):
        vmc.ok(f"remove host vm {name}")
    assert "hosted-vm" not in vmc.ok("list host vm")
    vmc.ok("batch", stdin=dump)
    assert vmc.ok("list host vm showdisks=y") == before
    assert vmc.ok("dump host vm") == dump


def test_set_host_vm_errors(vmc):
    vmc.ok("add host vm vm-container-0-0 membership=Compute")
    assert "nothing to set" in vmc("set host vm compute-0-0-0").err
    assert "is not a VM: give physnode=" in vmc("set host vm vm-container-0-1 mem=10").err
    assert "bad disk" in vmc("set host vm compute-0-0-0 disk=nfs:/x").err
    assert "cannot hold VM" in vmc("set host vm compute-0-0-0 physnode=compute-0-0-0").err
    assert "virt-type" in vmc("set host vm compute-0-0-0 virt-type=pv").err
    assert "a VM cannot hold VMs" in vmc("add host vm compute-0-0-0 membership=Compute").err


def test_power_failures_are_one_line_naming_vm_and_container(vmc):
    vmc.ok("add host vm vm-container-0-0 membership=Compute")
    result = vmc("pause host vm compute-0-0-0")
    assert result.status == 1
    assert result.err == (
        "error: cannot pause VM compute-0-0-0 on container vm-container-0-0: "
        "it is not defined on its container (run 'rocks start host vm')\n"
    )
    vmc.ok("start host vm compute-0-0-0")
    # Starting a running VM is not a failure: it says so and leaves the domain alone.
    again = vmc("start host vm compute-0-0-0")
    assert again.status == 0 and again.err == ""
    assert again.out == "compute-0-0-0 is already running on vm-container-0-0\n"
    vmc.ok("stop host vm compute-0-0-0")
    assert vmc("resume host vm compute-0-0-0").err.count("\n") == 1
    assert vmc("restore host vm compute-0-0-0").err == (
        "error: cannot restore VM compute-0-0-0 on container vm-container-0-0: no saved state "
        f"at {vmc.disks}/vm-container-0-0/compute-0-0-0.saved (run 'rocks save host vm' first)\n"
    )
    # a container whose hypervisor cannot be reached, or an unknown driver
    # (a local socket that is not there: no traffic leaves the machine)
    vmc.ok(
        "set host attr vm-container-0-0 vm_uri value=qemu+unix:///system?socket=/nonexistent/sock"
    )
    result = vmc("stop host vm compute-0-0-0")
    assert result.err.startswith(
        "error: cannot stop VM compute-0-0-0 on container vm-container-0-0"
    )
    assert result.err.count("\n") == 1
    row = json.loads(vmc.ok("list host vm status=y output-format=json"))[0]
    assert row["status"] == "nostate"  # listings say it rather than fail
    vmc.ok("set host attr vm-container-0-0 vm_driver vmware")
    assert vmc("start host vm compute-0-0-0").err == (
        "error: cannot define VM compute-0-0-0 on container vm-container-0-0: "
        "unknown VM driver 'vmware' (drivers: libvirt)\n"
    )
    # the database rolled back with the failed create
    vmc.ok("set host boot compute-0-0-0 action=os")
    assert vmc("create host vm compute-0-0-0").status == 1
    assert (
        json.loads(vmc.ok("list host boot compute-0-0-0 output-format=json"))[0]["action"] == "os"
    )


def test_a_container_with_vms_cannot_be_removed(vmc):
    vmc.ok("add cluster a.example.org 137.110.119.201 4")
    result = vmc("remove host vm-container-0-0")
    assert result.err == (
        "error: vm-container-0-0 holds VMs (hosted-vm-0-0-0, hosted-vm-0-0-1): move them "
        "('rocks move host vm') or remove them first\n"
    )
    vmc.ok("remove host hosted-vm-0-0-0 hosted-vm-0-0-1")
    vmc.ok("remove host vm-container-0-0")


def test_console_info_and_attach(vmc):
    vmc.ok("add host vm vm-container-0-0 membership=Compute")
    assert "not defined on its container" in vmc("open host console compute-0-0-0").err
    vmc.ok("start host vm compute-0-0-0")
    out = vmc.ok("open host console compute-0-0-0")
    assert "rocks open host console compute-0-0-0 attach=yes" in out
    # libvirt's test driver has no console streams: the failure is one line
    result = vmc("open host console compute-0-0-0 attach=yes")
    assert result.err.splitlines()[-1] == (
        "error: cannot attach to the console of VM compute-0-0-0 on container "
        "vm-container-0-0: this function is not supported by the connection driver: "
        "virDomainOpenConsole"
    )
    vmc.ok("stop host vm compute-0-0-0")
    assert "is not running" in vmc("open host console compute-0-0-0").out
    assert "start it first" in vmc("open host console compute-0-0-0 attach=yes").err


def test_para_vm_boots_its_install_kernel_once(vmc):
    """Rocks' para-virtual VMs: the install kernel comes from the boot action, and start
    flips the VM to os at once, so a reboot boots its disk."""
    lv = vmc.lv
    vmc.ok("add host vm vm-container-0-0 membership=Compute virt-type=para")
    host = json.loads(vmc.ok("list host compute-0-0-0 output-format=json"))[0]
    assert (host["installaction"], host["runaction"]) == ("install vm", None)
    vmc.ok("create host vm compute-0-0-0")
    import xml.etree.ElementTree as ET

    import libvirt

    dom = lv.domain("compute-0-0-0")
    live = ET.fromstring(dom.XMLDesc(0))
    assert live.findtext("./os/kernel") == "/boot/kickstart/xen/vmlinuz"
    assert live.findtext("./os/initrd") == "/boot/kickstart/xen/initrd-xen.iso.gz"
    assert live.findtext("./os/cmdline").startswith("ks ramdisk_size=150000")
    after = ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    assert after.find("./os/kernel") is None
    boot = json.loads(vmc.ok("list host boot compute-0-0-0 output-format=json"))[0]
    assert boot["action"] == "os"


def test_vm_container_kickstart_has_the_xen_node(vmc):
    out = vmc.ok("list host profile vm-container-0-0")
    assert "mkdir -p /state/partition1/xen/disks" in out
    assert "xen/disks" not in vmc.ok("list host profile frontend")


def test_states_are_listed_even_when_a_boot_action_cannot_be_resolved(vmc):
    vmc.ok("add host vm vm-container-0-0 membership=Compute virt-type=para")
    vmc.ok('set host installaction compute-0-0-0 "install vm frontend"')
    vmc.ok("remove attr Kickstart_PublicHostname")
    row = json.loads(vmc.ok("list host vm status=y output-format=json"))[0]
    assert row["status"] == "nostate"
    assert vmc("start host vm compute-0-0-0").err == (
        "error: boot action 'install vm frontend' of compute-0-0-0: "
        "attribute 'Kickstart_PublicHostname' is not defined\n"
    )


def test_a_failing_create_leaves_no_vm_running(vmc):
    vmc.ok("add host vm vm-container-0-0 vm-container-0-1 membership=Compute")
    vmc.ok("set host attr vm-container-0-1 vm_driver nosuch")
    vmc.ok("set host boot compute-0-0-0 action=os")
    result = vmc("create host vm compute-0-0-0 compute-0-1-0")
    assert result.err.startswith("error: cannot define VM compute-0-1-0 on container")
    # compute-0-0-0 had started: it is stopped again, its boot action rolled back with it
    assert vmc.lv.state("compute-0-0-0") == "shutoff"
    boot = json.loads(vmc.ok("list host boot compute-0-0-0 output-format=json"))[0]
    assert boot["action"] == "os"
