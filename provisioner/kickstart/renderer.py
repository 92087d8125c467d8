"""`KickstartRenderer`: a host's kickstart (or expanded XML) from the database and the graph.

Built to answer thousands of kickstart requests a second from one process, so each request
does only what depends on the host:

- node and graph files are parsed once and re-read only when their mtime or size changes
  (`NodeCatalog`, checked at most every `check_interval` seconds);
- the traversal and its order are cached per (files version, graph, root node, values of the
  attributes edge conditions read);
- the compiled template is cached per (that, values of the attributes tag conditions read);
- global, OS and appliance attributes (and appliances, memberships, enabled rolls) are cached
  per database `generation`, which every committed change bumps; enabled roll media join the
  file search path when that list changes (`rocks enable roll` is seen on the next request);
- per request: one query for the host's own attributes, private address, boot flags and the
  generation, one for its partitions, a dict merge and a `str.join`. A frontend's kickstart
  also carries its site.attrs and rolls.xml (lights-out installs): a few more queries, for
  frontends only.

One renderer serves one database; it is thread-safe (caches are replaced under a lock, and
compiled templates are immutable).
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provisioner import __version__
from provisioner.errors import NotFound
from provisioner.graph.catalog import NodeCatalog, default_directories
from provisioner.graph.errors import GraphError
from provisioner.graph.traverse import Graph, Traversal, order, traverse
from provisioner.kickstart.expanded import expanded_xml
from provisioner.kickstart.generate import BOOTFLAGS, KickstartBuilder
from provisioner.kickstart.nodes import Info, NodeEntry
from provisioner.kickstart.partitioning import PARTITION_JSON, partition_json
from provisioner.kickstart.template import Template
from provisioner.services.attrs import flat_values
from provisioner.services.hostdata import (
    DEFAULT_DISTRIBUTION,
    Levels,
    RollKey,
    enabled_roll_keys,
    host_facts,
    partition_rows,
)

if TYPE_CHECKING:
    from provisioner.config import Config
    from provisioner.db.reader import Reader
    from provisioner.hooks import Hooks
    from provisioner.services.hostargs import HostRow

SYNTAX_ATTR = "Kickstart_SyntaxVersion"
DEFAULT_SYNTAX = "RHEL9"
RELEASE = "provisioner"
FRONTEND = "frontend"

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Plan:
    """A traversal in kickstart order, shared by every host whose edge values are the same."""

    graph: Graph
    traversal: Traversal
    entries: tuple[NodeEntry, ...]
    tag_cond_names: tuple[str, ...]
    key: tuple[Any, ...]


class _LRU:
    def __init__(self, size: int) -> None:
        self.size = size
        self.data: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key: Any) -> Any:
        return self.data.get(key)

    def put(self, key: Any, value: Any) -> None:
        self.data[key] = value
        if len(self.data) > self.size:
            self.data.popitem(last=False)


class KickstartRenderer:
    """Kickstarts and expanded XML for hosts; see the module docstring for the caches."""

    def __init__(
        self,
        config: Config,
        hooks: Hooks | None = None,
        *,
        directories: Sequence[tuple[Path, str]] | None = None,
        check_interval: float = 1.0,
        cache_size: int = 4096,
    ) -> None:
        self.config = config
        self.hooks = hooks
        dirs = directories if directories is not None else default_directories(config, hooks)
        self._fixed_dirs = list(dirs)
        self._roll_keys: tuple[RollKey, ...] | None = None
        self.catalog = NodeCatalog(dirs, check_interval=check_interval)
        self._lock = threading.RLock()
        self._levels: Levels | None = None
        self._graphs: dict[tuple[int, str], Graph] = {}
        self._plans = _LRU(cache_size)
        self._templates = _LRU(cache_size)

    # -- public -------------------------------------------------------------------------------

    def render(self, reader: Reader, host: HostRow) -> str:
        """The host's kickstart. Raises GraphError (bad files, undefined attribute) or NotFound
        (the appliance is not installed by this server)."""
        values, graph, root = self.host_values(reader, host)
        return self.render_values(values, graph, root)

    def render_xml(self, reader: Reader, host: HostRow) -> str:
        """The host's traversed node files, expanded (`rocks list host xml`)."""
        values, graph, root = self.host_values(reader, host)
        plan = self.plan(graph, root, values)
        return expanded_xml(plan.entries, values, self._info(graph, root), host.name)

    def render_values(self, values: Mapping[str, str], graph: str, root: str) -> str:
        """A kickstart from attribute values alone (frontend builds: `rocks list node xml`)."""
        self._rolls_without_reader()
        plan = self.plan(graph, root, values)
        return self.template(plan, values).render(values)

    def render_values_xml(self, values: Mapping[str, str], graph: str, root: str) -> str:
        self._rolls_without_reader()
        plan = self.plan(graph, root, values)
        name = values.get("hostname", "")
        return expanded_xml(plan.entries, values, self._info(graph, root), name)

    def host_values(self, reader: Reader, host: HostRow) -> tuple[dict[str, str], str, str]:
        """(values, graph, root node): the host's attributes with the XML-time extras."""
        facts = host_facts(reader, host.id)
        levels = self._levels_at(reader, facts.generation)
        self.use_rolls(levels.rolls)
        graph, root = levels.appliances.get(host.appliance_id, ("default", ""))
        if not root:
            raise NotFound(
                f"appliance '{host.appliance}' has no root node: its hosts are not installed "
                "by this server"
            )
        values = flat_values(
            host,
            levels.g,
            levels.o.get(host.os, {}),
            levels.a.get(host.appliance_id, {}),
            facts.attrs,
        )
        if facts.private_addrs:
            values.setdefault("hostaddr", min(facts.private_addrs)[1])
        self._extras(values, graph, root, levels.distribution.get(host.membership_id))
        if host.appliance == FRONTEND:
            # A frontend installs lights-out from its site.attrs and rolls.xml (lights-out.xml).
            from provisioner.services.rolls import lights_out_values

            for key, value in lights_out_values(self.config, reader, host, self.hooks).items():
                values.setdefault(key, value)
        values[BOOTFLAGS] = facts.flags if facts.flags is not None else facts.default_flags
        rows = partition_rows(reader, host.id) if facts.partitions else []
        values[PARTITION_JSON] = partition_json(host.name, host.appliance, rows)
        return values, graph, root

    @staticmethod
    def node_values(attrs: Mapping[str, str], root: str, graph: str = "default") -> dict[str, str]:
        """Values for `rocks list node xml`: the given attributes, Rocks' defaults for a
        frontend build, and the XML-time extras."""
        values = {
            "os": "linux",
            "arch": os.uname().machine,
            "hostname": "frontend",
            "appliance": "frontend",
            "membership": "Frontend",
            "rack": "0",
            "rank": "0",
        }
        values.update(attrs)
        KickstartRenderer._extras(values, graph, root, None)
        values.setdefault(BOOTFLAGS, "")
        values.setdefault(
            PARTITION_JSON, partition_json(values["hostname"], values["appliance"], [])
        )
        return values

    @staticmethod
    def _extras(values: dict[str, str], graph: str, root: str, distribution: str | None) -> None:
        # Rocks' XML-time keys (reference §1.6); an attribute of the same name wins.
        for key, value in (
            ("distribution", distribution or DEFAULT_DISTRIBUTION),
            ("graph", graph),
            ("root", root),
            ("version", __version__),
            ("release", RELEASE),
            (SYNTAX_ATTR, DEFAULT_SYNTAX),
            ("Node_Hostname", values.get("hostname", "")),
            ("Node_Membership", values.get("membership", "")),
        ):
            values.setdefault(key, value)

    # -- caches -------------------------------------------------------------------------------

    def _levels_at(self, reader: Reader, generation: int) -> Levels:
        levels = self._levels
        if levels is not None and levels.generation == generation and generation > 0:
            return levels
        with self._lock:
            levels = self._levels
            if levels is None or levels.generation != generation or generation == 0:
                levels = Levels(generation, reader)
                self._levels = levels
            return levels

    def use_rolls(self, rolls: tuple[RollKey, ...]) -> None:
        """Search the node files of these enabled roll media (after the site's and the plugin
        rolls'); a change gives the catalog a new version, so cached plans are not reused."""
        if rolls == self._roll_keys:
            return
        from provisioner.rolls.media import node_directories

        with self._lock:
            if rolls != self._roll_keys:
                media = node_directories(self.config.install_dir, rolls)
                self.catalog.set_directories([*self._fixed_dirs, *media])
                self._roll_keys = rolls

    def _rolls_without_reader(self) -> None:
        # Callers without a reader (`rocks list node xml`, the whole graph): read the enabled
        # rolls once, if there is a database; an installing frontend may have none yet.
        if self._roll_keys is not None:
            return
        from provisioner.db.reader import Reader
        from provisioner.errors import DatabaseError

        try:
            with Reader.connect(self.config.db_url, timeout=5) as reader:
                rolls = enabled_roll_keys(reader)
        except (DatabaseError, OSError):
            rolls = ()
        except Exception:  # noqa: BLE001 - a driver's own errors: no database, no rolls
            rolls = ()
        self.use_rolls(rolls)

    def graph(self, name: str) -> Graph:
        self._rolls_without_reader()
        version = self.catalog.version
        key = (version, name)
        found = self._graphs.get(key)
        if found is None:
            with self._lock:
                found = Graph.merge(name, self.catalog.graph_files(name))
                self._graphs = {k: v for k, v in self._graphs.items() if k[0] == version}
                self._graphs[key] = found
        return found

    def plan(self, graph_name: str, root: str, values: Mapping[str, str]) -> Plan:
        graph = self.graph(graph_name)
        key = (
            self.catalog.version,
            graph_name,
            root,
            tuple(values.get(n) for n in graph.cond_names),
        )
        found = self._plans.get(key)
        if found is not None:
            return found
        with self._lock:
            found = self._plans.get(key)
            if found is None:
                found = self._make_plan(graph, root, values, key)
                self._plans.put(key, found)
        return found

    def _make_plan(
        self, graph: Graph, root: str, values: Mapping[str, str], key: tuple[Any, ...]
    ) -> Plan:
        if not self.catalog.has_node(root):
            raise GraphError(f"graph '{graph.name}': root node '{root}' has no node file")
        trav = traverse(graph, root, values)
        by_dst = {e.dst: e for e in trav.taken}
        entries = []
        names: set[str] = set()
        for name in order(graph, trav.nodes):
            try:
                files = tuple(self.catalog.node_files(name))
            except GraphError as exc:
                edge = by_dst.get(name)
                if edge is None:
                    raise
                raise GraphError(f"{edge.path}:{edge.line}: edge to node '{name}': {exc}") from None
            for f in files:
                names |= f.cond_names
            entries.append(NodeEntry(name, files))
        return Plan(graph, trav, tuple(entries), tuple(sorted(names)), key)

    def template(self, plan: Plan, values: Mapping[str, str]) -> Template:
        key = (plan.key, tuple(values.get(n) for n in plan.tag_cond_names))
        found = self._templates.get(key)
        if found is not None:
            return found
        with self._lock:
            found = self._templates.get(key)
            if found is None:
                runner = self._run_eval if self.config.eval_enabled else None
                info = self._info(plan.graph.name, plan.traversal.root)
                found = KickstartBuilder(plan.entries, values, info, runner).build()
                self._templates.put(key, found)
        return found

    def _info(self, graph: str, root: str) -> Info:
        return Info(graph=graph, root=root, version=__version__)

    def invalidate(self) -> None:
        """Forget every cache (the file check still runs on its own)."""
        with self._lock:
            self.catalog.refresh(force=True)
            self._levels = None
            self._graphs = {}
            self._plans = _LRU(self._plans.size)
            self._templates = _LRU(self._templates.size)

    # -- <eval> ---------------------------------------------------------------------------------

    def _run_eval(
        self, shell: str, script: str, values: Mapping[str, str], mode: str, place: str
    ) -> str:
        argv = {"sh": ["/bin/sh"], "python": ["python3"], "python3": ["python3"]}.get(
            shell, shlex_split(shell)
        )
        env = {k: v for k, v in values.items() if _ENV_NAME.match(k) and "\x00" not in v}
        env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
        try:
            proc = subprocess.run(
                argv, input=script, capture_output=True, text=True, timeout=60, env=env
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise GraphError(f"{place}: <eval> could not run: {exc}") from None
        if proc.returncode != 0:
            err = (proc.stderr.strip().splitlines() or [""])[-1]
            raise GraphError(f"{place}: <eval> failed (exit {proc.returncode}): {err}")
        if mode == "xml":
            from provisioner.graph.xmlload import parse_text

            xml = parse_text(f"<eval>{proc.stdout}</eval>", Path(place))
            return _itertext(xml.root)
        return proc.stdout


def _itertext(tag: Any) -> str:
    return tag.text + "".join(_itertext(c) + c.tail for c in tag.children)


def shlex_split(text: str) -> list[str]:
    import shlex

    return shlex.split(text)


_shared: dict[Any, KickstartRenderer] = {}
_shared_lock = threading.Lock()


_last_shared: tuple[Config | None, KickstartRenderer | None] = (None, None)


def shared_renderer(config: Config, hooks: Hooks) -> KickstartRenderer:
    """One renderer per configuration in this process, for callers that cannot keep one
    (a hook implementation): its caches then live as long as the process. It is built with
    the caller's `hooks` (the process's one plugin manager) the first time it is asked for."""
    global _last_shared
    last_config, last = _last_shared
    if last_config is config and last is not None:
        # The same Config object as last time (every kickstart of a server process): no
        # hashing of all its fields, no lock.
        return last
    with _shared_lock:
        found = _shared.get(config)
        if found is None:
            found = KickstartRenderer(config, hooks)
            _shared[config] = found
        _last_shared = (config, found)
        return found
