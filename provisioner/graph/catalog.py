"""The search path of node and graph files, with parse caches invalidated on file change.

Directories are searched in order: the site's `site-profiles` first, then every roll's
directory (`node_directories` hook), then the enabled roll media of the install tree (the
renderer learns those from the database: `set_directories`). Each holds `nodes/*.xml` and
`graphs/<graph>/*.xml`.

For node X: the first `replace-X.xml` found replaces X.xml and every extension; otherwise the
first `X.xml` found is the node (so a site's own `nodes/X.xml` also wins over a roll's) and
every `extend-X.xml` is appended to it, the rolls' in search order and the site's last, so the
site has the last word. Graph files merge: every file of `graphs/<graph>/` contributes its
edges, a file name found in two directories counts once (the first), and `replace-F.xml`
replaces F.xml.

`refresh()` lists the directories and stats the files (at most once per `check_interval`
seconds); a changed listing or mtime gives a new `version`, which callers use as part of their
cache keys. Parsed files are cached by path and (mtime, size), so only changed files are read
again.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from provisioner.graph.errors import GraphError
from provisioner.graph.model import GraphFile, NodeFile, load_graph, load_node, split_name

if TYPE_CHECKING:
    from provisioner.config import Config
    from provisioner.hooks import Hooks

Stamp = tuple[int, int]  # (mtime_ns, size)
T = TypeVar("T")


@dataclass(frozen=True)
class Source:
    path: Path
    roll: str


@dataclass(frozen=True)
class _Index:
    version: int
    stamps: dict[Path, Stamp]
    nodes: dict[str, tuple[Source, ...]]  # node -> base or replacement, then extensions
    graphs: dict[str, tuple[Source, ...]]


def _scan_dir(directory: Path) -> dict[str, Stamp]:
    out: dict[str, Stamp] = {}
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return out
    for entry in entries:
        if entry.name.endswith(".xml") and not entry.name.startswith("."):
            try:
                st = entry.stat()
            except OSError:
                continue
            if not os.path.isdir(entry.path):
                out[entry.name] = (st.st_mtime_ns, st.st_size)
    return out


class NodeCatalog:
    """Where node and graph files are, and their parsed forms. Thread-safe."""

    def __init__(self, directories: Sequence[tuple[Path, str]], check_interval: float = 1.0):
        self.directories = [(Path(d), roll) for d, roll in directories]
        self.check_interval = check_interval
        self._lock = threading.RLock()
        self._index: _Index | None = None
        self._checked = 0.0
        self._version = 0
        self._nodes: dict[Path, tuple[Stamp | None, NodeFile]] = {}
        self._graphs: dict[Path, tuple[Stamp | None, GraphFile]] = {}

    @property
    def version(self) -> int:
        return self.refresh().version

    def set_directories(self, directories: Sequence[tuple[Path, str]]) -> None:
        """Search these directories from now on (enabled rolls changed); the next lookup sees
        them, and a changed file set gives a new `version`."""
        with self._lock:
            self.directories = [(Path(d), roll) for d, roll in directories]
            self.refresh(force=True)

    def refresh(self, force: bool = False) -> _Index:
        index = self._index
        now = time.monotonic()
        if index is not None and not force and now - self._checked < self.check_interval:
            return index
        with self._lock:
            if self._index is not None and not force and now - self._checked < self.check_interval:
                return self._index
            new = self._build()
            if self._index is None or new.stamps != self._index.stamps:
                self._version += 1
                self._index = _Index(self._version, new.stamps, new.nodes, new.graphs)
                live = set(new.stamps)
                self._nodes = {p: v for p, v in self._nodes.items() if p in live}
                self._graphs = {p: v for p, v in self._graphs.items() if p in live}
            self._checked = now
            return self._index

    def _build(self) -> _Index:
        stamps: dict[Path, Stamp] = {}
        bases: dict[str, Source] = {}
        replaces: dict[str, Source] = {}
        extends: dict[str, list[tuple[int, Source]]] = {}
        graph_files: dict[str, dict[str, Source]] = {}
        graph_order: dict[str, list[str]] = {}
        last = len(self.directories)
        for rank, (directory, roll) in enumerate(self.directories):
            for name, stamp in sorted(_scan_dir(directory / "nodes").items()):
                path = directory / "nodes" / name
                stamps[path] = stamp
                node, kind = split_name(name)
                src = Source(path, roll)
                if kind == "replace":
                    replaces.setdefault(node, src)
                elif kind == "extend":
                    # The site (searched first) extends last.
                    extends.setdefault(node, []).append((last if rank == 0 else rank, src))
                else:
                    bases.setdefault(node, src)
            try:
                graph_dirs = sorted(e.name for e in os.scandir(directory / "graphs") if e.is_dir())
            except OSError:
                graph_dirs = []
            for graph in graph_dirs:
                files = graph_files.setdefault(graph, {})
                order = graph_order.setdefault(graph, [])
                for name, stamp in sorted(_scan_dir(directory / "graphs" / graph).items()):
                    path = directory / "graphs" / graph / name
                    stamps[path] = stamp
                    if name not in files:
                        files[name] = Source(path, roll)
                        order.append(name)
        nodes: dict[str, tuple[Source, ...]] = {}
        for node in set(bases) | set(replaces):
            if node in replaces:
                nodes[node] = (replaces[node],)
            else:
                ext = [s for _, s in sorted(extends.get(node, []), key=lambda x: x[0])]
                nodes[node] = (bases[node], *ext)
        graphs: dict[str, tuple[Source, ...]] = {}
        for graph, files in graph_files.items():
            chosen: list[Source] = []
            for name in graph_order[graph]:
                stem, kind = split_name(name)
                if kind == "node" and f"replace-{stem}.xml" in files:
                    continue
                chosen.append(files[name])
            graphs[graph] = tuple(chosen)
        return _Index(0, stamps, nodes, graphs)

    # -- lookups --------------------------------------------------------------------------

    def has_node(self, name: str) -> bool:
        return name in self.refresh().nodes

    def node_names(self) -> list[str]:
        return sorted(self.refresh().nodes)

    def graph_names(self) -> list[str]:
        return sorted(self.refresh().graphs)

    def node_files(self, name: str) -> list[NodeFile]:
        """The node's files in application order (base or replacement, then extensions)."""
        index = self.refresh()
        sources = index.nodes.get(name)
        if sources is None:
            searched = ", ".join(str(d / "nodes") for d, _ in self.directories)
            raise GraphError(f"cannot find node '{name}' (searched {searched})")
        return [self._load(self._nodes, s, index, load_node) for s in sources]

    def graph_files(self, graph: str) -> list[GraphFile]:
        index = self.refresh()
        sources = index.graphs.get(graph)
        if sources is None:
            raise GraphError(f"no graph '{graph}' in any graphs/ directory")
        return [self._load(self._graphs, s, index, load_graph) for s in sources]

    def _load(
        self,
        cache: dict[Path, tuple[Stamp | None, T]],
        source: Source,
        index: _Index,
        loader: Callable[[Path, str], T],
    ) -> T:
        stamp = index.stamps.get(source.path)
        hit = cache.get(source.path)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        parsed = loader(source.path, source.roll)
        with self._lock:
            cache[source.path] = (stamp, parsed)
        return parsed


def default_directories(config: Config, hooks: Hooks | None) -> list[tuple[Path, str]]:
    """`site-profiles` first, then each roll's directories (roll named after the directory)."""
    dirs: list[tuple[Path, str]] = [(Path(config.site_profiles_dir), "site")]
    if hooks is not None:
        for d in hooks.node_directories():
            dirs.append((Path(d), Path(d).name or "roll"))
    return dirs
