"""A VM's libvirt domain definition (`domain_xml`) on its container's hypervisor.

The domain type follows the container's URI scheme: `xen` gives a Xen domain (para-virtual
with pygrub or a direct kernel, or HVM), `qemu`/`kvm` a QEMU domain (machine pc, type qemu:
TCG works without /dev/kvm), `test` the same XML with type test. Every domain boots from the
network first, then its disk, so a VM installs by PXE from this server like a physical node;
it has a serial console on a pty and a VNC display on 127.0.0.1.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

from provisioner.plugins.xen.driver import VmConfig, VmError

PYGRUB = "/usr/lib/xen/bin/pygrub"


def domain_type(uri: str) -> str:
    scheme = urlsplit(uri).scheme.split("+", 1)[0].lower()
    if scheme in ("qemu", "kvm"):
        return "qemu"
    if scheme in ("xen", "test"):
        return scheme
    raise VmError(f"unsupported hypervisor URI '{uri}' (use xen, qemu or test)")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, {k.rstrip("_"): v for k, v in attrs.items()})
    if text is not None:
        el.text = text
    return el


def _bus(device: str, dtype: str) -> str | None:
    if dtype == "xen":
        return None  # libvirt picks xen's own from the name
    for prefix, bus in (("vd", "virtio"), ("sd", "scsi"), ("xvd", "xen"), ("hd", "ide")):
        if device.startswith(prefix):
            return bus
    return "ide"


def domain_xml(vm: VmConfig, uuid: str | None = None) -> str:
    """The libvirt domain definition of `vm` on its container's hypervisor."""
    dtype = domain_type(vm.uri)
    arch = "i686" if vm.arch in ("i386", "i586", "i686") else vm.arch
    para = dtype == "xen" and vm.virt_type == "para"
    dom = ET.Element("domain", {"type": dtype})
    _sub(dom, "name", vm.name)
    if uuid:
        _sub(dom, "uuid", uuid)
    _sub(dom, "memory", str(vm.mem_mb), unit="MiB")
    _sub(dom, "vcpu", str(vm.cpus))
    if para and vm.boot is None:
        _sub(dom, "bootloader", PYGRUB)
    os_el = _sub(dom, "os")
    if para:
        _sub(os_el, "type", "linux")
    elif dtype == "xen":
        _sub(os_el, "type", "hvm")
    else:
        _sub(os_el, "type", "hvm", arch=arch, machine="pc")
    if vm.boot is not None:
        _sub(os_el, "kernel", vm.boot.kernel)
        if vm.boot.initrd:
            _sub(os_el, "initrd", vm.boot.initrd)
        if vm.boot.cmdline:
            _sub(os_el, "cmdline", vm.boot.cmdline)
    elif not para:
        _sub(os_el, "boot", dev="network")
        _sub(os_el, "boot", dev="hd")
    if not para:
        features = _sub(dom, "features")
        _sub(features, "acpi")
        _sub(features, "apic")
    _sub(dom, "on_poweroff", "destroy")
    _sub(dom, "on_reboot", "restart")
    _sub(dom, "on_crash", "destroy")
    devices = _sub(dom, "devices")
    for disk in vm.disks:
        block = disk.vbd_type == "phy"
        el = _sub(devices, "disk", type="block" if block else "file", device="disk")
        if dtype == "xen":
            _sub(el, "driver", name="phy" if block else "file")
        else:
            _sub(el, "driver", name="qemu", type="raw")
        if block:
            _sub(el, "source", dev=disk.path)
        else:
            _sub(el, "source", file=disk.path)
        bus = _bus(disk.device, dtype)
        if bus:
            _sub(el, "target", dev=disk.device, bus=bus)
        else:
            _sub(el, "target", dev=disk.device)
        if disk.mode == "r":
            _sub(el, "readonly")
    for nic in vm.nics:
        el = _sub(devices, "interface", type="bridge")
        _sub(el, "mac", address=nic.mac)
        _sub(el, "source", bridge=nic.bridge)
        if dtype == "xen":
            _sub(el, "script", path="vif-bridge")
        if not para:
            _sub(el, "model", type=nic.model)
    if dtype != "xen":
        serial = _sub(devices, "serial", type="pty")
        _sub(serial, "target", port="0")
    console = _sub(devices, "console", type="pty")
    _sub(console, "target", type="xen" if para else "serial", port="0")
    _sub(devices, "graphics", type="vnc", port="-1", autoport="yes", listen="127.0.0.1")
    ET.indent(dom, "  ")
    return ET.tostring(dom, encoding="unicode") + "\n"
