"""Conditions of edges and tags: `arch=`, `os=`, `release=` lists and the `cond=` expression.

Rocks `eval`ed `cond=` as Python. We parse it with `ast` (parsing runs nothing) and accept only
an allow-list: names, string/number/boolean/None literals, tuples or lists of literals,
comparisons (`==`, `!=`, `<`, `<=`, `>`, `>=`, `in`, `not in`, `is`, `is not`), `and`, `or`,
`not`, unary minus and parentheses. Everything else (calls, attribute access, subscripts,
lambdas, comprehensions, f-strings...) is refused when the file loads, naming file and line.
The tree is turned into closures once; evaluating never calls `eval`.

Values follow Rocks' `_CondEnv`: an unknown name is None; `yes/no/true/false/on/off/y/n`
(any case) are booleans; then int; then float; else the string. A comparison that Python 3
cannot make (None < 3) is false, where Python 2 used to answer something arbitrary.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from provisioner.graph.errors import GraphError

MAX_LENGTH = 2000
_TRUE = frozenset({"on", "true", "yes", "y"})
_FALSE = frozenset({"off", "false", "no", "n"})

Env = Mapping[str, str]
Fn = Callable[[Env], Any]


def coerce(value: str | None) -> Any:
    """Rocks' value coercion for conditions."""
    if value is None:
        return None
    low = value.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        return value


_COMPARE: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}

_REFUSED: dict[type, str] = {
    ast.Call: "a function call",
    ast.Attribute: "attribute access",
    ast.Subscript: "a subscript",
    ast.Lambda: "a lambda",
    ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a comprehension",
    ast.JoinedStr: "an f-string",
    ast.NamedExpr: "an assignment",
    ast.Starred: "unpacking",
    ast.Dict: "a dict",
    ast.BinOp: "arithmetic",
    ast.IfExp: "a conditional expression",
    ast.Await: "await",
    ast.Yield: "yield",
}


class _Refused(Exception):
    pass


def _build(node: ast.AST, names: set[str]) -> Fn:
    if isinstance(node, ast.BoolOp):
        parts = [_build(v, names) for v in node.values]
        if isinstance(node.op, ast.And):
            return lambda env: all(p(env) for p in parts)
        return lambda env: any(p(env) for p in parts)
    if isinstance(node, ast.UnaryOp):
        inner = _build(node.operand, names)
        if isinstance(node.op, ast.Not):
            return lambda env: not inner(env)
        if isinstance(node.op, ast.USub | ast.UAdd) and isinstance(node.operand, ast.Constant):
            value = node.operand.value
            if isinstance(value, int | float) and not isinstance(value, bool):
                const = -value if isinstance(node.op, ast.USub) else value
                return lambda env: const
        raise _Refused("this operator")
    if isinstance(node, ast.Compare):
        left = _build(node.left, names)
        ops = [_COMPARE[type(op)] for op in node.ops]
        rights = [_build(c, names) for c in node.comparators]

        def compare(env: Env) -> bool:
            a = left(env)
            for op, right in zip(ops, rights, strict=True):
                b = right(env)
                try:
                    if not op(a, b):
                        return False
                except TypeError:
                    return False
                a = b
            return True

        return compare
    if isinstance(node, ast.Name):
        name = node.id
        names.add(name)
        return lambda env: coerce(env.get(name))
    if isinstance(node, ast.Constant):
        if not isinstance(node.value, str | int | float | bool | type(None)):
            raise _Refused("this literal")
        value = node.value
        return lambda env: value
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        items = []
        for elt in node.elts:
            if not isinstance(elt, ast.Constant) or not isinstance(
                elt.value, str | int | float | bool | type(None)
            ):
                raise _Refused("a list of anything but literals")
            items.append(elt.value)
        frozen = tuple(items)
        return lambda env: frozen
    raise _Refused(_REFUSED.get(type(node), type(node).__name__))


@dataclass(frozen=True)
class Cond:
    """A compiled condition; `names` are the attributes it reads (for cache keys)."""

    source: str
    names: frozenset[str]
    fn: Fn

    def __call__(self, env: Env) -> bool:
        return bool(self.fn(env))

    def and_(self, other: Cond | None) -> Cond:
        if other is None:
            return self
        a, b = self.fn, other.fn
        return Cond(
            f"({self.source}) and ({other.source})",
            self.names | other.names,
            lambda env: bool(a(env)) and bool(b(env)),
        )


def parse_expr(expr: str, place: str) -> Cond:
    """Compile `cond=` text; `place` is `file:line` for the error message."""
    text = " ".join(expr.split())
    if len(text) > MAX_LENGTH:
        raise GraphError(f"{place}: condition longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        detail = getattr(exc, "msg", None) or type(exc).__name__
        raise GraphError(f"{place}: condition {text!r} is not valid: {detail}") from None
    names: set[str] = set()
    try:
        fn = _build(tree.body, names)
    except _Refused as exc:
        raise GraphError(
            f"{place}: condition {text!r}: {exc} is not allowed (only names, literals, "
            "comparisons, in, and/or/not and parentheses)"
        ) from None
    except RecursionError:
        raise GraphError(f"{place}: condition {text!r} is nested too deeply") from None
    return Cond(text, frozenset(names), fn)


def _one_of(attr: str, csv: str) -> Cond:
    wanted = frozenset(v.strip() for v in csv.split(",") if v.strip())
    return Cond(
        f"{attr} in ({', '.join(sorted(wanted))})",
        frozenset({attr}),
        lambda env: (env.get(attr) or "").strip() in wanted,
    )


def compile_cond(attrs: Mapping[str, str], place: str) -> Cond | None:
    """The AND of an element's `arch`, `os`, `release` (comma lists, OR) and `cond`."""
    from provisioner.graph.xmlload import has_marker

    result: Cond | None = None
    for key in ("arch", "os", "release", "cond"):
        raw = attrs.get(key)
        if raw is None or not raw.strip():
            continue
        if has_marker(raw):
            raise GraphError(f"{place}: attribute references are not allowed in {key}=")
        part = parse_expr(raw, place) if key == "cond" else _one_of(key, raw)
        result = part if result is None else result.and_(part)
    return result
