"""Traversal of a graph from a root node, and Rocks' order (reference §1.7).

Traversal is a depth-first walk over edges whose conditions hold for the host's attributes;
the nodes reached are the host's nodes. Order edges form a second graph with the pseudo-nodes
HEAD and TAIL:

1. every order node with in-degree 0 that cannot reach HEAD gets an edge HEAD -> node;
2. every order node with out-degree 0 that TAIL cannot reach gets an edge node -> TAIL;
3. reversed DFS finishing times give a topological order.

The final list is that order, keeping only traversed nodes; where TAIL comes, the traversed
nodes that no order edge mentions are inserted, alphabetically. So `<order head="TAIL">
<tail>x</tail></order>` puts x after all of them. The DFS visits siblings so that unrelated
nodes come out alphabetically, which makes the order deterministic. Order edges whose `gen`
is neither empty nor "kgen" are Rocks' other generators' and are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from provisioner.graph.errors import GraphError, where
from provisioner.graph.model import Edge, GraphFile, OrderEdge

HEAD = "HEAD"
TAIL = "TAIL"


@dataclass(frozen=True)
class Graph:
    """The merged edges and order edges of one graph (all of its files)."""

    name: str
    edges: tuple[Edge, ...]
    orders: tuple[OrderEdge, ...]
    cond_names: tuple[str, ...]  # sorted: the attributes edge conditions read

    @classmethod
    def merge(cls, name: str, files: Iterable[GraphFile]) -> Graph:
        edges: list[Edge] = []
        orders: list[OrderEdge] = []
        for f in files:
            edges.extend(f.edges)
            orders.extend(o for o in f.orders if o.gen in ("", "kgen"))
        names: set[str] = set()
        for e in edges:
            if e.cond is not None:
                names |= e.cond.names
        return cls(name, tuple(edges), tuple(orders), tuple(sorted(names)))

    def nodes(self) -> set[str]:
        out = {e.src for e in self.edges} | {e.dst for e in self.edges}
        out |= {o.head for o in self.orders} | {o.tail for o in self.orders}
        return out - {HEAD, TAIL}


@dataclass(frozen=True)
class Traversal:
    root: str
    nodes: frozenset[str]
    taken: tuple[Edge, ...]  # edges followed (their conditions held)
    pruned: tuple[Edge, ...]  # edges from reached nodes whose conditions failed


def traverse(graph: Graph, root: str, values: Mapping[str, str]) -> Traversal:
    out_edges: dict[str, list[Edge]] = {}
    for e in graph.edges:
        out_edges.setdefault(e.src, []).append(e)
    seen = {root}
    taken: list[Edge] = []
    pruned: list[Edge] = []
    stack = [root]
    while stack:
        node = stack.pop()
        for e in out_edges.get(node, ()):
            if e.cond is not None and not e.cond(values):
                pruned.append(e)
                continue
            taken.append(e)
            if e.dst not in seen:
                seen.add(e.dst)
                stack.append(e.dst)
    return Traversal(root, frozenset(seen), tuple(taken), tuple(pruned))


def order(graph: Graph, traversed: Iterable[str]) -> list[str]:
    """The traversed nodes in kickstart order (see the module docstring)."""
    wanted = set(traversed)
    succ: dict[str, list[str]] = {HEAD: [], TAIL: []}
    pred_count: dict[str, int] = {HEAD: 0, TAIL: 0}
    where_of: dict[tuple[str, str], OrderEdge] = {}
    for o in graph.orders:
        for n in (o.head, o.tail):
            succ.setdefault(n, [])
            pred_count.setdefault(n, 0)
        if o.tail not in succ[o.head]:
            succ[o.head].append(o.tail)
            pred_count[o.tail] += 1
            where_of[(o.head, o.tail)] = o
    mentioned = set(succ) - {HEAD, TAIL}

    def reach(start: str) -> set[str]:
        seen = {start}
        stack = [start]
        while stack:
            for nxt in succ[stack.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return seen

    reaches_head = {n for n in succ if HEAD in reach(n)}
    for n in sorted(succ):
        if n != HEAD and pred_count[n] == 0 and n not in reaches_head:
            succ[HEAD].append(n)
            pred_count[n] += 1
    from_tail = reach(TAIL)
    for n in sorted(succ):
        if n != TAIL and not succ[n] and n not in from_tail:
            succ[n].append(TAIL)
            pred_count[TAIL] += 1

    # Iterative DFS; children visited in reverse name order so that reversed finishing
    # times list siblings alphabetically.
    state: dict[str, int] = {}
    finished: list[str] = []
    starts = [HEAD] + sorted(n for n in succ if n != HEAD)
    for start in starts:
        if start in state:
            continue
        state[start] = 1
        stack: list[tuple[str, list[str]]] = [(start, sorted(succ[start], reverse=True))]
        while stack:
            node, children = stack[-1]
            if children:
                child = children.pop(0)
                if state.get(child) == 1:
                    edge = where_of.get((node, child))
                    place = f"{where(edge.path, edge.line)}: " if edge else ""
                    raise GraphError(f"{place}order edges form a cycle through '{child}'")
                if child not in state:
                    state[child] = 1
                    stack.append((child, sorted(succ[child], reverse=True)))
            else:
                state[node] = 2
                finished.append(node)
                stack.pop()

    result: list[str] = []
    for n in reversed(finished):
        if n == TAIL:
            result.extend(sorted(wanted - mentioned))
        elif n != HEAD and n in wanted:
            result.append(n)
    return result
