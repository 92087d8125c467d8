"""Graph files, traversal with nested edge conditions, and Rocks' HEAD/TAIL order."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner.graph.errors import GraphError
from provisioner.graph.model import load_graph
from provisioner.graph.traverse import Graph, order, traverse


def graph(tmp_path: Path, body: str) -> Graph:
    path = tmp_path / "g.xml"
    path.write_text(f"<graph>{body}</graph>")
    return Graph.merge("default", [load_graph(path, "test")])


def test_edges_singleton_nested_to_and_from_with_anded_conditions(tmp_path):
    g = graph(
        tmp_path,
        """
        <edge from="compute" to="client"/>
        <edge from="client" cond="xen">
            <to>xen-base</to>
            <to arch="x86_64">xen-64</to>
        </edge>
        <edge to="client"><from>nas</from></edge>
        <edge from="client" to="x11" cond="x11"/>
        """,
    )
    t = traverse(g, "compute", {"xen": "yes", "arch": "i386", "x11": "no"})
    assert t.nodes == {"compute", "client", "xen-base"}
    t = traverse(g, "compute", {"xen": "yes", "arch": "x86_64", "x11": "on"})
    assert t.nodes == {"compute", "client", "xen-base", "xen-64", "x11"}
    assert traverse(g, "nas", {}).nodes == {"nas", "client"}
    assert g.cond_names == ("arch", "x11", "xen")
    pruned = {(e.src, e.dst) for e in traverse(g, "compute", {}).pruned}
    assert ("client", "x11") in pruned


def test_order_head_tail_and_alphabetical_rest(tmp_path):
    g = graph(
        tmp_path,
        """
        <order tail="HEAD"><head>partitions-save</head></order>
        <order head="HEAD" tail="base"/>
        <order head="partition"><tail>do-partition</tail></order>
        <order head="TAIL"><tail>install</tail><tail>pxeboot</tail></order>
        <order head="install" tail="pxeboot"/>
        <order head="unused" tail="base" gen="solaris"/>
        """,
    )
    nodes = [
        "zeta", "alpha", "base", "partition", "do-partition", "pxeboot", "install",
        "partitions-save", "middle",
    ]  # fmt: skip
    assert order(g, nodes) == [
        "partitions-save",
        "base",
        "partition",
        "do-partition",
        "alpha",
        "middle",
        "zeta",
        "install",
        "pxeboot",
    ]


def test_order_drops_untraversed_nodes(tmp_path):
    g = graph(tmp_path, '<order head="a" tail="b"/><order head="b" tail="c"/>')
    assert order(g, ["c", "a", "x"]) == ["a", "c", "x"]


def test_order_cycle_is_an_error_naming_the_file(tmp_path):
    g = graph(tmp_path, '<order head="a" tail="b"/><order head="b" tail="a"/>')
    with pytest.raises(GraphError, match=r"g\.xml:1: order edges form a cycle"):
        order(g, ["a", "b"])


def test_edge_without_ends_or_with_references_is_refused(tmp_path):
    with pytest.raises(GraphError, match="needs both a from and a to"):
        graph(tmp_path, '<edge from="a"/>')
    with pytest.raises(GraphError, match="attribute references are not allowed"):
        graph(tmp_path, '<edge from="a" to="&x;"/>')
