"""The attributes the base roll documents (reference §2.4), with their defaults.

Network-derived values (private/public network, broadcast, CIDR, DNS, NTP and syslog hosts)
are computed by `rocks init frontend` from the addresses it is given; they are documented here
with no default. docs/attributes.md is checked against this list by a test.
"""

from __future__ import annotations

from provisioner.specs import AttrSpec

ATTRIBUTES: tuple[AttrSpec, ...] = (
    AttrSpec("Kickstart_Lang", "en_US", "Installer language (kickstart `lang`)."),
    AttrSpec("Kickstart_Langsupport", "en_US", "Languages installed besides the default."),
    AttrSpec("Kickstart_Keyboard", "us", "Keyboard layout (kickstart `keyboard`)."),
    AttrSpec("Kickstart_Timezone", "America/Los_Angeles", "Time zone of installed hosts."),
    AttrSpec(
        "Kickstart_SyntaxVersion",
        "RHEL9",
        "Kickstart syntax the kickstarts are written for and validated against (pykickstart).",
    ),
    AttrSpec("Kickstart_Multicast", "226.117.172.185", "Multicast group of cluster services."),
    AttrSpec(
        "Kickstart_DistroDir", "/export/rocks", "Rocks' install tree root, kept for node files."
    ),
    AttrSpec("Kickstart_PrivateKickstartBasedir", "install", "URL path of the install tree."),
    AttrSpec(
        "Kickstart_PrivateKickstartCGI",
        "sbin/kickstart.cgi",
        "URL path of the kickstart, under the install tree.",
    ),
    AttrSpec("Kickstart_PrivateDNSDomain", "local", "DNS zone of the private network."),
    AttrSpec(
        "Kickstart_PrivateHostname",
        None,
        "Frontend name on the private network (default: this machine's short name).",
    ),
    AttrSpec(
        "Kickstart_PrivateAddress", None, "Frontend IP on the private network (default 10.1.1.1)."
    ),
    AttrSpec("Kickstart_PrivateNetwork", None, "Private network address (default 10.1.0.0)."),
    AttrSpec("Kickstart_PrivateNetmask", None, "Private netmask (default 255.255.0.0)."),
    AttrSpec("Kickstart_PrivateNetmaskCIDR", None, "Private prefix length, derived."),
    AttrSpec("Kickstart_PrivateBroadcast", None, "Private broadcast address, derived."),
    AttrSpec(
        "Kickstart_PrivateGateway", None, "Gateway of installed hosts (default: the frontend)."
    ),
    AttrSpec(
        "Kickstart_PrivateDNSServers",
        None,
        "DNS servers of installed hosts (default: the frontend).",
    ),
    AttrSpec(
        "Kickstart_PrivateKickstartHost",
        None,
        "Host that serves kickstarts (default: the frontend).",
    ),
    AttrSpec(
        "Kickstart_PrivateNTPHost", None, "NTP server of installed hosts (default: the frontend)."
    ),
    AttrSpec(
        "Kickstart_PrivateSyslogHost",
        None,
        "Syslog server of installed hosts (default: the frontend).",
    ),
    AttrSpec("Kickstart_PrivateRootPassword", None, "Crypted root password of installed hosts."),
    AttrSpec("Kickstart_PublicHostname", None, "Frontend's public fully qualified name."),
    AttrSpec(
        "Kickstart_PublicAddress",
        None,
        "Frontend's public IP (default: the address of the default route's interface).",
    ),
    AttrSpec("Kickstart_PublicNetwork", None, "Public network address, derived."),
    AttrSpec("Kickstart_PublicInterface", None, "Frontend's public interface (default eth1)."),
    AttrSpec("Kickstart_PrivateInterface", None, "Frontend's private interface (default eth0)."),
    AttrSpec("Kickstart_PublicNetmask", None, "Public netmask."),
    AttrSpec("Kickstart_PublicNetmaskCIDR", None, "Public prefix length, derived."),
    AttrSpec("Kickstart_PublicBroadcast", None, "Public broadcast address, derived."),
    AttrSpec("Kickstart_PublicGateway", None, "Public gateway (default: the default route)."),
    AttrSpec("Kickstart_PublicDNSDomain", None, "Public DNS domain."),
    AttrSpec("Kickstart_PublicDNSServers", None, "Public DNS servers, used as upstreams."),
    AttrSpec(
        "Kickstart_PublicKickstartHost",
        None,
        "Host that serves kickstarts to WAN and virtual frontends.",
    ),
    AttrSpec("Kickstart_PublicNTPHost", "pool.ntp.org", "NTP server of the frontend."),
    AttrSpec("Info_CertificateCountry", "US", "Country of the cluster's certificates."),
    AttrSpec("Info_CertificateState", "California", "State of the cluster's certificates."),
    AttrSpec("Info_CertificateLocality", "San Diego", "Locality of the cluster's certificates."),
    AttrSpec("Info_CertificateOrganization", "", "Organization of the cluster's certificates."),
    AttrSpec("Info_ClusterName", "", "Name of the cluster."),
    AttrSpec("Info_ClusterContact", "", "Contact of the cluster."),
    AttrSpec("Info_ClusterURL", "", "Web page of the cluster."),
    AttrSpec("Info_ClusterLatlong", "", "Latitude and longitude of the cluster."),
    AttrSpec("Server_Partitioning", "force-default-root-disk-only", "Default partitioning scheme."),
    AttrSpec("ssh_use_dns", "true", "Whether sshd on installed hosts resolves client names."),
    AttrSpec("x11", "false", "Install a graphical desktop."),
    AttrSpec("rocks_version", None, "Version of this server, set by `rocks init frontend`."),
    AttrSpec("kickstartable", None, "Per appliance: hosts are installed by this server.", "A"),
    AttrSpec("dhcp_filename", None, "Per appliance: PXE boot file handed out by DHCP.", "A"),
    AttrSpec("managed", None, "Per appliance: hosts are managed cluster nodes.", "A"),
    AttrSpec("exec_host", None, "Per appliance: hosts run batch jobs.", "A"),
)
