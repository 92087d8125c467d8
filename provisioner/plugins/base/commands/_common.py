"""Declarations shared by several command modules."""

from __future__ import annotations

from provisioner.cli.command import Arg

HOSTS = Arg(
    "host",
    "Hosts by name, IP, MAC, appliance name (all its hosts), rackN or glob.",
    repeat=True,
)
HOSTS_OPTIONAL = Arg(
    "host",
    "Hosts by name, IP, MAC, appliance name (all its hosts), rackN or glob; none means all.",
    optional=True,
    repeat=True,
)
ONE_HOST = Arg("host", "One host, by name, IP or MAC.")
