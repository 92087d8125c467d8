"""The renderer's caches: file changes, database changes, shared templates; and <eval>."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from provisioner.db.reader import Reader
from provisioner.graph.errors import GraphError
from provisioner.kickstart.renderer import KickstartRenderer
from provisioner.services.hostargs import resolve_host


@pytest.fixture
def renderer(config, hooks):
    return KickstartRenderer(config, hooks, check_interval=0)


def render(renderer: KickstartRenderer, config, name: str) -> str:
    with Reader.connect(config.db_url) as reader:
        return renderer.render(reader, resolve_host(reader, name))


def test_a_changed_node_file_is_seen_on_the_next_render(cluster, config, renderer, site):
    first = render(renderer, config, "compute-0-0")
    assert "site-was-here" not in first
    path = site / "nodes" / "extend-compute.xml"
    path.write_text("<kickstart><post>echo site-was-here</post></kickstart>")
    assert "echo site-was-here\n" in render(renderer, config, "compute-0-0")
    path.write_text("<kickstart><post>echo site-changed-it</post></kickstart>")
    os.utime(path, ns=(10**18, 10**18))  # a different mtime even on coarse clocks
    text = render(renderer, config, "compute-0-0")
    assert "site-changed-it" in text and "site-was-here" not in text
    path.unlink()
    assert render(renderer, config, "compute-0-0") == first


def test_database_changes_are_seen_through_the_generation(cluster, config, renderer):
    assert "timezone America/Los_Angeles --utc\n" in render(renderer, config, "compute-0-0")
    cluster.ok("set attr Kickstart_Timezone Europe/Paris")
    assert "timezone Europe/Paris --utc\n" in render(renderer, config, "compute-0-0")
    cluster.ok("set appliance attr compute Kickstart_Timezone Asia/Tokyo")
    assert "timezone Asia/Tokyo --utc\n" in render(renderer, config, "compute-0-0")
    cluster.ok("set host attr compute-0-0 x11 true")  # an edge condition: another traversal
    assert "@^graphical-server-environment" in render(renderer, config, "compute-0-0")


def test_hosts_with_the_same_conditions_share_one_template(cluster, config, renderer):
    cluster.ok("add host compute-0-1")
    a = render(renderer, config, "compute-0-0")
    b = render(renderer, config, "compute-0-1")
    assert a.replace("compute-0-0", "X").replace("rank 0", "rank N") == b.replace(
        "compute-0-1", "X"
    ).replace("rank 1", "rank N")
    assert len(renderer._templates.data) == 1
    assert "Compute node compute-0-1: rack 0, rank 1." in b


def test_concurrent_renders_agree(cluster, config, renderer):
    expected = render(renderer, config, "nas-0-0")
    results: list[str] = []

    def work():
        with Reader.connect(config.db_url) as reader:
            host = resolve_host(reader, "nas-0-0")
            for _ in range(20):
                results.append(renderer.render(reader, host))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 80 and set(results) == {expected}


EVAL_NODE = """<kickstart>
<post>
echo <eval shell="sh">printf '%s' "$hostname-$rack"</eval>
<eval mode="xml">echo '&amp;lt;ok&amp;gt;'</eval>
</post>
</kickstart>
"""


def test_eval_is_refused_unless_enabled(cluster, config, hooks, site):
    (site / "nodes" / "extend-compute.xml").write_text(EVAL_NODE)
    off = KickstartRenderer(config, hooks, check_interval=0)
    with pytest.raises(GraphError, match=r"extend-compute\.xml:3: <eval> .* disabled"):
        render(off, config, "compute-0-0")
    on = KickstartRenderer(config.with_(eval_enabled=True), hooks, check_interval=0)
    text = render(on, config, "compute-0-0")
    assert "echo compute-0-0-0\n<ok>\n" in text


def test_appliance_graph_and_node_come_from_the_database(cluster, config, renderer, site):
    (site / "nodes" / "login.xml").write_text("<kickstart><post>echo login node</post></kickstart>")
    (site / "graphs" / "default").mkdir(parents=True)
    (site / "graphs" / "default" / "login.xml").write_text(
        '<graph><edge from="login" to="client"/></graph>'
    )
    cluster.ok("add appliance login membership=Login node=login")
    cluster.ok("add host login-0-0 membership=login")
    text = render(renderer, config, "login-0-0")
    assert "echo login node\n" in text and "# client " in text
    assert Path(config.site_profiles_dir).is_dir()
