"""A graph in Graphviz dot, optionally with one traversal marked (`rocks report host graph`)."""

from __future__ import annotations

from provisioner.graph.traverse import Graph, Traversal


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def to_dot(graph: Graph, traversal: Traversal | None, title: str = "") -> str:
    """Nodes the traversal reached are filled (the root doubly outlined), followed edges are
    bold, edges whose conditions failed are dashed and labelled with the condition; order
    edges are not drawn."""
    name = f"{graph.name}: {title}" if title else graph.name
    lines = [
        f"digraph {_q(name)} {{",
        "\trankdir=LR;",
        '\tnode [shape=box, style="rounded", fontname="Helvetica"];',
        '\tedge [fontname="Helvetica", fontsize=9];',
    ]
    reached = traversal.nodes if traversal else frozenset()
    nodes = sorted(graph.nodes() | set(reached))
    for n in nodes:
        attrs = []
        if n in reached:
            attrs.append('style="rounded,filled", fillcolor="#cfe2ff"')
        if traversal and n == traversal.root:
            attrs.append("peripheries=2")
        lines.append(f"\t{_q(n)}" + (f" [{', '.join(attrs)}];" if attrs else ";"))
    taken = {id(e) for e in traversal.taken} if traversal else set()
    pruned = {id(e) for e in traversal.pruned} if traversal else set()
    for e in graph.edges:
        attrs = []
        if e.cond is not None:
            attrs.append(f"label={_q(e.cond.source)}")
        if id(e) in taken:
            attrs.append('color="#0d6efd", penwidth=2')
        elif id(e) in pruned:
            attrs.append('style=dashed, color="#999999"')
        elif traversal is not None:
            attrs.append('color="#bbbbbb"')
        lines.append(
            f"\t{_q(e.src)} -> {_q(e.dst)}" + (f" [{', '.join(attrs)}];" if attrs else ";")
        )
    lines.append("}")
    return "\n".join(lines) + "\n"
