"""What both DHCP renderers share besides the database's answers (provisioner/services/dhcp.py)."""

from __future__ import annotations

import ipaddress


def discovery_pool(net: ipaddress.IPv4Network, frontend: str | None) -> tuple[str, str]:
    """Addresses handed to unknown machines before they are registered: a band at the bottom
    of the private network, away from registered hosts, which count down from the top."""
    size = max(2, min(200, net.num_addresses // 4))
    start = int(net.network_address) + 2
    if frontend:
        start = max(start, int(ipaddress.IPv4Address(frontend)) + 1)
    end = min(start + size - 1, int(net.broadcast_address) - 2)
    return str(ipaddress.IPv4Address(start)), str(ipaddress.IPv4Address(end))
