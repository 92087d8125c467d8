"""Roll fixtures: tiny RPMs (built once per session), two small rolls made from them, a
compute host, and libvirt's test driver for the lights-out VMs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rollkit import RpmFactory, make_roll


@pytest.fixture(scope="session")
def rpms(tmp_path_factory: pytest.TempPathFactory) -> RpmFactory:
    return RpmFactory(tmp_path_factory.mktemp("rpmbuild"))


@dataclass
class TwoRolls:
    hpc: Path
    bio: Path
    packages: dict[str, Path]


@pytest.fixture
def two_rolls(rpms: RpmFactory, tmp_path: Path) -> TwoRolls:
    """hpc 1.0 (an edge compute -> hpc) and bio 2.0 (an edge client -> bio), x86_64."""
    pkgs = {n: rpms(n) for n in ("hpc-mpi", "hpc-tools", "bio-blast")}
    hpc = make_roll(
        tmp_path / "media",
        "hpc",
        "1.0",
        packages=(pkgs["hpc-mpi"], pkgs["hpc-tools"]),
        nodes={
            "hpc.xml": "<kickstart>\n<package>hpc-mpi</package>\n<package>hpc-tools</package>\n"
            "<post>echo hpc-post-marker &hostname; &gt; /etc/hpc-roll</post>\n</kickstart>\n"
        },
        graphs={"hpc.xml": '<graph>\n<edge from="compute" to="hpc"/>\n</graph>\n'},
    )
    bio = make_roll(
        tmp_path / "media",
        "bio",
        "2.0",
        packages=(pkgs["bio-blast"],),
        nodes={
            "bio.xml": "<kickstart>\n<package>bio-blast</package>\n"
            "<post>echo bio-post-marker</post>\n</kickstart>\n"
        },
        graphs={"bio.xml": '<graph>\n<edge from="client" to="bio"/>\n</graph>\n'},
    )
    return TwoRolls(hpc, bio, pkgs)


@pytest.fixture
def compute(rocks: Any) -> Any:
    rocks.ok("add host compute-0-0")
    rocks.ok("add host interface compute-0-0 eth0 52:54:00:00:00:01 ip=10.1.255.254 subnet=private")
    return rocks


# -- libvirt's test driver --------------------------------------------------------------------------


@pytest.fixture
def test_driver() -> Iterator[Any]:
    """libvirt's test:///default, open for the test (it keeps domains while a connection is
    open); every domain the test defined is undefined at the end."""
    libvirt = pytest.importorskip("libvirt", reason="the lights-out tests need libvirt-python")
    libvirt.registerErrorHandler(lambda _c, _e: None, None)
    conn = libvirt.open("test:///default")
    before = {d.name() for d in conn.listAllDomains()}
    yield conn
    for dom in conn.listAllDomains():
        if dom.name() not in before:
            if dom.isActive():
                dom.destroy()
            dom.undefine()
    conn.close()
