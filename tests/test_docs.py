"""The reference docs are generated from the declarations; a stale file fails here.

Regenerate with `.venv/bin/python -m provisioner.docsgen`.
"""

from __future__ import annotations

import pytest

from provisioner.docsgen import generate


@pytest.mark.parametrize(
    "path,text", list(generate().items()), ids=lambda v: getattr(v, "name", "")
)
def test_generated_doc_is_current(path, text):
    assert path.exists(), f"{path} is missing: run python -m provisioner.docsgen"
    assert path.read_text() == text, f"{path} is stale: run python -m provisioner.docsgen"


def test_readme_gives_the_two_commands():
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
