"""Node files (`<kickstart>`) and graph files (`<graph>`) as loaded, with conditions compiled.

A node file keeps its element tree (kickstart generation walks it) and a compiled condition
for every element that has `arch`, `os`, `release` or `cond`, so a bad condition is refused
when the file loads, not when some host happens to need it. A graph file becomes edges and
order edges: nested `<to>`/`<from>` (and `<head>`/`<tail>`) children carry their own
conditions, ANDed with the parent's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from provisioner.graph.cond import Cond, compile_cond
from provisioner.graph.errors import GraphError, where
from provisioner.graph.xmlload import Ref, Tag, XmlFile, has_marker, load

CONDITION_KEYS = ("arch", "os", "release", "cond")


@dataclass(eq=False)
class NodeFile:
    """One file of a node: `X.xml`, `extend-X.xml` or `replace-X.xml`."""

    node: str
    kind: str  # "node", "extend" or "replace"
    path: Path
    roll: str
    root: Tag
    refs: list[Ref]
    conds: dict[int, Cond] = field(default_factory=dict)  # id(Tag) -> condition
    cond_names: frozenset[str] = frozenset()

    def cond(self, tag: Tag) -> Cond | None:
        return self.conds.get(id(tag))


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    cond: Cond | None
    path: Path
    line: int


@dataclass(frozen=True)
class OrderEdge:
    head: str
    tail: str
    gen: str
    path: Path
    line: int


@dataclass(eq=False)
class GraphFile:
    path: Path
    roll: str
    edges: list[Edge]
    orders: list[OrderEdge]


def split_name(filename: str) -> tuple[str, str]:
    """("compute", "extend") for `extend-compute.xml`."""
    stem = filename[: -len(".xml")] if filename.endswith(".xml") else filename
    for kind in ("extend", "replace"):
        if stem.startswith(kind + "-") and len(stem) > len(kind) + 1:
            return stem[len(kind) + 1 :], kind
    return stem, "node"


def load_node(path: Path, roll: str) -> NodeFile:
    xml = load(path)
    if xml.root.name != "kickstart":
        raise GraphError(f"{where(path, xml.root.line)}: a node file's root must be <kickstart>")
    node, kind = split_name(path.name)
    out = NodeFile(node, kind, path, roll, xml.root, xml.refs)
    names: set[str] = set()
    for tag in xml.root.iter():
        if tag is xml.root:
            continue
        if any(k in tag.attrs for k in CONDITION_KEYS):
            cond = compile_cond(tag.attrs, where(path, tag.line))
            if cond is not None:
                out.conds[id(tag)] = cond
                names |= cond.names
    out.cond_names = frozenset(names)
    return out


def _name(text: str | None, path: Path, line: int, what: str) -> str:
    value = (text or "").strip()
    if not value:
        raise GraphError(f"{where(path, line)}: {what} without a node name")
    if has_marker(value):
        raise GraphError(f"{where(path, line)}: attribute references are not allowed in {what}")
    return value


def load_graph(path: Path, roll: str) -> GraphFile:
    xml: XmlFile = load(path)
    if xml.root.name != "graph":
        raise GraphError(f"{where(path, xml.root.line)}: a graph file's root must be <graph>")
    edges: list[Edge] = []
    orders: list[OrderEdge] = []
    for tag in xml.root.children:
        if tag.name == "edge":
            edges.extend(_edges(tag, path))
        elif tag.name == "order":
            orders.extend(_orders(tag, path))
    return GraphFile(path, roll, edges, orders)


def _edges(tag: Tag, path: Path) -> list[Edge]:
    parent = compile_cond(tag.attrs, where(path, tag.line))
    srcs: list[tuple[str, Cond | None, int]] = []
    dsts: list[tuple[str, Cond | None, int]] = []
    if "from" in tag.attrs:
        srcs.append((_name(tag.attrs["from"], path, tag.line, "edge from="), None, tag.line))
    if "to" in tag.attrs:
        dsts.append((_name(tag.attrs["to"], path, tag.line, "edge to="), None, tag.line))
    for child in tag.children:
        if child.name not in ("to", "from"):
            continue
        name = _name(child.text, path, child.line, f"<{child.name}>")
        cond = compile_cond(child.attrs, where(path, child.line))
        (dsts if child.name == "to" else srcs).append((name, cond, child.line))
    if not srcs or not dsts:
        raise GraphError(f"{where(path, tag.line)}: an edge needs both a from and a to node")
    out = []
    for src, scond, sline in srcs:
        for dst, dcond, dline in dsts:
            cond = parent
            for extra in (scond, dcond):
                if extra is not None:
                    cond = extra if cond is None else cond.and_(extra)
            out.append(Edge(src, dst, cond, path, max(sline, dline)))
    return out


def _orders(tag: Tag, path: Path) -> list[OrderEdge]:
    gen = tag.attrs.get("gen", "").strip()
    heads = [_name(tag.attrs["head"], path, tag.line, "order head=")] if "head" in tag.attrs else []
    tails = [_name(tag.attrs["tail"], path, tag.line, "order tail=")] if "tail" in tag.attrs else []
    for child in tag.children:
        if child.name == "head":
            heads.append(_name(child.text, path, child.line, "<head>"))
        elif child.name == "tail":
            tails.append(_name(child.text, path, child.line, "<tail>"))
    if not heads or not tails:
        raise GraphError(f"{where(path, tag.line)}: an order needs both a head and a tail")
    return [OrderEdge(h, t, gen, path, tag.line) for h in heads for t in tails]
