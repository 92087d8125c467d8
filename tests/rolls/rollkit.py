"""Helpers of the roll tests: tiny RPMs built with rpmbuild, roll directories, a reader of
yum/dnf repository metadata, and the web app served on 127.0.0.1."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import textwrap
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_NS = {"repo": "http://linux.duke.edu/metadata/repo"}
COMMON_NS = {"c": "http://linux.duke.edu/metadata/common"}


def need(tool: str, package: str) -> str:
    """The tool's path; a skip naming the Debian package (a failure in CI)."""
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} must be installed in CI (Debian package {package})")
        pytest.skip(f"these tests need {tool} (Debian package {package})")
    return path


class RpmFactory:
    """Builds noarch RPMs holding one small file each; a (name, version) is built once."""

    def __init__(self, top: Path) -> None:
        self.top = top
        self.rpmbuild = need("rpmbuild", "rpm")
        self.built: dict[tuple[str, str], Path] = {}

    def __call__(self, name: str, version: str = "1.0", size: int = 0) -> Path:
        key = (name, version)
        if key not in self.built:
            spec = self.top / f"{name}-{version}.spec"
            spec.write_text(
                textwrap.dedent(
                    f"""\
                    Name: {name}
                    Version: {version}
                    Release: 1
                    Summary: {name} for the roll tests
                    License: MIT
                    BuildArch: noarch
                    %description
                    A tiny package of the roll tests.
                    %install
                    mkdir -p %{{buildroot}}/opt/{name}
                    echo {name} > %{{buildroot}}/opt/{name}/README
                    head -c {size} /dev/zero > %{{buildroot}}/opt/{name}/data
                    %files
                    /opt/{name}
                    """
                )
            )
            subprocess.run(
                [
                    self.rpmbuild,
                    "-bb",
                    "--quiet",
                    "--define",
                    f"_topdir {self.top}",
                    "--define",
                    "_build_id_links none",
                    "--define",
                    "_binary_payload w0.gzdio",
                    str(spec),
                ],
                check=True,
                capture_output=True,
                timeout=120,
            )
            self.built[key] = self.top / "RPMS" / "noarch" / f"{name}-{version}-1.noarch.rpm"
        return self.built[key]


def make_roll(
    where: Path,
    name: str,
    version: str,
    arch: str = "x86_64",
    packages: tuple[Path, ...] = (),
    nodes: dict[str, str] | None = None,
    graphs: dict[str, str] | None = None,
    meta: str | None = None,
) -> Path:
    """A roll directory in our format (docs/rolls.md)."""
    root = where / f"{name}-{version}-{arch}"
    root.mkdir(parents=True)
    (root / f"roll-{name}.xml").write_text(
        meta
        or f'<?xml version="1.0"?>\n<roll name="{name}">\n'
        f'  <info version="{version}" release="0" arch="{arch}" os="linux"/>\n'
        f"  <description>the {name} roll of the tests</description>\n</roll>\n"
    )
    if packages:
        (root / "RPMS").mkdir()
        for p in packages:
            shutil.copy(p, root / "RPMS" / p.name)
    for fname, text in (nodes or {}).items():
        (root / "nodes").mkdir(exist_ok=True)
        (root / "nodes" / fname).write_text(text)
    for fname, text in (graphs or {}).items():
        (root / "graphs" / "default").mkdir(parents=True, exist_ok=True)
        (root / "graphs" / "default" / fname).write_text(text)
    return root


@dataclass(frozen=True)
class RepoPackage:
    name: str
    location: str
    checksum_type: str
    checksum: str
    size: int


def read_repo(arch_dir: Path) -> dict[str, RepoPackage]:
    """Parse repodata/repomd.xml and the primary metadata it names (checking the primary
    file's own checksum), as dnf does: {package name: package}."""
    repomd = ET.parse(arch_dir / "repodata" / "repomd.xml").getroot()
    primary = None
    for data in repomd.findall("repo:data", REPO_NS):
        if data.get("type") == "primary":
            primary = data
    assert primary is not None, "repomd.xml has no primary metadata"
    href = primary.find("repo:location", REPO_NS).get("href")
    csum = primary.find("repo:checksum", REPO_NS)
    blob = (arch_dir / href).read_bytes()
    assert hashlib.new(csum.get("type"), blob).hexdigest() == csum.text
    root = ET.fromstring(gzip.decompress(blob))
    out = {}
    for pkg in root.findall("c:package", COMMON_NS):
        c = pkg.find("c:checksum", COMMON_NS)
        out[pkg.findtext("c:name", namespaces=COMMON_NS)] = RepoPackage(
            name=pkg.findtext("c:name", namespaces=COMMON_NS),
            location=pkg.find("c:location", COMMON_NS).get("href"),
            checksum_type=c.get("type"),
            checksum=c.text,
            size=int(pkg.find("c:size", COMMON_NS).get("package")),
        )
    assert int(root.get("packages")) == len(out)
    return out


class Serve:
    """This server as nodes and other frontends reach it: provisionerd (nginx in front) on
    127.0.0.1, an ephemeral port, for a `with` block."""

    def __init__(self, config: Any) -> None:
        self.config = config

    def __enter__(self) -> str:
        from provisioner.testing.daemon import Provisionerd

        env = {"PROVISIONER_DATABASE_URL": self.config.database_url}
        if not self.config.database_url:
            env = {}
        self.server = Provisionerd(self.config.home, env=env).start()
        return self.server.url

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
