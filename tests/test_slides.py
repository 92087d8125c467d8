"""Every `rocks ...` line of the workshop slides (shared/seeds/), run as a user types it, in the
slides' order, against a cluster set up like the slides' (VM containers on libvirt's test
driver). Each must succeed, and a line the slides show with a table must print a table with the
slides' header.

The lines are read from the slides themselves, so a new slide line is tested too. Usage
templates (`{host} [mem=string]`) are not commands and are left out.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

# A copy of shared/seeds/ (the slides as extracted text) lives beside the tests.
SEEDS = Path(__file__).resolve().parent / "seeds"


def seed_lines(path: Path) -> list[tuple[str, list[str] | None]]:
    """(command, header words of the table the slide shows after it, or None)."""
    text = path.read_text().replace("\u201c", '"').replace("\u201d", '"')
    lines = text.splitlines()
    out: list[tuple[str, list[str] | None]] = []
    i = 0
    while i < len(lines):
        m = re.match(r"^\s*#\s*(rocks\s.*)$", lines[i])
        if m:
            cmd = m.group(1).rstrip()
            while cmd.endswith("\\") and i + 1 < len(lines):
                i += 1
                cmd = cmd[:-1].rstrip() + " " + lines[i].strip()
            header = None
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            if j < len(lines):
                words = lines[j].split()
                if (
                    words
                    and all(re.fullmatch(r"[A-Z][A-Z-]*", w) for w in words)
                    and len(words) > 1
                ):
                    header = words
            if "{" not in cmd:
                out.append((cmd, header))
        i += 1
    return out


SEED_FILES = sorted(SEEDS.glob("*.txt")) if SEEDS.is_dir() else []


def test_the_slides_are_here():
    assert len(SEED_FILES) == 3, f"the workshop slides are missing from {SEEDS}"
    assert sum(len(seed_lines(f)) for f in SEED_FILES) >= 60


def setup_cluster(rocks, tmp_path: Path) -> None:
    """Hosts the slides talk about: VM containers (libvirt test driver), compute-0-0, tile-0-0."""
    rocks.ok("set attr vm_uri value=test:///default")
    rocks.ok(f"set attr vm_disk_dir {tmp_path / 'disks'}")
    (tmp_path / "disks").mkdir()
    for n, name in enumerate(("vm-container-0-0", "vm-container-0-1", "vm-container-1-0")):
        rocks.ok(f"add host {name}")
        rocks.ok(
            f"add host interface {name} eth0 52:54:00:00:0c:{n:02x} ip=10.1.250.{n + 1} subnet=private"
        )
    rocks.ok("add host compute-0-0")
    rocks.ok("add host interface compute-0-0 eth0 52:54:00:00:00:01 ip=10.1.255.254 subnet=private")
    rocks.ok("set host boot compute-0-0 action=os")
    rocks.ok("add appliance tile membership=Tile node=compute")
    rocks.ok("add host tile-0-0")
    rocks.ok('set bootflags flags="dom0_mem=1024M"')


@pytest.mark.parametrize("seed", SEED_FILES, ids=lambda p: p.name.split("_")[0])
def test_every_rocks_line_of_the_slides_runs(rocks, tmp_path, seed):
    setup_cluster(rocks, tmp_path)
    ran = 0
    for cmd, header in seed_lines(seed):
        words = shlex.split(cmd)[1:]
        result = rocks(*words)
        assert result.status == 0, f"{cmd}\n{result.err}"
        assert "Traceback" not in result.err
        if header is not None:
            got = result.out.splitlines()[0].split() if result.out else []
            wanted = header
            if "status=" not in cmd:
                # Rocks 5.0 always asked the hypervisor; 5.2 and we do with status=y only.
                wanted = [w for w in header if w != "STATUS"]
            assert got == wanted, f"{cmd}: header {got}, the slide shows {header}"
        ran += 1
    assert ran >= 10
