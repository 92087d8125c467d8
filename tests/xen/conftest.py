"""Fixtures for the Xen roll: libvirt's test driver (in-process, no daemon) as the hypervisor
of every container, disk images and saved states under the test's tmp directory.

`test:///default` keeps its domains while any connection is open and the driver caches one per
URI for the whole process, so `lv` holds a connection for the test and undefines every domain
the test made when it ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

libvirt = pytest.importorskip("libvirt", reason="the Xen roll tests need libvirt-python")

URI = "test:///default"
STATE_NAMES = {
    libvirt.VIR_DOMAIN_RUNNING: "active",
    libvirt.VIR_DOMAIN_BLOCKED: "active",
    libvirt.VIR_DOMAIN_PAUSED: "paused",
    libvirt.VIR_DOMAIN_SHUTDOWN: "shutdown",
    libvirt.VIR_DOMAIN_SHUTOFF: "shutoff",
    libvirt.VIR_DOMAIN_CRASHED: "crashed",
}


class Libvirt:
    """A connection to a test hypervisor and questions tests ask it."""

    def __init__(self, uri: str) -> None:
        libvirt.registerErrorHandler(lambda _c, _e: None, None)
        self.uri = uri
        self.conn = libvirt.open(uri)
        self.before = {d.name() for d in self.conn.listAllDomains()}

    def domain(self, name: str) -> Any:
        try:
            return self.conn.lookupByName(name)
        except libvirt.libvirtError:
            return None

    def state(self, name: str) -> str | None:
        """The domain's state as Rocks names it; None when it is not defined."""
        dom = self.domain(name)
        return None if dom is None else STATE_NAMES.get(dom.state()[0], "nostate")

    def names(self) -> set[str]:
        return {d.name() for d in self.conn.listAllDomains()} - self.before

    def cleanup(self) -> None:
        for dom in self.conn.listAllDomains():
            if dom.name() in self.before:
                continue
            if dom.isActive():
                dom.destroy()
            dom.undefine()
        self.conn.close()


@pytest.fixture
def lv() -> Iterator[Libvirt]:
    conn = Libvirt(URI)
    yield conn
    conn.cleanup()


@dataclass
class VmCluster:
    rocks: Any
    lv: Libvirt
    disks: Path

    def ok(self, *words: str, stdin: str | None = None) -> str:
        return self.rocks.ok(*words, stdin=stdin)

    def __call__(self, *words: str) -> Any:
        return self.rocks(*words)

    def table(self, *words: str) -> list[list[str]]:
        """A Rocks table as rows of cells (no cell has spaces in these tests)."""
        return [line.split() for line in self.ok(*words).splitlines()]


def add_container(rocks: Any, name: str, mac: str, ip: str) -> None:
    rocks.ok(f"add host {name}")
    rocks.ok(f"add host interface {name} eth0 {mac} ip={ip} subnet=private")


@pytest.fixture
def vmc(rocks: Any, lv: Libvirt, tmp_path: Path) -> VmCluster:
    """The test cluster (frontend at 137.110.119.114) with containers vm-container-0-0,
    vm-container-0-1 and vm-container-1-0 on libvirt's test driver; images under tmp."""
    disks = tmp_path / "disks"
    rocks.ok(f"set attr vm_uri {URI}")
    rocks.ok(f"set attr vm_disk_dir {disks}/frontend")
    for n, name in enumerate(("vm-container-0-0", "vm-container-0-1", "vm-container-1-0")):
        add_container(rocks, name, f"52:54:00:aa:00:0{n}", f"10.1.255.{250 - n}")
        # Each container its own directory, as each has its own disk in a real cluster.
        rocks.ok(f"set host attr {name} vm_disk_dir {disks}/{name}")
    return VmCluster(rocks, lv, disks)
