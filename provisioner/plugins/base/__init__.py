"""The base roll: core appliances, boot actions, documented attributes and core commands.

It is registered like any third-party roll (entry point `base` in the `provisioner` group), and
its hook implementations are the defaults other rolls build on.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from provisioner.hookspecs import hookimpl
from provisioner.plugins.base.attributes import ATTRIBUTES
from provisioner.specs import ApplianceSpec, AttrSpec, BootActionSpec, CommandRef

if TYPE_CHECKING:
    from provisioner.config import Config
    from provisioner.db.models import Host
    from provisioner.db.reader import Reader
    from provisioner.hooks import Hooks
    from provisioner.services.hostargs import HostRow

_C = "provisioner.plugins.base.commands."

# Command name -> "module:Class" under provisioner.plugins.base.commands; imported on use only.
COMMANDS: dict[str, str] = {
    # hosts
    "add host": "host:AddHost",
    "list host": "host:ListHost",
    "remove host": "host:RemoveHost",
    "set host rack": "host:SetHostRack",
    "set host rank": "host:SetHostRank",
    "set host cpus": "host:SetHostCpus",
    "set host membership": "host:SetHostMembership",
    "set host appliance": "host:SetHostAppliance",
    "set host os": "host:SetHostOs",
    "set host arch": "host:SetHostArch",
    "set host name": "host:SetHostName",
    "set host comment": "host:SetHostComment",
    # interfaces
    "add host interface": "interface:AddHostInterface",
    "list host interface": "interface:ListHostInterface",
    "remove host interface": "interface:RemoveHostInterface",
    "set host interface ip": "interface:SetHostInterfaceIp",
    "set host interface mac": "interface:SetHostInterfaceMac",
    "set host interface subnet": "interface:SetHostInterfaceSubnet",
    "set host interface module": "interface:SetHostInterfaceModule",
    "set host interface name": "interface:SetHostInterfaceName",
    "set host interface vlan": "interface:SetHostInterfaceVlan",
    "set host interface iface": "interface:SetHostInterfaceIface",
    # aliases
    "add host alias": "alias:AddHostAlias",
    "list host alias": "alias:ListHostAlias",
    "remove host alias": "alias:RemoveHostAlias",
    # networks
    "add network": "network:AddNetwork",
    "list network": "network:ListNetwork",
    "remove network": "network:RemoveNetwork",
    "set network subnet": "network:SetNetworkSubnet",
    "set network netmask": "network:SetNetworkNetmask",
    "set network mtu": "network:SetNetworkMtu",
    "set network zone": "network:SetNetworkZone",
    "set network servedns": "network:SetNetworkServedns",
    # appliances and memberships
    "list membership": "appliance:ListMembership",
    "add appliance": "appliance:AddAppliance",
    "list appliance": "appliance:ListAppliance",
    "remove appliance": "appliance:RemoveAppliance",
    # attributes
    "list attr": "attr:ListAttr",
    "set attr": "attr:SetAttr",
    "remove attr": "attr:RemoveAttr",
    "list appliance attr": "attr:ListApplianceAttr",
    "set appliance attr": "attr:SetApplianceAttr",
    "remove appliance attr": "attr:RemoveApplianceAttr",
    "list os attr": "attr:ListOsAttr",
    "set os attr": "attr:SetOsAttr",
    "remove os attr": "attr:RemoveOsAttr",
    "list host attr": "attr:ListHostAttr",
    "set host attr": "attr:SetHostAttr",
    "remove host attr": "attr:RemoveHostAttr",
    "report host attr": "attr:ReportHostAttr",
    # boot
    "add bootaction": "boot:AddBootaction",
    "list bootaction": "boot:ListBootaction",
    "remove bootaction": "boot:RemoveBootaction",
    "set host boot": "boot:SetHostBoot",
    "list host boot": "boot:ListHostBoot",
    "set host installaction": "boot:SetHostInstallaction",
    "set host runaction": "boot:SetHostRunaction",
    "set host installation": "boot:SetHostInstallation",
    "list host pxeboot": "boot:ListHostPxeboot",
    "set host pxeboot": "boot:SetHostPxeboot",
    "list host pxearg": "boot:ListHostPxearg",
    "add host pxeaction": "boot:AddHostPxeaction",
    "list host pxeaction": "boot:ListHostPxeaction",
    "remove host pxeaction": "boot:RemoveHostPxeaction",
    "report host bootflags": "boot:ReportHostBootflags",
    "set host bootflags": "boot:SetHostBootflags",
    "set bootflags": "boot:SetBootflags",
    # partitions
    "list host partition": "partition:ListHostPartition",
    "remove host partition": "partition:RemoveHostPartition",
    # node graph and kickstarts (provisioner.graph, provisioner.kickstart)
    "list host profile": "profile:ListHostProfile",
    "list host xml": "profile:ListHostXml",
    "list node xml": "profile:ListNodeXml",
    "report host graph": "profile:ReportHostGraph",
    # DHCP and discovery (provisioner.dhcp, services.discovery)
    "report host dhcpd": "dhcp:ReportHostDhcpd",
    "report host dnsmasq": "dhcp:ReportHostDnsmasq",
    "sync config": "dhcp:SyncConfig",
    "enable discovery": "discovery:EnableDiscovery",
    "disable discovery": "discovery:DisableDiscovery",
    "list discovery": "discovery:ListDiscovery",
    "list host event": "discovery:ListHostEvent",
    # rolls (roll media, plugin rolls) and distributions (provisioner.rolls, services.rolls)
    "add roll": "roll:AddRoll",
    "list roll": "roll:ListRoll",
    "list roll command": "roll:ListRollCommand",
    "enable roll": "roll:EnableRoll",
    "disable roll": "roll:DisableRoll",
    "remove roll": "roll:RemoveRoll",
    "create distro": "roll:CreateDistro",
    "report distro": "roll:ReportDistro",
    "set host roll": "hostroll:SetHostRoll",
    "list host roll": "hostroll:ListHostRoll",
    "report host roll": "hostroll:ReportHostRoll",
    "remove host roll": "hostroll:RemoveHostRoll",
    # database and batch
    "init frontend": "init:InitFrontend",
    "batch": "batch:Batch",
    "list help": "help:ListHelp",
}


@hookimpl
def register_commands() -> list[CommandRef]:
    return [CommandRef(name, _C + target) for name, target in COMMANDS.items()]


@hookimpl
def register_appliances() -> list[ApplianceSpec]:
    # lpxelinux.0: pxelinux that also fetches over HTTP, where kernels and initrds come from.
    installable = {"kickstartable": "yes", "dhcp_filename": "lpxelinux.0"}
    return [
        ApplianceSpec(
            "frontend", "Frontend", node="server", attrs={**installable, "managed": "false"}
        ),
        ApplianceSpec("network", "Ethernet Switches", public=True, attrs={"kickstartable": "no"}),
        ApplianceSpec("power", "Power Units", public=True, attrs={"kickstartable": "no"}),
        ApplianceSpec("manager", "Remote Management", public=True, attrs={"kickstartable": "no"}),
        ApplianceSpec(
            "nas",
            "NAS Appliance",
            node="nas",
            public=True,
            attrs={**installable, "managed": "true"},
        ),
        ApplianceSpec(
            "compute",
            "Compute",
            node="compute",
            public=True,
            attrs={**installable, "managed": "true", "exec_host": "true"},
        ),
    ]


_INSTALL_ARGS = (
    "ks ramdisk_size=150000 lang= devfs=nomount pxe kssendmac selinux=0 noipv6 ksdevice=bootif"
)


@hookimpl
def register_bootactions() -> list[BootActionSpec]:
    return [
        BootActionSpec("install", "vmlinuz", "initrd.img", _INSTALL_ARGS),
        BootActionSpec(
            "install headless", "vmlinuz", "initrd.img", _INSTALL_ARGS + " headless vnc"
        ),
        BootActionSpec("rescue", "vmlinuz", "initrd.img", _INSTALL_ARGS + " rescue"),
        BootActionSpec("os", "localboot 0"),
        BootActionSpec("memtest", "kernel memtest"),
        BootActionSpec("pxeflash", "kernel memdisk bigraw", "pxeflash.img", "keeppxe"),
    ]


@hookimpl
def register_attributes() -> list[AttrSpec]:
    return list(ATTRIBUTES)


@hookimpl
def node_directories() -> list[Path]:
    # nodes/ and graphs/default/ of the base roll live beside this file.
    return [Path(__file__).parent]


@hookimpl
def host_removing(session: object, host: Host) -> None:
    # Everything hangs off the frontend: its interfaces are the cluster's gateway and servers.
    from provisioner.errors import Vetoed

    if host.membership.appliance.name == "frontend":
        raise Vetoed(f"'{host.name}' is the frontend and cannot be removed")


@hookimpl(trylast=True)
def render_kickstart(
    config: Config, reader: Reader, host: HostRow, attrs: object, hooks: Hooks
) -> str:
    # The node graph: one renderer per process keeps its parsed files and templates warm.
    from provisioner.kickstart.renderer import shared_renderer

    return shared_renderer(config, hooks).render(reader, host)


@hookimpl(trylast=True)
def render_boot_config(
    config: Config, reader: Reader, host: HostRow, flavor: str, attrs: object
) -> str:
    # Rocks' pxelinux format (and GRUB, iPXE) from the host's boot state and actions.
    from provisioner.pxe.bootconfig import render_for_host

    return render_for_host(config, reader, host, flavor)
