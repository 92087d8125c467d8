"""`rocks create distro`: the install tree nodes install from, built from the enabled rolls.

Layout under the install tree (served as `/install/`):

    rocks-dist -> .dists/rocks-dist.<stamp>      a symbolic link, switched by one rename
    .dists/rocks-dist.<stamp>/
        <arch>/RPMS/*.rpm        every package of the rolls of that arch (and noarch rolls)
        <arch>/repodata/         yum/dnf metadata by createrepo_c (with the merged comps.xml)
        <arch>/images/, .treeinfo...   an "os" roll's installer tree, when one has it
        pip/                     this project's wheel (and site wheels) for lights-out frontends
        build.json               what went in

A node's kickstart says `url --url http://<server>/install/<distribution>/<arch>`
(docs/nodes.md), which is `<arch>/` here. Each build goes into a new directory; the link
moves only when the build is complete, so a build that fails leaves the previous
distribution serving, and nodes installing during a build see one distribution or the other,
never a mix. Packages are hard links to the rolls' files (copies across filesystems), so a
build costs little space and a removed roll's packages stay served until the next build. The
previous build is kept for installs still reading it; older ones are deleted.
"""

from __future__ import annotations

import fcntl
import html
import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from provisioner.errors import Conflict, ProvisionerError, UsageError
from provisioner.rolls.media import RollKey, roll_dir, sha256_file

DIST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$")
#: An "os" roll's installer files, carried into the distribution's arch directory.
TREE_ITEMS = (".treeinfo", ".discinfo", "images", "isolinux", "EFI", "LiveOS")
NOARCH = "noarch"
KEEP = 2
SITE_WHEELS = "wheels"


@dataclass
class ArchBuild:
    arch: str
    rolls: list[str] = field(default_factory=list)
    packages: int = 0
    duplicates: list[str] = field(default_factory=list)
    tree_from: str | None = None
    groups: bool = False


@dataclass
class DistroBuild:
    dist: str
    path: Path
    arches: list[ArchBuild]
    wheels: list[str]


def machine_arch() -> str:
    return os.uname().machine


def dist_arches(rolls: Sequence[RollKey], wanted: Sequence[str] | None) -> list[str]:
    if wanted:
        return list(dict.fromkeys(wanted))
    found = sorted({r.arch for r in rolls} - {NOARCH})
    return found or [machine_arch()]


def _link(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


@contextmanager
def _lock(install_dir: Path, dist: str) -> Iterator[None]:
    path = install_dir / f".{dist}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Conflict(f"another 'rocks create distro' is building {dist}") from None
        yield
    finally:
        os.close(fd)


def _merge_comps(files: Sequence[Path], target: Path) -> bool:
    """One comps.xml from the rolls' (groups, environments and categories by id; the first
    roll's wins). Parsed with entities, DTDs and network off."""
    from lxml import etree

    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, remove_comments=True
    )
    merged = etree.Element("comps")
    seen: set[tuple[str, str]] = set()
    for path in files:
        try:
            root = etree.parse(str(path), parser).getroot()
        except etree.XMLSyntaxError as exc:
            raise ProvisionerError(f"{path}: not well-formed XML: {exc.msg}") from None
        for child in root:
            if not isinstance(child.tag, str):
                continue
            key = (child.tag, (child.findtext("id") or "").strip())
            if key in seen:
                continue
            seen.add(key)
            merged.append(child)
    if not len(merged):
        return False
    target.write_bytes(etree.tostring(merged, xml_declaration=True, encoding="UTF-8"))
    return True


def _createrepo(directory: Path, groups: Path | None, createrepo: str) -> None:
    exe = shutil.which(createrepo)
    if exe is None:
        raise ProvisionerError(
            f"building a distribution needs {createrepo} (Debian package createrepo-c)"
        )
    argv = [exe, "--quiet"]
    if groups is not None:
        argv += ["--groupfile", str(groups)]
    proc = subprocess.run([*argv, str(directory)], capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        lines = [x for x in (proc.stderr + proc.stdout).splitlines() if x.strip()]
        reason = lines[-1].strip() if lines else f"exit status {proc.returncode}"
        raise ProvisionerError(f"{createrepo} failed for {directory.name}: {reason}")


def _build_arch(
    install_dir: Path, base: Path, arch: str, rolls: Sequence[RollKey], createrepo: str
) -> ArchBuild:
    out = ArchBuild(arch)
    target = base / arch
    rpms = target / "RPMS"
    rpms.mkdir(parents=True)
    comps: list[Path] = []
    owner: dict[str, tuple[str, Path]] = {}
    for roll in rolls:
        src = roll_dir(install_dir, roll)
        label = f"{roll.name} {roll.version}"
        if not src.is_dir():
            raise ProvisionerError(f"roll {label} {roll.arch} is missing from {src}")
        out.rolls.append(label)
        for path in sorted((src / "RPMS").rglob("*.rpm")):
            if not path.is_file():
                continue
            if path.name in owner:
                first, first_path = owner[path.name]
                if sha256_file(first_path) != sha256_file(path):
                    out.duplicates.append(f"{path.name} of {label} (kept {first}'s)")
                continue
            owner[path.name] = (label, path)
            _link(str(path), str(rpms / path.name))
            out.packages += 1
        if (src / "comps.xml").is_file():
            comps.append(src / "comps.xml")
        if out.tree_from is None and any((src / item).exists() for item in TREE_ITEMS):
            out.tree_from = label
            for item in TREE_ITEMS:
                if (src / item).is_dir():
                    shutil.copytree(src / item, target / item, copy_function=_link)
                elif (src / item).is_file():
                    _link(str(src / item), str(target / item))
    groups = target / "comps.xml"
    out.groups = _merge_comps(comps, groups)
    _createrepo(target, groups if out.groups else None, createrepo)
    return out


def _pip(install_dir: Path, base: Path) -> list[str]:
    """This project's wheel and the site's (`<install>/wheels/*.whl`), with the page pip's
    --find-links reads."""
    from provisioner.rolls.wheel import build_wheel

    pip = base / "pip"
    build_wheel(pip)
    site = install_dir / SITE_WHEELS
    if site.is_dir():
        for whl in sorted(site.glob("*.whl")):
            if whl.is_file() and not (pip / whl.name).exists():
                _link(str(whl), str(pip / whl.name))
    names = sorted(p.name for p in pip.glob("*.whl"))
    links = "".join(
        f'<a href="{html.escape(n)}#sha256={sha256_file(pip / n)}">{html.escape(n)}</a><br>\n'
        for n in names
    )
    (pip / "index.html").write_text(f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n")
    return names


def _flip(install_dir: Path, dist: str, final: Path) -> None:
    current = install_dir / dist
    if current.exists() and not current.is_symlink():
        # A tree from before builds were switched by a link: keep it as the previous build.
        os.rename(current, final.parent / f"{dist}.0-previous")
    tmp = install_dir / f".{dist}.link-{uuid.uuid4().hex[:8]}"
    os.symlink(os.path.relpath(final, install_dir), tmp)
    try:
        os.replace(tmp, current)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _prune(dists: Path, dist: str, keep: int, current: Path) -> None:
    builds = sorted(
        (p for p in dists.glob(f"{dist}.*") if p.is_dir() and not p.name.endswith(".partial")),
        key=lambda p: p.name,
    )
    for old in builds[: max(len(builds) - keep, 0)]:
        if old != current:
            shutil.rmtree(old, ignore_errors=True)


def build_distro(
    install_dir: Path,
    rolls: Sequence[RollKey],
    dist: str = "rocks-dist",
    arches: Sequence[str] | None = None,
    say: Callable[[str], None] | None = None,
    createrepo: str = "createrepo_c",
    keep: int = KEEP,
) -> DistroBuild:
    """Build `dist` from `rolls` and switch `<install>/<dist>` to it; see the module doc."""
    if not DIST_NAME.match(dist):
        raise UsageError(f"bad distribution name '{dist}'")
    say = say or (lambda _text: None)
    install_dir.mkdir(parents=True, exist_ok=True)
    dists = install_dir / ".dists"
    dists.mkdir(exist_ok=True)
    with _lock(install_dir, dist):
        for stale in dists.glob(f"{dist}.*.partial"):
            shutil.rmtree(stale, ignore_errors=True)
        # Names sort in build order (pruning relies on it): microseconds, under the lock.
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f") + "-" + uuid.uuid4().hex[:6]
        stage = dists / f"{dist}.{stamp}.partial"
        stage.mkdir()
        try:
            built = []
            for arch in dist_arches(rolls, arches):
                chosen = [r for r in rolls if r.arch in (arch, NOARCH)]
                say(f"{dist} {arch}: packages of {len(chosen)} roll(s), repository metadata")
                built.append(_build_arch(install_dir, stage, arch, chosen, createrepo))
            wheels = _pip(install_dir, stage)
            info = {
                "dist": dist,
                "built": datetime.now(UTC).isoformat(timespec="seconds"),
                "arches": {
                    b.arch: {"rolls": b.rolls, "packages": b.packages, "tree": b.tree_from}
                    for b in built
                },
                "pip": wheels,
            }
            (stage / "build.json").write_text(json.dumps(info, indent=2) + "\n")
            final = dists / f"{dist}.{stamp}"
            os.rename(stage, final)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        try:
            _flip(install_dir, dist, final)
        except BaseException:
            shutil.rmtree(final, ignore_errors=True)
            raise
        _prune(dists, dist, keep, final)
    return DistroBuild(dist, final, built, wheels)
