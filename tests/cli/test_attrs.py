"""Attributes at every level, their precedence and SOURCE, and report host attr."""

from __future__ import annotations

import ast
import json


def attr(rocks, host: str, name: str) -> tuple[str, str]:
    rows = json.loads(rocks.ok(f"list host attr {host} attr={name} output-format=json"))
    assert len(rows) == 1, rows
    return rows[0]["value"], rows[0]["source"]


def test_levels_override_in_order_i_g_o_a_h(rocks):
    rocks.ok("add host compute-0-0")
    rocks.ok("set attr color green")
    assert attr(rocks, "compute-0-0", "color") == ("green", "G")
    rocks.ok("set os attr linux color olive")
    assert attr(rocks, "compute-0-0", "color") == ("olive", "O")
    rocks.ok("set appliance attr compute color teal")
    assert attr(rocks, "compute-0-0", "color") == ("teal", "A")
    rocks.ok("set host attr compute-0-0 color red")
    assert attr(rocks, "compute-0-0", "color") == ("red", "H")
    # Removing a level falls back to the next one down.
    rocks.ok("remove host attr compute-0-0 color")
    assert attr(rocks, "compute-0-0", "color") == ("teal", "A")
    rocks.ok("remove appliance attr compute color")
    rocks.ok("remove os attr linux color")
    assert attr(rocks, "compute-0-0", "color") == ("green", "G")
    # Another appliance never sees the compute level.
    rocks.ok("add host nas-0-0")
    rocks.ok("set appliance attr compute color teal")
    assert attr(rocks, "nas-0-0", "color") == ("green", "G")


def test_intrinsic_can_be_overridden(rocks):
    rocks.ok("add host compute-2-3")
    assert attr(rocks, "compute-2-3", "rack") == ("2", "I")
    assert attr(rocks, "compute-2-3", "hostname") == ("compute-2-3", "I")
    assert attr(rocks, "compute-2-3", "membership") == ("Compute", "I")
    rocks.ok("set attr rack 9")
    assert attr(rocks, "compute-2-3", "rack") == ("9", "G")


def test_os_and_arch_are_host_properties(rocks):
    rocks.ok("add host compute-0-0 arch=i386")
    assert attr(rocks, "compute-0-0", "arch") == ("i386", "H")
    rocks.ok("set host attr compute-0-0 arch x86_64")
    assert (
        json.loads(rocks.ok("list host attr compute-0-0 attr=arch output-format=json"))[0]["value"]
        == "x86_64"
    )
    assert "cannot be removed" in rocks("remove host attr compute-0-0 arch").err


def test_list_host_attr_is_sorted_with_source(rocks):
    out = rocks.ok("list host attr frontend")
    lines = out.splitlines()
    assert lines[0].split() == ["HOST", "ATTR", "VALUE", "SOURCE"]
    keys = [line.split()[1] for line in lines[1:]]
    assert keys == sorted(keys)
    assert any(line.split()[1:] == ["Kickstart_PrivateAddress", "10.1.1.1", "G"] for line in lines)


def test_set_host_attr_on_several_hosts_and_key_value_form(rocks):
    rocks.ok("add host compute-0-0")
    rocks.ok("add host compute-0-1")
    rocks.ok("set host attr compute attr=x11 value=true")
    assert attr(rocks, "compute-0-1", "x11") == ("true", "H")
    assert attr(rocks, "compute-0-0", "x11") == ("true", "H")


def test_values_with_spaces_colons_and_quotes(rocks):
    rocks.ok("add host compute-0-0")
    rocks.ok("set", "host", "attr", "compute-0-0", "motd", 'a "b": c & <d>')
    assert attr(rocks, "compute-0-0", "motd") == ('a "b": c & <d>', "H")
    assert rocks.ok("report host attr compute-0-0 attr=motd") == 'a "b": c & <d>\n'


def test_attribute_names_are_checked(rocks):
    assert "bad attribute name '1abc'" in rocks("set attr 1abc x").err
    assert "bad attribute name" in rocks("set host attr frontend 'a b' x").err


def test_remove_of_missing_attribute_says_so(rocks):
    assert rocks("remove attr nosuch").err == "error: attribute 'nosuch' is not set globally\n"
    assert rocks("remove appliance attr compute nosuch").err == (
        "error: attribute 'nosuch' is not set for appliance compute\n"
    )


def test_list_attr_levels(rocks):
    rocks.ok("set os attr linux HttpRoot /var/www/html")
    assert rocks.ok("list os attr") == "OS     ATTR     VALUE\nlinux: HttpRoot /var/www/html\n"
    rows = json.loads(rocks.ok("list appliance attr compute output-format=json"))
    assert {"appliance": "compute", "attr": "kickstartable", "value": "yes"} in rows
    assert "unknown appliance 'toaster'" in rocks("list appliance attr toaster").err
    assert rocks.ok("list attr Kickstart_Lang") == "ATTR            VALUE\nKickstart_Lang: en_US\n"


def test_report_host_attr_is_site_attrs(rocks):
    rocks.ok("add host compute-0-0")
    out = rocks.ok("report host attr compute-0-0")
    lines = out.splitlines()
    assert "hostname:compute-0-0" in lines
    assert "Kickstart_PrivateAddress:10.1.1.1" in lines
    assert lines == sorted(lines, key=lambda line: line.split(":", 1)[0])
    # The site.attrs parser reads back exactly what list host attr shows.
    import tempfile
    from pathlib import Path

    from provisioner.services.frontend import read_site_attrs

    with tempfile.NamedTemporaryFile("w", suffix=".attrs", delete=False) as fh:
        fh.write(out)
    parsed = read_site_attrs(Path(fh.name))
    listed = {
        r["attr"]: r["value"]
        for r in json.loads(rocks.ok("list host attr compute-0-0 output-format=json"))
    }
    assert parsed == listed
    d = ast.literal_eval(rocks.ok("report host attr compute-0-0 pydict=yes"))
    assert d == listed
    assert rocks.ok("report host attr compute-0-0 attr=rack") == "0\n"


def test_report_host_attr_of_several_hosts_prefixes_lines(rocks):
    rocks.ok("add host compute-0-0")
    out = rocks.ok("report host attr compute-0-0 frontend")
    assert "frontend: hostname:frontend" in out.splitlines()
    assert "compute-0-0: hostname:compute-0-0" in out.splitlines()
