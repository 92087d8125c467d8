"""DHCP: we run no DHCP server of our own. This package renders configuration for dnsmasq
(the default: live host files, PXE boot file by client architecture, a lease script that
reports unknown MACs for discovery) and ISC dhcpd (`rocks report host dhcpd`, as Rocks did)."""
