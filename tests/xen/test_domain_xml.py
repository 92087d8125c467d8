"""The domain XML `rocks report host vm` prints (and `start` defines) is valid for libvirt's
schema for each hypervisor kind: QEMU (what the end-to-end test boots), Xen para-virtual
and HVM, and the test driver."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from provisioner.plugins.xen.domain import domain_type, domain_xml
from provisioner.plugins.xen.driver import VmBoot, VmConfig, VmDiskSpec, VmNic

SCHEMA = Path("/usr/share/libvirt/schemas/domain.rng")


@pytest.fixture(scope="module")
def schema():
    lxml = pytest.importorskip("lxml.etree", reason="validation uses lxml's RelaxNG")
    if not SCHEMA.exists():
        pytest.skip(f"libvirt's schema {SCHEMA} is not installed (Debian: libvirt-clients)")
    parser = lxml.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return lxml.RelaxNG(lxml.parse(str(SCHEMA), parser))


def vm(uri: str, **kw) -> VmConfig:
    base = dict(
        name="compute-0-0-0",
        container="vm-container-0-0",
        uri=uri,
        mem_mb=2048,
        cpus=2,
        nics=(
            VmNic("72:77:6e:80:00:00", "xenbr.eth0.2", "eth0", 2),
            VmNic("72:77:6e:80:00:01", "br1", "eth1"),
        ),
        disks=(
            VmDiskSpec("/state/partition1/xen/disks/compute-0-0-0.hda", "hda", 36),
            VmDiskSpec("/dev/vg0/data", "hdb", 0, "phy", "r"),
        ),
        state_file="/state/partition1/xen/disks/compute-0-0-0.saved",
    )
    base.update(kw)
    return VmConfig(**base)


def valid(schema, xml: str) -> ET.Element:
    import lxml.etree

    doc = lxml.etree.fromstring(xml.encode())
    assert schema.validate(doc), schema.error_log.last_error
    return ET.fromstring(xml)


def test_qemu_domain_is_bootable_by_pxe(schema):
    dom = valid(
        schema, domain_xml(vm("qemu:///system"), uuid="8f1c9c1e-0c9e-4b1e-9d6c-1d2f3a4b5c6d")
    )
    assert dom.get("type") == "qemu"  # TCG: no /dev/kvm needed
    assert dom.find("./os/type").attrib == {"arch": "x86_64", "machine": "pc"}
    assert [b.get("dev") for b in dom.findall("./os/boot")] == ["network", "hd"]
    assert dom.find("./memory").text == "2048" and dom.find("./vcpu").text == "2"
    nics = dom.findall("./devices/interface")
    assert [n.find("mac").get("address") for n in nics] == [
        "72:77:6e:80:00:00",
        "72:77:6e:80:00:01",
    ]
    assert [n.find("source").get("bridge") for n in nics] == ["xenbr.eth0.2", "br1"]
    assert {n.find("model").get("type") for n in nics} == {"e1000"}  # has a PXE ROM
    disks = dom.findall("./devices/disk")
    assert disks[0].find("target").attrib == {"dev": "hda", "bus": "ide"}
    assert disks[1].get("type") == "block" and disks[1].find("readonly") is not None
    assert dom.find("./devices/serial").get("type") == "pty"
    assert dom.find("./devices/console/target").get("type") == "serial"
    assert dom.find("./devices/graphics").get("listen") == "127.0.0.1"


def test_xen_domains(schema):
    para = valid(schema, domain_xml(vm("xen:///system", virt_type="para")))
    assert para.get("type") == "xen" and para.findtext("./os/type") == "linux"
    assert para.findtext("bootloader") == "/usr/lib/xen/bin/pygrub"
    assert para.find("./devices/interface/script").get("path") == "vif-bridge"
    install = VmBoot("/boot/kickstart/xen/vmlinuz", "/boot/kickstart/xen/initrd.gz", "ks a=b")
    para = valid(schema, domain_xml(vm("xen+ssh://root@c0/system", virt_type="para", boot=install)))
    assert para.find("bootloader") is None
    assert para.findtext("./os/kernel") == "/boot/kickstart/xen/vmlinuz"
    assert para.findtext("./os/cmdline") == "ks a=b"
    hvm = valid(schema, domain_xml(vm("xen:///system", virt_type="hvm")))
    assert hvm.findtext("./os/type") == "hvm"
    assert [b.get("dev") for b in hvm.findall("./os/boot")] == ["network", "hd"]


def test_test_driver_domain(schema):
    dom = valid(schema, domain_xml(vm("test:///default", arch="i386")))
    assert dom.get("type") == "test"
    assert dom.find("./os/type").get("arch") == "i686"


def test_names_are_escaped_and_odd_uris_refused():
    from provisioner.plugins.xen.driver import VmError

    xml = domain_xml(vm("qemu:///system", name="a<b&c"))
    assert ET.fromstring(xml).findtext("name") == "a<b&c"
    with pytest.raises(VmError, match="unsupported hypervisor URI 'lxc:///'"):
        domain_type("lxc:///")
    assert domain_type("qemu+ssh://root@c0/system") == "qemu"
