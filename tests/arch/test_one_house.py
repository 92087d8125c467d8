"""The house rules of docs/dev/architecture.md, checked on the source (issue 11).

- Only services (and db/, and a roll's own data modules for its own tables) hold SQL or write
  through the ORM's models: web/, cli/, pxe/, dns/, dhcp/, kickstart/, the rolls' commands and
  the daemons call services.
- The core does not import the Xen roll.
- Services do not import the web or the CLI.

What is not moved yet is listed below with how many SQL strings it holds, so the list can only
shrink: a new file with SQL, or one more SQL string in a listed file, fails; so does a listed
file that got cleaner (update its count, or drop it)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "provisioner"

# Where SQL and model writes may be: everywhere else (web/, cli/, pxe/, dns/, dhcp/, plugins/,
# kickstart/, graph/, rolls/, the daemons) asks services. testing/ is the test harness.
ALLOWED = ("services", "db", "testing")

# A roll's own data layer, for its own tables: a roll is a package third parties write too, and
# it owns its schema; its commands still call these modules, never SQL.
ROLL_DATA = {
    "plugins/xen/queries.py",
    "plugins/xen/planner.py",
    "plugins/xen/mutations.py",
    "plugins/xen/models.py",
}

# Not moved yet (issue 11 is open): file -> number of SQL strings it holds today.
NOT_YET: dict[str, int] = {}

# Not moved yet: files in GUARDED that import provisioner.db.models at run time.
MODELS_NOT_YET: set[str] = set()

SQL = re.compile(
    r"^\s*(SELECT\b.+\bFROM\b|INSERT\s+INTO\b|UPDATE\s+\w+\s+SET\b|DELETE\s+FROM\b)",
    re.DOTALL,  # SQL is written in capitals here; prose that says "select ... from" is not SQL
)


def modules() -> list[tuple[str, ast.Module]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        out.append((rel, ast.parse(path.read_text(), rel)))
    return out


def in_guarded(rel: str) -> bool:
    return rel.split("/", 1)[0] not in ALLOWED and rel not in ROLL_DATA


def sql_strings(tree: ast.Module) -> list[str]:
    """String constants (f-strings by their literal parts) that read as SQL statements."""
    found = []
    parts = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    for node in ast.walk(tree):
        if id(node) in parts:
            continue  # an f-string's literal pieces count with their f-string
        if isinstance(node, ast.JoinedStr):
            text = "".join(
                v.value
                for v in node.values
                if isinstance(v, ast.Constant) and isinstance(v.value, str)
            )
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        else:
            continue
        if SQL.match(text):
            found.append(text)
    return found


def runtime_imports(tree: ast.Module) -> list[str]:
    """Modules imported outside `if TYPE_CHECKING:` blocks (anywhere, functions included)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for child in node.body for n in ast.walk(child))
    names = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names += [f"{node.module}.{a.name}" for a in node.names]
    return names


MODULES = modules()


def test_sql_lives_in_services() -> None:
    counts = {rel: len(sql_strings(tree)) for rel, tree in MODULES if in_guarded(rel)}
    found = {rel: n for rel, n in counts.items() if n}
    new = {rel: n for rel, n in found.items() if n > NOT_YET.get(rel, 0)}
    assert not new, f"SQL outside services (call or add a function in provisioner/services/): {new}"
    cleaner = {rel: (n, found.get(rel, 0)) for rel, n in NOT_YET.items() if found.get(rel, 0) < n}
    assert not cleaner, f"fewer SQL strings than NOT_YET says (update the list): {cleaner}"


def test_models_are_written_by_services() -> None:
    users = {
        rel
        for rel, tree in MODULES
        if in_guarded(rel)
        and any(
            m == "provisioner.db.models" or m.startswith("provisioner.db.models.")
            for m in runtime_imports(tree)
        )
    }
    assert users <= MODELS_NOT_YET, (
        f"ORM models used outside services: {sorted(users - MODELS_NOT_YET)}"
    )
    assert users >= MODELS_NOT_YET, (
        f"clean now, drop from MODELS_NOT_YET: {sorted(MODELS_NOT_YET - users)}"
    )


def test_services_do_not_import_web_or_cli() -> None:
    bad = {
        rel: m
        for rel, tree in MODULES
        if rel.startswith("services/")
        for m in runtime_imports(tree)
        if m.startswith(("provisioner.web", "provisioner.cli"))
    }
    assert not bad, f"services import the web or the CLI: {bad}"


def test_the_core_does_not_know_the_xen_roll() -> None:
    bad = {
        rel: m
        for rel, tree in MODULES
        if not rel.startswith("plugins/xen/")
        for m in runtime_imports(tree) + _type_imports(tree)
        if m.startswith("provisioner.plugins.xen")
    }
    assert not bad, f"the core imports the Xen roll: {bad}"


def _type_imports(tree: ast.Module) -> list[str]:
    return [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]


def test_the_scanner_sees_what_it_must() -> None:
    """The rules are only as good as the scanner: it finds SQL in plain and f-strings, and
    imports inside functions but not under TYPE_CHECKING."""
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from provisioner.db.models import Host\n"
        "def f(r, c):\n"
        "    from provisioner.db.models import Interface\n"
        "    r.all('SELECT a FROM b')\n"
        "    r.all(f'DELETE FROM x WHERE id IN {c}')\n"
        "    return 'select the host you want from the list'\n"
    )
    assert len(sql_strings(tree)) == 2
    assert "provisioner.db.models.Interface" in runtime_imports(tree)
    assert "provisioner.db.models.Host" not in runtime_imports(tree)
