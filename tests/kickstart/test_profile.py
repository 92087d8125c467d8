"""`rocks list host profile/xml`, `list node xml`, `report host graph` on both databases:
valid kickstarts for every default appliance, attributes, escaping, errors, site-profiles."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from provisioner.kickstart.validate import validate

# The seed's partitioning programs, kept as the worked examples of the site-profiles/ skeleton.
SEEDS = Path(__file__).resolve().parents[2] / "site-profiles" / "examples"

HOSTS = ("compute-0-0", "frontend", "nas-0-0", "vm-container-0-0")


def test_every_default_appliance_gets_a_kickstart_ksvalidator_accepts(cluster, tmp_path):
    files = []
    for host in HOSTS:
        text = cluster.ok(f"list host profile {host}")
        assert validate(text, "RHEL9") == [], host
        assert "%include /tmp/partition-info\n" in text
        assert text.count("%end") == text.count("\n%pre") + text.count("\n%post") + 1
        path = tmp_path / f"{host}.ks"
        path.write_text(text)
        files.append(str(path))
    ksvalidator = Path(sys.executable).with_name("ksvalidator")
    result = subprocess.run(
        [str(ksvalidator), "-v", "RHEL9", *files], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compute_kickstart_content(cluster):
    text = cluster.ok("list host profile compute-0-0")
    assert "url --url http://10.1.1.1/install/rocks-dist/x86_64\n" in text
    assert "network --bootproto=dhcp --hostname=compute-0-0.local --activate\n" in text
    # Traversal comment block: every node with the file it came from, in order.
    order = re.findall(r"^# (\S+)\s+base:nodes/(\S+)\.xml$", text, re.M)
    assert [n for n, _ in order][:2] == ["partitions-save", "base"]
    assert order[-1] == ("pxeboot", "pxeboot")
    assert {n for n, _ in order} >= {"client", "compute", "ssh", "partition", "ntp-client"}
    # Packages: meta groups as @group, sorted, one list.
    packages = text.split("%packages --ignoremissing\n")[1].split("%end")[0].split()
    assert packages == sorted(packages) and "@core" in packages and "gcc" in packages
    # The install-done callback is the last %post; partitions are reported first.
    posts = text.split("\n%post")
    assert "partitions" in posts[1] and "--nochroot" in posts[1]
    assert "setPxeboot.cgi" in posts[-1]
    # The helper's %pre comes first, the partitioning decision last.
    pres = [p.split("%end")[0] for p in text.split("\n%pre")[1:]]
    assert "rocks_partition.py" in pres[0] and "do_partition()" in pres[-1]


def test_bootflags_reach_bootloader_append(cluster):
    cluster.ok('set host bootflags compute-0-0 flags="dom0_mem=1024M ucsd=rocks"')
    cluster.ok('set bootflags flags="console=ttyS0,115200"')
    text = cluster.ok("list host profile compute-0-0")
    assert 'bootloader --location=mbr --append="dom0_mem=1024M ucsd=rocks"\n' in text
    text = cluster.ok("list host profile nas-0-0")
    assert 'bootloader --location=mbr --append="console=ttyS0,115200"\n' in text
    assert validate(text) == []


def test_tag_conditions_are_evaluated_on_the_server(cluster):
    text = cluster.ok("list host profile compute-0-0")
    assert "skipx\n" in text and "graphical" not in text and "UseDNS" not in text
    cluster.ok("set host attr compute-0-0 x11 yes")
    cluster.ok("set host attr compute-0-0 ssh_use_dns no")
    text = cluster.ok("list host profile compute-0-0")
    assert "skipx" not in text and "@^graphical-server-environment\n" in text
    assert "UseDNS no\n" in text
    assert validate(text) == []


def test_values_are_escaped_in_xml_and_literal_in_the_kickstart(cluster, site):
    (site / "nodes" / "extend-compute.xml").write_text(
        "<kickstart>\n<post>echo '&weird;'\n"
        '<file name="/etc/weird" owner="root.root" perms="0600">&weird;</file>\n'
        "</post>\n<package>&extra_pkg;</package>\n</kickstart>\n"
    )
    weird = 'a<b & "c"'
    cluster("set", "host", "attr", "compute-0-0", "weird", weird)
    cluster.ok("set host attr compute-0-0 extra_pkg htop")
    xml = cluster.ok("list host xml compute-0-0")
    assert 'a&lt;b &amp; "c"' in xml and weird not in xml
    root = etree.fromstring(xml.encode())
    post = [p for p in root.iter("post") if "extend-compute" in p.get("file", "")][0]
    assert post.text == f"echo '{weird}'\n"
    assert post.find("file").text == weird
    text = cluster.ok("list host profile compute-0-0")
    assert f"echo '{weird}'\n" in text
    assert f"cat > /etc/weird << 'ROCKS_EOF'\n{weird}\nROCKS_EOF\n" in text
    assert "chown root:root /etc/weird\nchmod 0600 /etc/weird\n" in text
    assert "\nhtop\n" in text  # a package named by an attribute


def test_undefined_attribute_is_an_error_naming_file_line_and_attribute(cluster, site):
    path = site / "nodes" / "extend-compute.xml"
    path.write_text("<kickstart>\n<post>\necho &no_such_attr;\n</post>\n</kickstart>\n")
    result = cluster("list host profile compute-0-0")
    assert result.status != 0 and result.out == ""
    assert result.err.strip() == f"error: {path}:3: undefined attribute 'no_such_attr'"
    # The same host with the attribute set renders.
    cluster.ok("set host attr compute-0-0 no_such_attr defined")
    assert "echo defined\n" in cluster.ok("list host profile compute-0-0")


def test_a_malicious_site_file_fails_the_host_with_one_line(cluster, site):
    path = site / "nodes" / "replace-compute.xml"
    path.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>\n'
        "<kickstart><post>&e;</post></kickstart>\n"
    )
    result = cluster("list host profile compute-0-0")
    assert result.status != 0 and result.out == ""
    assert str(path) in result.err and "DOCTYPE" in result.err
    assert len(result.err.strip().splitlines()) == 1
    # Hosts that do not traverse it are not affected.
    assert cluster.ok("list host profile nas-0-0").startswith("#\n# Kickstart for nas-0-0")


def _without_partition_node(text: str) -> str:
    """The kickstart less what the partition node contributes (its %pre sections and its line
    in the traversal comment)."""
    text = re.sub(
        r"\n# \w+:nodes/(replace-)?partition\.xml line \d+\n%pre .*?\n%end\n",
        "\n",
        text,
        flags=re.S,
    )
    return re.sub(r"^# partition\s+\S+\n", "", text, flags=re.M)


@pytest.mark.parametrize(
    "seed",
    [
        "replace-partition-shell.xml",
        "replace-partition-python-one-disk.xml",
        "replace-partition-python-two-disks.xml",
    ],
)
def test_site_replace_partition_changes_only_the_partitioning(cluster, site, seed):
    before = cluster.ok("list host profile compute-0-0")
    shutil.copy(SEEDS / seed, site / "nodes" / "replace-partition.xml")
    after = cluster.ok("list host profile compute-0-0")
    assert after != before
    assert _without_partition_node(after) == _without_partition_node(before)
    assert "# partition        site:nodes/replace-partition.xml\n" in after
    assert 'echo "rocks force-default-root-disk-only"' not in after
    if "python" in seed:
        # Legacy interpreter and <var> references, as in the seed, made current.
        assert "--interpreter=/usr/bin/python3\n\nimport rocks_partition" not in after
        assert (
            "%pre --log=/tmp/ks-pre.log --interpreter=/usr/bin/python3\nimport rocks_partition"
            in after
        )
        assert "membership = 'Compute'\nnodename = 'compute-0-0'\n" in after
    else:
        assert 'echo "clearpart --all --initlabel --drives=hda\n' in after
    assert validate(after) == []
    # Every appliance traverses the partition node, so the NAS gets the site's too.
    assert "site:nodes/replace-partition.xml" in cluster.ok("list host profile nas-0-0")


def test_partition_rows_are_embedded_and_removed(cluster, engine):
    from provisioner.db.engine import transaction
    from provisioner.db.reader import Reader
    from provisioner.services.hostargs import resolve_host
    from provisioner.services.partitions import replace_partitions

    with transaction(engine) as session:
        host = resolve_host(Reader.for_session(session), "compute-0-0")
        replace_partitions(
            session,
            host.id,
            [
                {"device": "sda1", "mountpoint": "/", "sectorstart": "2048s",
                 "partitionsize": "32768000s", "fstype": "ext4"},
                {"device": "sda4", "mountpoint": "/state/partition1", "sectorstart": "43059200s",
                 "partitionsize": "1000s", "fstype": "ext4"},
            ],
        )  # fmt: skip
    text = cluster.ok("list host profile compute-0-0")
    line = text.split("cat > \"$T/rocks_partition.json\" << 'ROCKS_PARTITION_EOF'\n")[1]
    import json

    data = json.loads(line.split("\n")[0])
    assert data["host"] == "compute-0-0" and data["frontend"] is False
    assert [r["device"] for r in data["partitions"]] == ["sda1", "sda4"]
    assert data["partitions"][1]["mountpoint"] == "/state/partition1"
    cluster.ok("remove host partition compute-0-0")
    text = cluster.ok("list host profile compute-0-0")
    assert '"partitions": []' in text


def test_list_host_xml_marks_files_and_false_conditions(cluster):
    xml = cluster.ok("list host xml compute-0-0")
    root = etree.fromstring(xml.encode())
    assert root.get("host") == "compute-0-0" and root.get("root") == "compute"
    files = {el.get("file") for el in root if isinstance(el.tag, str)}
    assert "base:nodes/compute.xml" in files and "base:nodes/pxeboot.xml" in files
    comments = [c.text for c in root.iter(etree.Comment)]
    assert any("<rootpw>" in c and "condition false" in c for c in comments)
    url = root.find("main").find("url")
    assert url.text == "--url http://10.1.1.1/install/rocks-dist/x86_64"


def test_list_node_xml_for_a_frontend_build(cluster, tmp_path):
    attrs = tmp_path / "site.attrs"
    attrs.write_text(
        "Kickstart_PrivateHostname:newfe\nKickstart_PrivateAddress:10.2.1.1\n"
        "Kickstart_PrivateNetmask:255.255.0.0\nKickstart_PrivateNetwork:10.2.0.0\n"
        "Kickstart_PrivateNetmaskCIDR:16\nKickstart_PrivateDNSDomain:local\n"
        "Kickstart_PrivateKickstartHost:10.2.1.1\nKickstart_PrivateKickstartBasedir:install\n"
        "Kickstart_Lang:en_US\nKickstart_Keyboard:us\nKickstart_Timezone:Europe/Paris\n"
        "Kickstart_PublicNTPHost:pool.ntp.org\nServer_Partitioning:force-default\n"
        "Kickstart_PrivateRootPassword:$6$salt$abc\n"
    )
    text = cluster.ok(f"list node xml root attrs={attrs} format=kickstart")
    assert validate(text) == []
    assert "timezone Europe/Paris --utc\n" in text
    assert "rootpw --iscrypted $6$salt$abc\n" in text
    assert 'echo "rocks force-default" > /tmp/user_partition_info' in text
    assert "# root " in text and "# server " in text
    xml = cluster.ok(f"list node xml server attrs={attrs}")
    assert etree.fromstring(xml.encode()).get("root") == "server"
    bad = cluster("list", "node", "xml", "root", "attrs={'a': __import__('os')}")
    assert bad.status != 0 and "dict literal" in bad.err
    missing = cluster("list", "node", "xml", "root", "attrs={'Kickstart_Lang': 'C'}")
    assert missing.status != 0 and "undefined attribute" in missing.err


def test_report_host_graph_marks_the_path(cluster):
    dot = cluster.ok("report host graph compute-0-0")
    assert dot.startswith('digraph "default: compute-0-0" {')
    assert re.search(r'"compute" \[style="rounded,filled".*peripheries=2\];', dot)
    assert re.search(r'"client" -> "base" \[color="#0d6efd"', dot)
    assert re.search(r'"base" -> "x11" \[label="x11", style=dashed', dot)
    assert '\t"server";' in dot  # not reached by compute-0-0
    whole = cluster.ok("report host graph")
    assert "filled" not in whole and '"root" -> "server";' in whole


def test_appliance_without_root_node_is_not_installed(cluster):
    cluster.ok("add host switch-0-0 membership=network")
    result = cluster("list host profile switch-0-0")
    assert result.status != 0 and "has no root node" in result.err


def test_validate_parameter_checks_with_pykickstart(cluster, site):
    assert cluster.ok("list host profile nas-0-0 validate=yes").startswith("#\n# Kickstart")
    (site / "nodes" / "extend-nas.xml").write_text(
        "<kickstart><main><frobnicate>--now</frobnicate></main></kickstart>"
    )
    result = cluster("list host profile nas-0-0 validate=yes")
    assert result.status != 0
    assert "kickstart not valid: nas-0-0:" in result.err and "frobnicate" in result.err


def test_legacy_main_commands_are_dropped_and_later_nodes_override(cluster, site):
    (site / "nodes" / "extend-compute.xml").write_text(
        "<kickstart><main><install/><lilo>--location=mbr</lilo>"
        "<timezone>Etc/UTC --utc</timezone></main></kickstart>"
    )
    text = cluster.ok("list host profile compute-0-0")
    assert "\ninstall\n" not in text and "# dropped 'install'" in text
    assert text.count("\ntimezone ") == 1 and "timezone Etc/UTC --utc\n" in text
    assert text.count("\nbootloader ") == 1
    assert validate(text) == []


def test_shared_renderer_is_one_per_configuration(config, hooks):
    from provisioner.kickstart.renderer import shared_renderer

    assert shared_renderer(config, hooks) is shared_renderer(config, hooks)
    assert shared_renderer(config.with_(eval_enabled=True), hooks) is not shared_renderer(
        config, hooks
    )


def test_shared_renderer_uses_the_callers_hooks(config, hooks, monkeypatch):
    """One plugin manager per process: the renderer kept for the process is built with the
    caller's hooks, never with a manager of its own."""
    import provisioner.hooks
    from provisioner.kickstart.renderer import shared_renderer

    def no_second_manager(*args, **kwargs):
        raise AssertionError("shared_renderer built a plugin manager of its own")

    monkeypatch.setattr(provisioner.hooks, "get_plugin_manager", no_second_manager)
    own = config.with_(eval_enabled=not config.eval_enabled)
    assert shared_renderer(own, hooks).hooks is hooks


def test_list_node_xml_needs_no_database_with_attrs(tmp_path, hooks):
    from provisioner.config import Config
    from provisioner.plugins.base.attributes import ATTRIBUTES
    from provisioner.testing.pytest_plugin import Rocks

    rocks = Rocks(Config.for_home(tmp_path / "nothing-here"), hooks)
    attrs = {a.name: a.default for a in ATTRIBUTES if a.default is not None}
    attrs.update(
        Kickstart_PrivateKickstartHost="10.1.1.1", Kickstart_PrivateAddress="10.1.1.1",
        Kickstart_PrivateNetmask="255.255.0.0", Kickstart_PrivateNetwork="10.1.0.0",
        Kickstart_PrivateNetmaskCIDR="16", Kickstart_PrivateHostname="fe",
    )  # fmt: skip
    text = rocks.ok("list", "node", "xml", "root", "format=kickstart", f"attrs={attrs!r}")
    assert validate(text) == [] and "--hostname=fe.local" in text
    assert rocks("list node xml root").status != 0  # without attrs= it needs the database
