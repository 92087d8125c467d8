"""Conditions: Rocks' coercions, the allow-list, and errors that name file and line."""

from __future__ import annotations

import pytest

from provisioner.graph.cond import coerce, compile_cond, parse_expr
from provisioner.graph.errors import GraphError


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("yes", True),
        ("TRUE", True),
        ("on", True),
        ("y", True),
        ("no", False),
        ("False", False),
        ("off", False),
        ("n", False),
        ("42", 42),
        ("-3", -3),
        ("2.5", 2.5),
        ("compute", "compute"),
        (None, None),
    ],
)
def test_coercions(raw, value):
    result = coerce(raw)
    assert result == value and type(result) is type(value)


def truth(expr: str, **env: str) -> bool:
    return parse_expr(expr, "f.xml:1")(env)


def test_names_literals_comparisons_and_logic():
    assert truth("x11", x11="true")
    assert not truth("x11", x11="false")
    assert not truth("x11")  # unknown name is None
    assert truth("not ssh_use_dns", ssh_use_dns="no")
    assert truth("appliance != 'devel-server'", appliance="compute")
    assert truth("rank > 3 and rack == 0", rank="4", rack="0")
    assert truth("cpus >= 2.5 or gpu", cpus="3")
    assert truth("appliance in ('compute', 'nas')", appliance="nas")
    assert truth("appliance not in ['compute']", appliance="nas")
    assert truth("(a or b) and not c", b="yes", c="no")
    assert truth("missing is None")
    assert truth("rank == -1", rank="-1")


def test_comparisons_python_3_cannot_make_are_false():
    assert not truth("rank > 3")  # None > 3
    assert not truth("name in size", name="a", size="5")  # 'a' in 5


@pytest.mark.parametrize(
    ("expr", "what"),
    [
        ("__import__('os')", "a function call"),
        ("x.__class__", "attribute access"),
        ("x[0]", "a subscript"),
        ("(lambda: 1)()", "a function call"),
        ("lambda: 1", "a lambda"),
        ("[a for a in b]", "a comprehension"),
        ("f'{x}'", "an f-string"),
        ("(y := 1)", "an assignment"),
        ("a + b", "arithmetic"),
        ("{'a': 1}", "a dict"),
        ("a if b else c", "a conditional expression"),
    ],
)
def test_everything_else_is_refused_naming_file_and_line(expr, what):
    with pytest.raises(GraphError) as info:
        parse_expr(expr, "nodes/x.xml:7")
    message = str(info.value)
    assert message.startswith("nodes/x.xml:7: condition")
    assert what in message


def test_syntax_errors_and_statements_are_refused():
    with pytest.raises(GraphError, match="not valid"):
        parse_expr("import os", "x.xml:1")
    with pytest.raises(GraphError, match="not valid"):
        parse_expr("a ==", "x.xml:1")


def test_arch_os_release_lists_and_cond_are_anded():
    cond = compile_cond(
        {"arch": "i386, x86_64", "os": "linux", "cond": "x11"}, "graphs/default/a.xml:3"
    )
    assert cond is not None
    assert cond.names == frozenset({"arch", "os", "x11"})
    assert cond({"arch": "x86_64", "os": "linux", "x11": "yes"})
    assert not cond({"arch": "aarch64", "os": "linux", "x11": "yes"})
    assert not cond({"arch": "x86_64", "os": "linux", "x11": "no"})
    assert compile_cond({}, "x") is None
