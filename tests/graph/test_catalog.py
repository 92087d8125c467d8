"""The search path: site first, extend- appends, replace- replaces, caches follow the files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from provisioner.graph.catalog import NodeCatalog
from provisioner.graph.errors import GraphError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def node(body: str) -> str:
    return f"<kickstart>{body}</kickstart>"


@pytest.fixture
def dirs(tmp_path):
    site, roll, other = tmp_path / "site", tmp_path / "base", tmp_path / "xen"
    write(roll / "nodes" / "compute.xml", node("<post>base compute</post>"))
    write(roll / "nodes" / "client.xml", node("<post>base client</post>"))
    write(roll / "graphs" / "default" / "base.xml", '<graph><edge from="a" to="b"/></graph>')
    write(other / "nodes" / "extend-compute.xml", node("<post>xen extends compute</post>"))
    write(other / "graphs" / "default" / "xen.xml", '<graph><edge from="b" to="c"/></graph>')
    return [(site, "site"), (roll, "base"), (other, "xen")]


def posts(catalog: NodeCatalog, name: str) -> list[str]:
    return [c.text for f in catalog.node_files(name) for c in f.root.children]


def test_extend_appends_rolls_first_then_the_site(dirs):
    site = dirs[0][0]
    write(site / "nodes" / "extend-compute.xml", node("<post>site extends compute</post>"))
    catalog = NodeCatalog(dirs, check_interval=0)
    assert posts(catalog, "compute") == [
        "base compute",
        "xen extends compute",
        "site extends compute",
    ]
    assert [f.kind for f in catalog.node_files("compute")] == ["node", "extend", "extend"]


def test_replace_replaces_the_node_and_its_extensions(dirs):
    site = dirs[0][0]
    write(site / "nodes" / "replace-compute.xml", node("<post>site compute</post>"))
    catalog = NodeCatalog(dirs, check_interval=0)
    assert posts(catalog, "compute") == ["site compute"]
    assert posts(catalog, "client") == ["base client"]


def test_graph_files_merge_and_replace(dirs):
    catalog = NodeCatalog(dirs, check_interval=0)
    edges = [(e.src, e.dst) for f in catalog.graph_files("default") for e in f.edges]
    assert edges == [("a", "b"), ("b", "c")]
    write(
        dirs[0][0] / "graphs" / "default" / "replace-base.xml",
        '<graph><edge from="a" to="z"/></graph>',
    )
    edges = [(e.src, e.dst) for f in catalog.graph_files("default") for e in f.edges]
    assert sorted(edges) == [("a", "z"), ("b", "c")]


def test_unknown_node_names_the_search_path(dirs):
    with pytest.raises(GraphError, match="cannot find node 'nope'"):
        NodeCatalog(dirs, check_interval=0).node_files("nope")


def test_changed_added_and_removed_files_are_seen(dirs):
    catalog = NodeCatalog(dirs, check_interval=0)
    v1 = catalog.version
    first = catalog.node_files("client")[0]
    assert catalog.node_files("client")[0] is first  # cached while unchanged
    assert catalog.version == v1

    path = dirs[1][0] / "nodes" / "client.xml"
    path.write_text(node("<post>edited client, longer</post>"))
    os.utime(path, ns=(1, 1))
    assert catalog.version > v1
    assert posts(catalog, "client") == ["edited client, longer"]

    added = write(dirs[0][0] / "nodes" / "replace-client.xml", node("<post>site client</post>"))
    assert posts(catalog, "client") == ["site client"]
    added.unlink()
    assert posts(catalog, "client") == ["edited client, longer"]


def test_check_interval_limits_how_often_files_are_listed(dirs):
    catalog = NodeCatalog(dirs, check_interval=3600)
    v1 = catalog.version
    write(dirs[0][0] / "nodes" / "replace-client.xml", node("<post>site</post>"))
    assert catalog.version == v1  # not looked at yet
    catalog.refresh(force=True)
    assert posts(catalog, "client") == ["site"]
