"""The repository's site-profiles/: the skeleton is inactive as shipped, and every worked
example parses and, once copied where the catalog looks, changes the kickstart `rocks list host
profile` prints as its header (and site-profiles/README.md) says."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from test_partition_helper import SEED_ONE_DISK, SEED_TWO_DISKS, run_pre_sections

from provisioner.graph.model import load_node, split_name
from provisioner.kickstart.validate import validate

SITE_PROFILES = Path(__file__).resolve().parents[2] / "site-profiles"
EXAMPLES = SITE_PROFILES / "examples"

# example -> (the name it is activated as in nodes/, the disks of the test machine, the lines
# its %pre writes to /tmp/partition-info); None for examples that do not partition.
PARTITIONING: dict[str, tuple[list[str], list[str]] | None] = {
    "extend-compute.xml": None,
    "replace-partition-shell.xml": (
        ["hda"],
        [
            "clearpart --all --initlabel --drives=hda",
            "part / --size 8000 --ondisk hda",
            "part swap --size 1000 --ondisk hda",
            "part /mydata --size 1 --grow --ondisk hda",
        ],
    ),
    "replace-partition-raid-shell.xml": (
        ["hda", "hdb"],
        [
            "clearpart --all --initlabel --drives=hda,hdb",
            "part / --size 8000 --ondisk hda",
            "part swap --size 1000 --ondisk hda",
            "",
            "part raid.00 --size=10000 --ondisk hda",
            "part raid.01 --size=10000 --ondisk hdb",
            "",
            "raid /mydata --level=1 --device=md0 raid.00 raid.01",
        ],
    ),
    "replace-partition-python-one-disk.xml": (["sda"], SEED_ONE_DISK),
    "replace-partition-python-two-disks.xml": (["sda", "sdb"], SEED_TWO_DISKS),
}


def active_name(example: str) -> str:
    """The name the example's header tells the site to copy it to."""
    text = (EXAMPLES / example).read_text()
    m = re.search(
        rf"cp site-profiles/examples/{re.escape(example)} site-profiles/nodes/(\S+)", text
    )
    assert m, f"{example}: its header does not say where to copy it"
    return m.group(1)


def test_every_example_is_tested_and_the_shipped_skeleton_is_inactive():
    assert sorted(p.name for p in EXAMPLES.iterdir()) == sorted(PARTITIONING)
    # Only nodes/ and graphs/ are read; as shipped they hold READMEs and no node or graph file.
    assert (SITE_PROFILES / "nodes").is_dir() and (SITE_PROFILES / "graphs" / "default").is_dir()
    for sub in ("nodes", "graphs"):
        assert not list((SITE_PROFILES / sub).rglob("*.xml")), sub


@pytest.mark.parametrize("example", sorted(PARTITIONING))
def test_example_parses_as_the_node_it_is_activated_as(example, tmp_path):
    name = active_name(example)
    node, kind = split_name(name)
    assert kind in ("extend", "replace"), "an example must not shadow a roll's node by accident"
    shutil.copy(EXAMPLES / example, tmp_path / name)
    parsed = load_node(tmp_path / name, "site")
    assert (parsed.node, parsed.kind) == (node, kind)
    assert parsed.root.children, f"{example}: nothing in <kickstart>"


def _sections(text: str, kind: str) -> list[str]:
    return re.findall(rf"^%{kind} .*?\n(.*?)^%end$", text, re.M | re.S)


@pytest.mark.parametrize("example", sorted(PARTITIONING))
def test_activated_example_changes_the_kickstart_as_it_says(cluster, site, example, tmp_path):
    name = active_name(example)
    before = {h: cluster.ok(f"list host profile {h}") for h in ("compute-0-0", "nas-0-0")}
    shutil.copy(EXAMPLES / example, site / "nodes" / name)
    after = {h: cluster.ok(f"list host profile {h}") for h in ("compute-0-0", "nas-0-0")}
    text = after["compute-0-0"]
    assert validate(text) == []
    assert f"site:nodes/{name}" in text
    partitioning = PARTITIONING[example]
    if partitioning is None:
        packages = text.split("%packages --ignoremissing\n")[1].split("%end")[0].split()
        assert "htop" in packages
        motd = "Site profile: extend-compute.xml installed compute-0-0.\n"
        assert any(motd in body for body in _sections(text, "post"))
        # The compute node's own packages and motd stay; the NAS does not traverse compute.
        assert "gcc" in packages and "Compute node compute-0-0: rack 0, rank 0." in text
        assert after["nas-0-0"] == before["nas-0-0"]
    else:
        # Every appliance traverses the partition node; the default scheme is gone.
        assert f"site:nodes/{name}" in after["nas-0-0"]
        assert 'echo "rocks force-default-root-disk-only"' not in text
        disks, lines = partitioning
        assert run_pre_sections(text, tmp_path, disks) == lines
        assert validate("\n".join(lines) + "\n") == []


def test_make_run_demo_copies_site_profiles_with_extend_compute_active(cluster, config):
    from provisioner import demo

    site = demo.install_site_profiles(config)
    assert site == Path(config.site_profiles_dir)
    assert (site / "README.md").read_text() == (SITE_PROFILES / "README.md").read_text()
    for name in demo.DEMO_ACTIVE:
        assert (site / "nodes" / active_name(name)).read_bytes() == (EXAMPLES / name).read_bytes()
    text = cluster.ok("list host profile compute-0-0")
    assert "site:nodes/extend-compute.xml" in text and "htop" in text
    # A site's own directory is never overwritten; the repository's stays inactive.
    (site / "nodes" / "extend-compute.xml").write_text("<kickstart/>\n")
    assert demo.install_site_profiles(config) is None
    assert (site / "nodes" / "extend-compute.xml").read_text() == "<kickstart/>\n"
    assert not list((SITE_PROFILES / "nodes").glob("*.xml"))
