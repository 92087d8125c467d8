"""Static files from a served root, never from outside it (.., absolute paths, symlinks that
lead out, NUL bytes)."""

from __future__ import annotations

import os
from pathlib import Path

from flask import Response, abort, send_file


def resolve_under(root: Path, rel: str) -> Path | None:
    """The file `rel` names inside `root`, or None if it is missing or would leave the root."""
    if "\x00" in rel or "\\" in rel:
        return None
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        return None
    base = os.path.realpath(root)
    target = os.path.realpath(os.path.join(base, *parts)) if parts else base
    if target != base and not target.startswith(base + os.sep):
        return None
    path = Path(target)
    return path if path.is_file() else None


def send_under(root: Path, rel: str) -> Response:
    path = resolve_under(root, rel)
    if path is None:
        abort(Response(f"not found: /{rel}\n", 404, mimetype="text/plain"))
    return send_file(path, conditional=True, max_age=0)
