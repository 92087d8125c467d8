"""`rocks report host dhcpd`: an ISC dhcpd.conf as Rocks wrote it (reference §4.2)."""

from __future__ import annotations

from provisioner.db.reader import Reader
from provisioner.services.attrs import appliance_values as appliance_attr
from provisioner.services.attrs import global_attrs as attrs
from provisioner.services.dhcp import leases, private_network


def render_dhcpd(reader: Reader) -> str:
    g = attrs(reader)
    net = private_network(reader)
    kickstartable = appliance_attr(reader, "kickstartable")
    filenames = appliance_attr(reader, "dhcp_filename")
    nextservers = appliance_attr(reader, "dhcp_nextserver")
    frontend_ip = g.get("Kickstart_PrivateAddress", "")
    lines = [
        "ddns-update-style none;",
        f"subnet {net.subnet} netmask {net.netmask} {{",
        f"\tdefault-lease-time {g.get('Kickstart_DefaultLeaseTime', '1200')};",
        f"\tmax-lease-time {g.get('Kickstart_MaxLeaseTime', '1200')};",
        f"\toption routers {g.get('Kickstart_PrivateGateway', frontend_ip)};",
        f"\toption subnet-mask {net.netmask};",
        f'\toption domain-name "{net.zone}";',
        f"\toption domain-name-servers {g.get('Kickstart_PrivateDNSServers', frontend_ip)};",
        f"\toption broadcast-address {net.net.broadcast_address};",
        f'\tgroup "{net.zone}" {{',
    ]
    seen: dict[str, int] = {}
    by_host_ip: dict[str, str] = {}
    for lease in leases(reader):
        if lease.subnet == "private" and lease.ip:
            by_host_ip.setdefault(lease.host, lease.ip)
    for lease in leases(reader):
        ip = lease.ip if lease.subnet == "private" else None
        # Extra MACs of a host without an address of their own get the host's fixed address.
        ip = ip or (by_host_ip.get(lease.host) if lease.subnet in (None, "private") else None)
        if not ip:
            continue
        fqdn = f"{lease.host}.{net.zone}"
        n = seen.get(fqdn, 0)
        seen[fqdn] = n + 1
        lines.append(f"\t\thost {fqdn}{'' if n == 0 else f'-{n}'} {{")
        lines.append(f"\t\t\thardware ethernet {lease.mac};")
        lines.append(f'\t\t\toption host-name "{fqdn}";')
        lines.append(f"\t\t\tfixed-address {ip};")
        if kickstartable.get(lease.appliance_id, "").lower() in ("yes", "true", "on", "1"):
            lines.append(f'\t\t\tfilename "{filenames.get(lease.appliance_id, "lpxelinux.0")}";')
            lines.append(f"\t\t\tnext-server {nextservers.get(lease.appliance_id, frontend_ip)};")
        lines.append("\t\t}")
    lines += ["\t}", "}"]
    return "\n".join(lines) + "\n"
