"""A small cluster for kickstart tests: a compute host, a NAS and a VM container."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def cluster(rocks):
    rocks.ok("add host compute-0-0 cpus=2")
    rocks.ok("add host interface compute-0-0 eth0 52:54:00:00:00:01 ip=10.1.255.254 subnet=private")
    rocks.ok("add host nas-0-0")
    rocks.ok("add host interface nas-0-0 eth0 52:54:00:00:01:01 ip=10.1.255.250 subnet=private")
    if "vm-container" not in rocks.ok("list appliance output-col=appliance output-header=no"):
        # The Xen roll adds this appliance; without it the base roll's node files still work.
        rocks.ok('add appliance vm-container membership="VM Container" node=vm-container')
    rocks.ok("add host vm-container-0-0 membership=vm-container")
    return rocks


@pytest.fixture
def site(config) -> Path:
    """The site-profiles directory of the test cluster."""
    path = Path(config.site_profiles_dir)
    (path / "nodes").mkdir(parents=True, exist_ok=True)
    return path
