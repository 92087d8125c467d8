"""Rolls and the distribution (issue 6): two rolls built here from tiny RPMs join the graph
and the distribution; disabling or removing one takes it out of both; builds are atomic."""

from __future__ import annotations

import hashlib
import json
import os
import re

import pytest
from rollkit import Serve, make_roll, read_repo


def roll_rows(rocks):
    return {r["name"]: r for r in json.loads(rocks.ok("list roll output-format=json"))}


def test_two_rolls_reach_the_kickstart_and_the_distribution(compute, config, two_rolls):
    rocks = compute
    out = rocks.ok("add roll", str(two_rolls.hpc), str(two_rolls.bio))
    install = config.install_dir
    assert out.splitlines() == [
        "added roll hpc 1.0 x86_64 (2 packages, 1 node file, 1 graph file) in "
        f"{install}/rolls/hpc/1.0/x86_64",
        "added roll bio 2.0 x86_64 (1 package, 1 node file, 1 graph file) in "
        f"{install}/rolls/bio/2.0/x86_64",
    ]
    rows = roll_rows(rocks)
    assert {k: (v["version"], v["arch"], v["enabled"]) for k, v in rows.items()}.items() >= {
        "hpc": ("1.0", "x86_64", True),
        "bio": ("2.0", "x86_64", True),
        "base": (rows["base"]["version"], None, True),  # the plugin rolls are listed too
    }.items()
    assert rows["hpc"]["source"] == str(two_rolls.hpc)
    table = rocks.ok("list roll").splitlines()
    assert table[0].split() == ["NAME", "VERSION", "ARCH", "ENABLED", "SOURCE"]
    assert any(line.split()[:4] == ["hpc:", "1.0", "x86_64", "yes"] for line in table)

    # the copy holds every file with its digest in SHA256SUMS
    copy = install / "rolls" / "hpc" / "1.0" / "x86_64"
    sums = (copy / "SHA256SUMS").read_text().splitlines()
    assert sorted(line.split("  ")[1] for line in sums) == [
        "RPMS/hpc-mpi-1.0-1.noarch.rpm",
        "RPMS/hpc-tools-1.0-1.noarch.rpm",
        "graphs/default/hpc.xml",
        "nodes/hpc.xml",
        "roll-hpc.xml",
    ]

    # the graph: both edges are followed for a compute node, at once
    ks = rocks.ok("list host profile compute-0-0 validate=yes")
    assert re.search(r"^# hpc +hpc:nodes/hpc\.xml$", ks, re.M)
    assert re.search(r"^# bio +bio:nodes/bio\.xml$", ks, re.M)
    packages = ks.split("%packages --ignoremissing\n", 1)[1].split("%end", 1)[0].split()
    assert {"hpc-mpi", "hpc-tools", "bio-blast"} <= set(packages)
    assert "echo hpc-post-marker compute-0-0 > /etc/hpc-roll" in ks
    assert "echo bio-post-marker" in ks
    # ...and the frontend, which is no client, gets neither
    fe = rocks.ok("list host profile frontend")
    assert "hpc-post-marker" not in fe and "bio-post-marker" not in fe

    out = rocks.ok("create distro")
    assert out.splitlines() == [
        "rocks-dist/x86_64: 3 packages from bio 2.0, hpc 1.0",
        "rocks-dist/pip: provisioner-0.1.0-py3-none-any.whl",
    ]
    # the kickstart's url line is where the repository is
    url = re.search(r"^url --url (\S+)$", ks, re.M).group(1)
    assert url == "http://10.1.1.1/install/rocks-dist/x86_64"
    tree = install / url.split("/install/", 1)[1]
    repo = read_repo(tree)
    assert set(repo) == {"hpc-mpi", "hpc-tools", "bio-blast"}
    for name, pkg in repo.items():
        data = (tree / pkg.location).read_bytes()
        assert pkg.checksum_type == "sha256"
        assert hashlib.sha256(data).hexdigest() == pkg.checksum
        assert data == two_rolls.packages[name].read_bytes() and pkg.size == len(data)
    build = json.loads((install / "rocks-dist" / "build.json").read_text())
    assert build["arches"]["x86_64"]["rolls"] == ["bio 2.0", "hpc 1.0"]
    assert (install / "rocks-dist").is_symlink()


def test_a_disabled_or_removed_roll_leaves_graph_and_distro(compute, config, two_rolls):
    rocks = compute
    rocks.ok("add roll", str(two_rolls.hpc), str(two_rolls.bio))
    rocks.ok("create distro")
    tree = config.install_dir / "rocks-dist" / "x86_64"

    rocks.ok("disable roll bio")
    assert roll_rows(rocks)["bio"]["enabled"] is False
    ks = rocks.ok("list host profile compute-0-0")
    assert "bio-post-marker" not in ks and "bio-blast" not in ks
    assert "hpc-post-marker" in ks
    # the distribution changes at the next build only
    assert "bio-blast" in read_repo(tree)
    rocks.ok("create distro")
    assert set(read_repo(tree)) == {"hpc-mpi", "hpc-tools"}
    assert not (tree / "RPMS" / "bio-blast-1.0-1.noarch.rpm").exists()

    rocks.ok("enable roll bio version=2.0 arch=x86_64")
    assert "bio-post-marker" in rocks.ok("list host profile compute-0-0")

    out = rocks.ok("remove roll hpc")
    assert out == "removed roll hpc 1.0 x86_64\n"
    assert "hpc" not in roll_rows(rocks)
    assert not (config.install_dir / "rolls" / "hpc").exists()
    ks = rocks.ok("list host profile compute-0-0")
    assert "hpc-post-marker" not in ks and "hpc-mpi" not in ks
    assert "bio-post-marker" in ks
    rocks.ok("create distro")
    assert set(read_repo(tree)) == {"bio-blast"}
    # one previous build is kept for installs still reading it, older ones go
    assert len([p for p in (config.install_dir / ".dists").iterdir() if p.is_dir()]) == 2

    assert rocks("remove roll hpc").err == (
        "error: no roll 'hpc' has been added (see 'rocks list roll')\n"
    )
    result = rocks("disable roll xen")
    assert result.status == 2 and "'xen' is a plugin roll" in result.err


def test_the_renderer_of_the_server_notices_enabled_rolls(compute, config, two_rolls):
    """The daemon's renderer (files checked at most once a second, caches per database
    generation) sees `rocks disable roll` and `rocks add roll` on the next request."""
    from provisioner.db.reader import Reader
    from provisioner.hooks import Hooks
    from provisioner.kickstart.renderer import KickstartRenderer
    from provisioner.services.hostargs import resolve_host

    rocks = compute
    renderer = KickstartRenderer(config, Hooks.from_config(config), check_interval=60)

    def kickstart() -> str:
        with Reader.connect(config.db_url) as reader:
            return renderer.render(reader, resolve_host(reader, "compute-0-0"))

    assert "hpc-post-marker" not in kickstart()
    rocks.ok("add roll", str(two_rolls.hpc))
    assert "hpc-post-marker" in kickstart()
    rocks.ok("disable roll hpc")
    assert "hpc-post-marker" not in kickstart()
    rocks.ok("enable roll hpc")
    assert "hpc-post-marker" in kickstart()


def test_a_failed_build_leaves_the_previous_distribution(
    compute, config, two_rolls, tmp_path, monkeypatch
):
    rocks = compute
    rocks.ok("add roll", str(two_rolls.hpc))
    rocks.ok("create distro")
    install = config.install_dir
    before = os.readlink(install / "rocks-dist")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "createrepo_c").write_text(
        "#!/bin/sh\necho 'Critical: no space left on device' >&2\nexit 1\n"
    )
    (fake / "createrepo_c").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    rocks.ok("add roll", str(two_rolls.bio))
    result = rocks("create distro")
    assert result.status == 1
    assert result.err.splitlines()[-1] == (
        "error: createrepo_c failed for x86_64: Critical: no space left on device"
    )
    assert os.readlink(install / "rocks-dist") == before
    assert set(read_repo(install / "rocks-dist" / "x86_64")) == {"hpc-mpi", "hpc-tools"}
    assert not list((install / ".dists").glob("*.partial"))


def test_rolls_are_added_whole_or_not_at_all(compute, config, two_rolls, tmp_path):
    rocks = compute
    bad = make_roll(
        tmp_path / "bad",
        "broken",
        "1.0",
        nodes={"broken.xml": "<kickstart><post>unclosed</kickstart>"},
    )
    result = rocks("add roll", str(two_rolls.hpc), str(bad))
    assert result.status == 2 and result.err.count("\n") == 1
    assert result.err.startswith(f"error: {bad}/nodes/broken.xml:1: not well-formed XML")
    assert "hpc" not in roll_rows(rocks)
    rolls_dir = config.install_dir / "rolls"
    assert [p.name for p in rolls_dir.iterdir()] == []  # no half copy, no staging left

    rocks.ok("add roll", str(two_rolls.hpc))
    result = rocks("add roll", str(two_rolls.hpc))
    assert result.status == 1 and result.err == (
        "error: roll hpc 1.0 x86_64 is already added (clean=yes replaces it)\n"
    )
    # clean=yes replaces the files: a package gone from the roll is gone from the copy
    (two_rolls.hpc / "RPMS" / "hpc-tools-1.0-1.noarch.rpm").unlink()
    rocks.ok("add roll", str(two_rolls.hpc), "clean=yes")
    copied = sorted(p.name for p in (rolls_dir / "hpc" / "1.0" / "x86_64" / "RPMS").iterdir())
    assert copied == ["hpc-mpi-1.0-1.noarch.rpm"]
    assert sorted(p.name for p in rolls_dir.iterdir()) == ["hpc"]

    # a directory left by an interrupted add (no database row) is replaced quietly
    leftover = rolls_dir / "bio" / "2.0" / "x86_64"
    leftover.mkdir(parents=True)
    (leftover / "junk").write_text("x")
    rocks.ok("add roll", str(two_rolls.bio))
    assert not (leftover / "junk").exists() and (leftover / "roll-bio.xml").exists()


@pytest.mark.parametrize(
    "case,expected",
    [
        ("no-meta", "{d}: not a roll (no roll-<name>.xml at its top)"),
        ("two-metas", "{d}: more than one roll metadata file (roll-a.xml, roll-b.xml)"),
        ("no-version", "{d}/roll-a.xml: missing version"),
        ("wrong-name", "{d}/roll-a.xml: names roll 'b', so it must be called roll-b.xml"),
        ("bad-name", "{d}/roll-a.xml: bad roll name '../a'"),
        ("doctype", "{d}/roll-a.xml:1: DOCTYPE and ENTITY declarations are not allowed"),
        ("not-rpm", "{d}: RPMS/a-1.0.rpm is not an RPM package"),
        ("symlink", "{d}: nodes/a.xml is a symbolic link: rolls hold plain files only"),
        ("empty", "{d}: roll a 1.0 x86_64 is empty (no RPMS/, nodes/ or graphs/)"),
        ("bad-graph", "{d}/graphs/default/a.xml:1: a graph file's root must be <graph>"),
    ],
)
def test_malformed_rolls_are_refused_with_the_reason(tmp_path, case, expected):
    """Checked in the staging area (no database involved): one line, and nothing left."""
    from provisioner.rolls.media import Incoming
    from provisioner.rolls.meta import BadRoll

    d = tmp_path / "src"
    d.mkdir()
    meta = '<roll name="a"><info version="1.0" arch="x86_64"/></roll>'
    (d / "roll-a.xml").write_text(meta)
    (d / "nodes").mkdir()
    (d / "nodes" / "a.xml").write_text("<kickstart/>")
    if case == "no-meta":
        (d / "roll-a.xml").unlink()
    elif case == "two-metas":
        (d / "roll-b.xml").write_text(meta.replace('"a"', '"b"'))
    elif case == "no-version":
        (d / "roll-a.xml").write_text('<roll name="a"><info arch="x86_64"/></roll>')
    elif case == "wrong-name":
        (d / "roll-a.xml").write_text(meta.replace('"a"', '"b"'))
    elif case == "bad-name":
        (d / "roll-a.xml").write_text(meta.replace('"a"', '"../a"'))
    elif case == "doctype":
        (d / "roll-a.xml").write_text('<!DOCTYPE roll [<!ENTITY x "y">]>' + meta)
    elif case == "not-rpm":
        (d / "RPMS").mkdir()
        (d / "RPMS" / "a-1.0.rpm").write_text("not an rpm")
    elif case == "symlink":
        (d / "nodes" / "a.xml").unlink()
        (d / "nodes" / "a.xml").symlink_to("/etc/passwd")
    elif case == "empty":
        (d / "nodes" / "a.xml").unlink()
    elif case == "bad-graph":
        (d / "graphs" / "default").mkdir(parents=True)
        (d / "graphs" / "default" / "a.xml").write_text("<kickstart/>")
    install = tmp_path / "install"
    with pytest.raises(BadRoll) as info, Incoming(install) as incoming:
        incoming.stage(str(d))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(expected.format(d=d)), message
    assert list((install / "rolls").iterdir()) == []


def test_an_iso_image_is_added_with_a_progress_bar(compute, config, rpms, tmp_path):
    """ISO 9660 images (Rock Ridge names) are read with bsdtar, no mount needed."""
    import shutil
    import subprocess

    bsdtar = shutil.which("bsdtar")
    if bsdtar is None:
        if os.environ.get("CI"):
            pytest.fail("bsdtar must be installed in CI (Debian package libarchive-tools)")
        pytest.skip("ISO images need bsdtar (Debian package libarchive-tools)")
    big = rpms("big-data", size=3 << 20)
    roll = make_roll(
        tmp_path / "media",
        "big",
        "3.1",
        packages=(big,),
        nodes={"big.xml": "<kickstart><package>big-data</package></kickstart>"},
    )
    iso = tmp_path / "big-3.1-0.x86_64.disk1.iso"
    subprocess.run(
        [bsdtar, "-c", "-f", str(iso), "--format=iso9660", "-C", str(roll), "."],
        check=True,
        timeout=60,
    )
    result = compute("add roll", str(iso))
    assert result.status == 0, result.err
    assert result.out.startswith("added roll big 3.1 x86_64 (1 package, 1 node file, 0 graph")
    assert f"copying {iso.name} [" in result.err and "100%" in result.err
    copy = config.install_dir / "rolls" / "big" / "3.1" / "x86_64"
    assert (copy / "RPMS" / big.name).read_bytes() == big.read_bytes()
    assert oct((copy / "RPMS" / big.name).stat().st_mode & 0o777) == "0o644"
    assert roll_rows(compute)["big"]["source"] == str(iso)

    # a file that is neither a directory nor an ISO image
    junk = tmp_path / "notes.txt"
    junk.write_text("hello" * 10000)
    assert compute("add roll", str(junk)).err == (
        f"error: {junk}: not a directory or an ISO 9660 image\n"
    )


def test_report_distro_and_a_noarch_roll_in_every_arch(compute, config, rpms, tmp_path):
    rocks = compute
    assert rocks.ok("report distro") == f"{config.install_dir}\n"
    common = make_roll(tmp_path, "common", "1", arch="noarch", packages=(rpms("common-files"),))
    i386 = make_roll(tmp_path, "old", "5.2", arch="i386", packages=(rpms("old-tools"),))
    rocks.ok("add roll", str(common), str(i386))
    out = rocks.ok("create distro arch=i386,x86_64")
    assert out.splitlines()[:2] == [
        "rocks-dist/i386: 2 packages from common 1, old 5.2",
        "rocks-dist/x86_64: 1 package from common 1",
    ]
    dist = config.install_dir / "rocks-dist"
    assert set(read_repo(dist / "i386")) == {"common-files", "old-tools"}
    assert set(read_repo(dist / "x86_64")) == {"common-files"}
    # rolls= narrows the build
    rocks.ok("create distro rolls=old arch=i386")
    assert set(read_repo(dist / "i386")) == {"old-tools"}
    assert rocks("create distro rolls=nope").err == (
        "error: no enabled roll 'nope' (see 'rocks list roll')\n"
    )


def test_comps_groups_of_rolls_are_merged(compute, config, rpms, tmp_path):
    rocks = compute
    roll = make_roll(tmp_path, "grp", "1", packages=(rpms("grp-a"),))
    (roll / "comps.xml").write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE comps PUBLIC "-//Red Hat, Inc.//DTD Comps info//EN" '
        '"comps.dtd">\n<comps><group><id>grp</id><name>Grp</name><packagelist>'
        '<packagereq type="mandatory">grp-a</packagereq></packagelist></group></comps>\n'
    )
    rocks.ok("add roll", str(roll))
    rocks.ok("create distro")
    import xml.etree.ElementTree as ET

    tree = config.install_dir / "rocks-dist" / "x86_64"
    repomd = ET.parse(tree / "repodata" / "repomd.xml").getroot()
    kinds = {d.get("type") for d in repomd.findall("{http://linux.duke.edu/metadata/repo}data")}
    assert "group" in kinds
    assert "<id>grp</id>" in (tree / "comps.xml").read_text()


def test_the_wheel_installs_and_runs(tmp_path):
    """What lights-out frontends pip-install: a wheel of this very package."""
    import subprocess
    import sys
    import zipfile

    from provisioner.rolls.wheel import build_wheel

    whl = build_wheel(tmp_path / "pip")
    again = build_wheel(tmp_path / "again")
    assert whl.read_bytes() == again.read_bytes()  # reproducible
    names = zipfile.ZipFile(whl).namelist()
    assert "provisioner/plugins/base/nodes/lights-out.xml" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--disable-pip-version-check",
            "--target",
            str(target),
            str(whl),
        ],
        check=True,
        timeout=120,
        cwd=tmp_path,
    )
    env = {**os.environ, "PYTHONPATH": str(target), "PROVISIONER_HOME": str(tmp_path / "home")}
    out = subprocess.run(
        [sys.executable, str(target / "bin" / "rocks"), "list", "roll", "command", "base"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "add roll" in out.stdout
    probe = subprocess.run(
        [sys.executable, "-c", "import provisioner; print(provisioner.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert probe.stdout.startswith(str(target))


def test_roll_files_outside_the_tree_are_refused(tmp_path):
    from provisioner.rolls.media import read_sums
    from provisioner.rolls.meta import BadRoll

    sums = tmp_path / "SHA256SUMS"
    for bad in ("../etc/passwd", "/etc/passwd", "a/../../b", "a\\b"):
        sums.write_text(f"{'0' * 64}  {bad}\n")
        with pytest.raises(BadRoll, match="not a '<sha256>  <relative path>' line"):
            read_sums(sums)
    sums.write_text(f"{'a' * 64}  RPMS/x.rpm\n")
    assert read_sums(sums) == {"RPMS/x.rpm": "a" * 64}


def test_rolls_from_another_server_over_http(compute, config, two_rolls, tmp_path, hooks):
    """`rocks add roll <url>` and rolls.xml: fetched from a server's /install/rolls/ (our
    web app on 127.0.0.1), every file checked against SHA256SUMS."""
    from provisioner.config import Config
    from provisioner.testing.pytest_plugin import TEST_ATTRS, Rocks

    compute.ok("add roll", str(two_rolls.hpc), str(two_rolls.bio))
    with Serve(config) as base:
        other = Rocks(Config.for_home(tmp_path / "other"), hooks)
        other.ok("init", "frontend", *TEST_ATTRS)
        result = other("add roll", f"{base}/install/rolls/hpc/1.0/x86_64/")
        assert result.status == 0, result.err
        assert "fetching" not in result.err  # only rolls.xml fetches show per-file progress
        rows = roll_rows(other)
        assert rows["hpc"]["source"] == f"{base}/install/rolls/hpc/1.0/x86_64/"
        theirs = tmp_path / "other" / "install" / "rolls" / "hpc" / "1.0" / "x86_64"
        ours = config.install_dir / "rolls" / "hpc" / "1.0" / "x86_64"
        assert (theirs / "SHA256SUMS").read_text() == (ours / "SHA256SUMS").read_text()

        rolls_xml = tmp_path / "rolls.xml"
        rolls_xml.write_text(
            "<rolls>\n"
            f'<roll name="bio" version="2.0" arch="x86_64" url="{base}/install/rolls/" diskid=""/>\n'
            f'<roll name="os" version="5.2" arch="x86_64" url="{base}/install/rolls/" diskid=""/>\n'
            "</rolls>\n"
        )
        result = other("add roll", f"rolls={rolls_xml}")
        assert result.status == 2
        assert result.err.splitlines()[-1] == (
            f"error: roll os 5.2 x86_64 at {base}/install/rolls/os/5.2/x86_64/: not found "
            f"({base}/install/rolls/os/5.2/x86_64/SHA256SUMS: HTTP 404)"
        )
        assert "bio" not in roll_rows(other)
        result = other("add roll", f"rolls={rolls_xml}", "skip-missing=yes")
        assert result.status == 0, result.err
        assert "warning: roll os 5.2 x86_64" in result.err and "skipped" in result.err
        assert "fetching bio 2.0 x86_64 [" in result.err
        assert roll_rows(other)["bio"]["enabled"] is True

        # a file damaged on the server is refused, and nothing is added
        (ours / "RPMS" / "hpc-mpi-1.0-1.noarch.rpm").write_bytes(b"\xed\xab\xee\xdbbroken")
        other.ok("remove roll hpc")
        result = other("add roll", f"{base}/install/rolls/hpc/1.0/x86_64/")
        assert result.err.splitlines()[-1] == (
            f"error: {base}/install/rolls/hpc/1.0/x86_64/: RPMS/hpc-mpi-1.0-1.noarch.rpm is "
            "damaged (checksum mismatch)"
        )
        assert "hpc" not in roll_rows(other)
