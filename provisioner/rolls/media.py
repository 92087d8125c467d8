"""Roll media: a roll from a directory, an ISO image or a URL, checked and moved into the
install tree whole.

A roll is a directory (or an ISO image of one) holding:

    roll-<name>.xml        its metadata (provisioner.rolls.meta), exactly one
    RPMS/                  packages, *.rpm (subdirectories allowed)
    nodes/*.xml            node files, joining the graph search path while the roll is enabled
    graphs/<graph>/*.xml   graph files, likewise
    comps.xml              optional package groups, merged into the distribution's repository
    images/, .treeinfo...  optional installer tree (an "os" roll), copied into the distribution

Every file is copied (or extracted) into a staging directory under `rolls/` of the install
tree, so the final step is a rename on one filesystem: a roll is there whole or not at all,
and an interrupted or refused copy leaves nothing behind. The staged copy is checked before
it moves: the metadata, every node and graph file parsed, every RPM's lead, no symbolic
links or special files, something in it. A `SHA256SUMS` file (sha256sum's format) listing
every file is written into it; `rocks add roll <url>` of another server reads that list to
fetch the roll, checking each file's digest.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol
from urllib.parse import quote, urlsplit

from provisioner.errors import Conflict
from provisioner.rolls.meta import META_GLOB, BadRoll, RollMeta, RollRef, read_meta

#: Called with (done, total): bytes for copies and extractions, files for downloads.
Progress = Callable[[int, int], None]

SUMS = "SHA256SUMS"
RPM_LEAD = b"\xed\xab\xee\xdb"
CHUNK = 1 << 20
#: Files ISO authoring tools add that are not part of the roll.
NOISE = frozenset({"TRANS.TBL", "boot.catalog"})
_SUM_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")
FETCH_TIMEOUT = 60


class RollMissing(BadRoll):
    """The roll is not where rolls.xml says (HTTP 404): `skip-missing=yes` passes over it."""


@dataclass
class StagedRoll:
    """A checked roll in a staging directory, ready to move into place."""

    meta: RollMeta
    path: Path
    source: str
    packages: int = 0
    node_files: int = 0
    graph_files: int = 0
    size: int = 0

    def summary(self) -> str:
        return (
            f"{self.packages} package{'s' * (self.packages != 1)}, "
            f"{self.node_files} node file{'s' * (self.node_files != 1)}, "
            f"{self.graph_files} graph file{'s' * (self.graph_files != 1)}"
        )


class RollKey(Protocol):
    name: str
    version: str
    arch: str


def roll_dir(install_dir: Path, meta: RollKey) -> Path:
    return install_dir / "rolls" / meta.name / meta.version / meta.arch


def version_key(version: str) -> tuple[tuple[int, int, str], ...]:
    """Versions in natural order: 5.10 after 5.9."""
    parts = re.findall(r"\d+|[^\d.\-_]+", version)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)


def node_directories(install_dir: Path, rolls: Sequence[RollKey]) -> list[tuple[Path, str]]:
    """The graph search path's entries for enabled rolls: one directory per roll name (a roll
    enabled for several arches or versions ships the same node files; two copies would apply
    its extend- files twice), the highest version, this machine's arch first."""
    machine = os.uname().machine
    best: dict[str, RollKey] = {}
    for r in rolls:
        cur = best.get(r.name)
        key = (version_key(r.version), r.arch == machine, r.arch)
        if cur is None or key > (version_key(cur.version), cur.arch == machine, cur.arch):
            best[r.name] = r
    return [(roll_dir(install_dir, best[n]), n) for n in sorted(best)]


def safe_relpath(text: str) -> str | None:
    """`text` as a relative path that stays inside its root, or None."""
    if not text or "\x00" in text or "\\" in text or text.startswith("/"):
        return None
    parts = PurePosixPath(text).parts
    if not parts or any(p in ("..", ".") for p in parts):
        return None
    return "/".join(parts)


# -- reading a roll's files -----------------------------------------------------------------------


def walk_files(root: Path, what: str) -> Iterator[tuple[str, Path]]:
    """(relative path, path) of every regular file below `root`, sorted; BadRoll for a link
    or a special file."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(dirpath)
        for name in [*dirnames]:
            if (base / name).is_symlink():
                rel = (base / name).relative_to(root)
                raise BadRoll(f"{what}: {rel} is a symbolic link: rolls hold plain files only")
        for name in sorted(filenames):
            path = base / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                raise BadRoll(f"{what}: {rel} is a symbolic link: rolls hold plain files only")
            if not path.is_file():
                raise BadRoll(f"{what}: {rel} is not a regular file")
            yield rel, path


def find_meta(root: Path, what: str) -> Path:
    found = sorted(p for p in root.glob(META_GLOB) if p.is_file())
    if not found:
        raise BadRoll(f"{what}: not a roll (no roll-<name>.xml at its top)")
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise BadRoll(f"{what}: more than one roll metadata file ({names})")
    return found[0]


def check_tree(root: Path, what: str) -> tuple[RollMeta, int, int, int, int]:
    """Check a roll's tree: (metadata, packages, node files, graph files, bytes). Messages
    name the files by where they came from (`what`), not the staging copy."""
    from provisioner.graph.errors import GraphError

    try:
        return _check_tree(root, what)
    except (BadRoll, GraphError) as exc:
        raise BadRoll(str(exc).replace(str(root), what)) from None


def _check_tree(root: Path, what: str) -> tuple[RollMeta, int, int, int, int]:
    from provisioner.graph.model import load_graph, load_node

    meta = read_meta(find_meta(root, what))
    packages = nodes = graphs = size = 0
    for rel, path in walk_files(root, what):
        size += path.stat().st_size
        parts = rel.split("/")
        top = parts[0]
        if top == "RPMS":
            if not rel.endswith(".rpm"):
                raise BadRoll(f"{what}: {rel}: RPMS/ holds *.rpm files only")
            with path.open("rb") as fh:
                if fh.read(4) != RPM_LEAD:
                    raise BadRoll(f"{what}: {rel} is not an RPM package")
            packages += 1
        elif top == "nodes":
            if len(parts) != 2 or not rel.endswith(".xml"):
                raise BadRoll(f"{what}: {rel}: nodes/ holds *.xml node files only")
            load_node(path, meta.name)
            nodes += 1
        elif top == "graphs":
            if len(parts) != 3 or not rel.endswith(".xml"):
                raise BadRoll(f"{what}: {rel}: graphs/<graph>/ holds *.xml graph files only")
            load_graph(path, meta.name)
            graphs += 1
    if packages + nodes + graphs == 0:
        raise BadRoll(f"{what}: roll {meta.label} is empty (no RPMS/, nodes/ or graphs/)")
    return meta, packages, nodes, graphs, size


def read_sums(path: Path) -> dict[str, str]:
    """SHA256SUMS: {relative path: hex digest}; BadRoll for a line that is not one."""
    out: dict[str, str] = {}
    for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        m = _SUM_LINE.match(line)
        rel = safe_relpath(m.group(2)) if m else None
        if m is None or rel is None or rel == SUMS:
            raise BadRoll(f"{path.name}:{n}: not a '<sha256>  <relative path>' line")
        out[rel] = m.group(1)
    return out


def write_sums(root: Path, digests: dict[str, str]) -> None:
    lines = [f"{digests[rel]}  {rel}\n" for rel in sorted(digests) if rel != SUMS]
    (root / SUMS).write_text("".join(lines))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_sums(root: Path, digests: dict[str, str], what: str) -> None:
    """A roll's own SHA256SUMS (from its media) must match what was copied."""
    listed = root / SUMS
    if not listed.is_file():
        return
    for rel, digest in read_sums(listed).items():
        if digests.get(rel) != digest:
            state = "missing" if rel not in digests else "damaged (checksum mismatch)"
            raise BadRoll(f"{what}: {rel} is {state}")


# -- staging --------------------------------------------------------------------------------------


class Incoming:
    """A staging area in `<install>/rolls/`, removed (with whatever is left in it) on exit."""

    def __init__(self, install_dir: Path) -> None:
        self.rolls_dir = install_dir / "rolls"
        self.install_dir = install_dir
        self.rolls_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.rolls_dir / f".incoming-{uuid.uuid4().hex[:12]}"
        self.path.mkdir()
        self._n = 0

    def __enter__(self) -> Incoming:
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def _slot(self) -> Path:
        self._n += 1
        slot = self.path / str(self._n)
        slot.mkdir()
        return slot

    # -- sources --------------------------------------------------------------------------

    def stage(self, source: str, progress: Progress | None = None) -> StagedRoll:
        """A roll from a directory, an ISO image file or an http(s) URL of a roll directory."""
        if urlsplit(source).scheme in ("http", "https"):
            return self.stage_url(source, progress)
        path = Path(source)
        if path.is_dir():
            return self.stage_directory(path, progress)
        if path.is_file():
            return self.stage_iso(path, progress)
        raise BadRoll(f"{source}: no such directory or ISO image")

    def stage_directory(self, src: Path, progress: Progress | None = None) -> StagedRoll:
        src = src.resolve()
        what = str(src)
        find_meta(src, what)  # refuse early, before copying anything
        files = [(rel, p) for rel, p in walk_files(src, what) if Path(rel).name not in NOISE]
        total = sum(p.stat().st_size for _, p in files)
        slot = self._slot()
        done = 0
        digests: dict[str, str] = {}
        for rel, path in files:
            target = slot / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            h = hashlib.sha256()
            with path.open("rb") as fin, target.open("wb") as fout:
                while chunk := fin.read(CHUNK):
                    h.update(chunk)
                    fout.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
            digests[rel] = h.hexdigest()
        if progress is not None:
            progress(total, total)
        return self._finish(slot, digests, what)

    def stage_iso(self, iso: Path, progress: Progress | None = None) -> StagedRoll:
        """Extract an ISO 9660 image with bsdtar (libarchive reads Rock Ridge and Joliet
        names; no loop mount, so no root needed)."""
        iso = iso.resolve()
        what = str(iso)
        bsdtar = shutil.which("bsdtar")
        if bsdtar is None:
            raise BadRoll(
                f"{what}: reading ISO images needs bsdtar (Debian package libarchive-tools)"
            )
        with iso.open("rb") as fh:
            fh.seek(0x8001)
            if fh.read(5) != b"CD001":
                raise BadRoll(f"{what}: not a directory or an ISO 9660 image")
        total = iso.stat().st_size
        slot = self._slot()
        proc = subprocess.Popen(
            [bsdtar, "-x", "-v", "-f", str(iso), "-C", str(slot)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
        done, previous, errors = 0, None, []
        assert proc.stderr is not None
        try:
            for line in proc.stderr:
                # bsdtar -v names each entry ("x path") as it starts extracting it.
                if line.startswith("x "):
                    if previous is not None and previous.is_file():
                        done += previous.stat().st_size
                        if progress is not None:
                            progress(min(done, total), total)
                    previous = slot / line[2:].rstrip("\n")
                else:
                    errors.append(line.strip())
            status = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        if status != 0:
            reason = next((e for e in errors if e), f"bsdtar exited with {status}")
            raise BadRoll(f"{what}: cannot read the ISO image: {reason.removeprefix('bsdtar: ')}")
        if progress is not None:
            progress(total, total)
        for dirpath, _dirs, filenames in os.walk(slot):
            # ISO files come out read-only; the install tree keeps them readable and removable.
            os.chmod(dirpath, 0o755)
            for name in filenames:
                p = Path(dirpath) / name
                if name in NOISE:
                    p.unlink()
                elif not p.is_symlink():
                    os.chmod(p, 0o644)
        digests = {rel: sha256_file(p) for rel, p in walk_files(slot, what)}
        return self._finish(slot, digests, what)

    def stage_url(
        self, url: str, progress: Progress | None = None, ref: RollRef | None = None
    ) -> StagedRoll:
        """Fetch a roll directory another server publishes (`.../install/rolls/<name>/<version>/
        <arch>/`): its SHA256SUMS, then every file listed, each checked."""
        base = url if url.endswith("/") else url + "/"
        what = base if ref is None else f"roll {ref.name} {ref.version} {ref.arch} at {base}"
        slot = self._slot()
        sums_path = slot / SUMS
        _download(base + SUMS, sums_path, what, missing_ok=True)
        digests = read_sums(sums_path)
        sums_path.unlink()
        if not digests:
            raise BadRoll(f"{what}: {SUMS} lists no files")
        total = len(digests)
        for n, (rel, digest) in enumerate(sorted(digests.items()), 1):
            target = slot / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            got = _download(base + quote(rel), target, what)
            if got != digest:
                raise BadRoll(f"{what}: {rel} is damaged (checksum mismatch)")
            if progress is not None:
                progress(n, total)
        staged = self._finish(slot, digests, what, source=base)
        if ref is not None and (staged.meta.name, staged.meta.version, staged.meta.arch) != (
            ref.name,
            ref.version,
            ref.arch,
        ):
            raise BadRoll(f"{what}: the roll there is {staged.meta.label}")
        return staged

    def stage_ref(self, ref: RollRef, progress: Progress | None = None) -> StagedRoll:
        """A roll named in rolls.xml: `<url><name>/<version>/<arch>/`."""
        if urlsplit(ref.url).scheme not in ("http", "https"):
            raise BadRoll(f"roll {ref.name} {ref.version} {ref.arch}: url must be http(s)://")
        base = ref.url if ref.url.endswith("/") else ref.url + "/"
        return self.stage_url(base + quote(ref.relpath) + "/", progress, ref)

    def _finish(
        self, slot: Path, digests: dict[str, str], what: str, source: str | None = None
    ) -> StagedRoll:
        verify_sums(slot, digests, what)
        meta, packages, nodes, graphs, size = check_tree(slot, what)
        write_sums(slot, digests)
        return StagedRoll(meta, slot, source or what, packages, nodes, graphs, size)

    # -- moving into place ------------------------------------------------------------------

    def install(self, staged: Sequence[StagedRoll], replace: Sequence[bool]) -> list[Moved]:
        """Move each staged roll into place; an existing copy moves aside when `replace`.
        On failure, what was moved goes back and the error is raised."""
        moved: list[Moved] = []
        try:
            for roll, rep in zip(staged, replace, strict=True):
                dest = roll_dir(self.install_dir, roll.meta)
                aside = None
                if dest.exists():
                    if not rep:
                        raise Conflict(
                            f"roll {roll.meta.label} is already in {dest} (clean=yes replaces it)"
                        )
                    aside = self.path / f"old-{len(moved)}"
                    os.rename(dest, aside)
                dest.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.rename(roll.path, dest)
                except BaseException:
                    if aside is not None:
                        os.rename(aside, dest)
                    raise
                moved.append(Moved(roll.path, dest, aside))
        except BaseException:
            undo(moved)
            raise
        return moved


@dataclass
class Moved:
    """A roll moved into place: where it came from, where it is, where the old copy went."""

    staged: Path
    dest: Path
    aside: Path | None


def undo(moved: Sequence[Moved]) -> None:
    """Put things back as they were (the database transaction failed after the moves)."""
    for m in reversed(moved):
        if m.dest.exists():
            os.rename(m.dest, m.staged)
        if m.aside is not None:
            os.rename(m.aside, m.dest)


def remove_tree(install_dir: Path, meta: RollKey) -> Path | None:
    """Move a roll's directory aside (to delete after the transaction); None if absent."""
    dest = roll_dir(install_dir, meta)
    if not dest.exists():
        return None
    aside = install_dir / "rolls" / f".removed-{uuid.uuid4().hex[:12]}"
    os.rename(dest, aside)
    return aside


def prune_empty(install_dir: Path, meta: RollKey) -> None:
    """Remove `rolls/<name>/<version>` and `rolls/<name>` when nothing is left in them."""
    for d in (
        install_dir / "rolls" / meta.name / meta.version,
        install_dir / "rolls" / meta.name,
    ):
        try:
            d.rmdir()
        except OSError:
            return


def _download(url: str, target: Path, what: str, missing_ok: bool = False) -> str:
    """GET `url` into `target`; returns the SHA-256 of what was written."""
    import urllib.error
    import urllib.request

    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT) as resp, target.open("wb") as out:
            for chunk in iter(lambda: resp.read(CHUNK), b""):
                h.update(chunk)
                out.write(chunk)
    except urllib.error.HTTPError as exc:
        if exc.code == 404 and missing_ok:
            raise RollMissing(f"{what}: not found ({url}: HTTP 404)") from None
        raise BadRoll(f"{what}: cannot fetch {url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise BadRoll(f"{what}: cannot fetch {url}: {reason}") from None
    return h.hexdigest()
