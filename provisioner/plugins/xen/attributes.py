"""The attributes the Xen roll documents. They are read on the VM container (host, appliance
or global level, the usual resolution), except the MAC base, which is global.

docs/xen.md describes each; `register_attributes` makes those with a default global at
`rocks init frontend`.
"""

from __future__ import annotations

from provisioner.specs import AttrSpec

DEFAULT_URI = "xen:///system"
DEFAULT_BRIDGE = "xenbr.{device}"
DEFAULT_DISK_DIR = "/state/partition1/xen/disks"
DEFAULT_DRIVER = "libvirt"
DEFAULT_NIC_MODEL = "e1000"

ATTRIBUTES: tuple[AttrSpec, ...] = (
    AttrSpec(
        "vm_uri",
        DEFAULT_URI,
        "Hypervisor address of a VM container, as a libvirt URI. `{host}` is replaced by the "
        "container's name, so one global `qemu+ssh://root@{host}/system` serves every "
        "container; `qemu:///system` and `test:///default` are local.",
    ),
    AttrSpec(
        "vm_driver",
        DEFAULT_DRIVER,
        "Name of the VM driver of a container (`libvirt`, or one a roll registers).",
    ),
    AttrSpec(
        "vm_bridge",
        DEFAULT_BRIDGE,
        "Bridge on the container a VM interface plugs into. `{device}` is the container's "
        "interface on the VM interface's network (eth0 when it has none); a VM interface on "
        "VLAN N gets `.N` appended unless the value contains `{vlan}` (Rocks: xenbr.eth0.N).",
    ),
    AttrSpec(
        "vm_nic_model",
        DEFAULT_NIC_MODEL,
        "NIC model of the VMs on a container (libvirt `<model type=...>`: e1000, virtio...).",
    ),
    AttrSpec(
        "vm_disk_dir",
        None,
        "Directory of VM disk images and saved states on a container. Unset: `xen/disks` "
        "under the container's largest reported partition, else "
        f"`{DEFAULT_DISK_DIR}`.",
    ),
    AttrSpec(
        "vm_mac_base_addr",
        None,
        "First MAC of VM interfaces; derived from Kickstart_PublicAddress (reference §5.2) "
        "and stored on the first `rocks add host vm`; 00:16:3e:00:00:00 without a public IP.",
    ),
    AttrSpec(
        "vm_mac_base_addr_mask",
        None,
        "Mask of the VM MAC range (ff:ff:ff:c0:00:00, or ff:ff:ff:00:00:00 for 00:16:3e).",
    ),
    AttrSpec("xen", None, "Per appliance: `true` on VM containers (the graph's `xen` edge).", "A"),
)
