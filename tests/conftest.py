"""Shared fixtures come from the plugin roll authors use too."""

import sys
from collections.abc import Iterator

import pytest

pytest_plugins = ["provisioner.testing.pytest_plugin"]


@pytest.fixture(autouse=True)
def _forget_cached_hypervisors() -> Iterator[None]:
    """The Xen driver caches one libvirt connection per URI for the process, and libvirt's
    `test:///default` keeps its domains while any connection is open: without this, VMs one
    test defined (the slides' compute-0-0-0) are still there for the next test in the same
    worker."""
    yield
    driver = sys.modules.get("provisioner.plugins.xen.libvirt_driver")
    if driver is not None:
        driver.close_all()
