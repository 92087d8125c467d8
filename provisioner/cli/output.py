"""Rocks-style tables and their JSON form.

A table has an owner column (`compute-0-0:`) and upper-case headers; columns are left-justified
to their widest cell and joined by one space; an empty cell prints `-----`. A table may drop the
owner column when every row has the same owner (Rocks' trimOwner); none of ours do by default,
so scripts see the same columns whatever they select.
`output-format=json` prints a list of objects keyed by the lower-case header names.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from provisioner.errors import UsageError

EMPTY = "-----"


class Table:
    def __init__(self, header: Sequence[str], trim_owner: bool = False) -> None:
        self.header = [h.lower() for h in header]
        self.trim_owner = trim_owner
        self.rows: list[tuple[str | None, tuple[Any, ...]]] = []

    def row(self, owner: str | None, *values: Any) -> None:
        if len(values) != len(self.header) - 1:
            raise ValueError(f"row has {len(values)} values for {len(self.header) - 1} columns")
        self.rows.append((owner, values))

    def _columns(self, cols: str) -> list[int]:
        if not cols:
            return list(range(len(self.header)))
        wanted = [c.strip().lower() for c in cols.split(",") if c.strip()]
        unknown = [c for c in wanted if c not in self.header]
        if unknown:
            raise UsageError(
                f"unknown column '{unknown[0]}' in output-col (columns: {', '.join(self.header)})"
            )
        return [self.header.index(c) for c in wanted]

    def render(self, fmt: str = "table", header: bool = True, cols: str = "") -> str:
        indexes = self._columns(cols)
        if fmt == "json":
            records = []
            for owner, values in self.rows:
                full = (owner, *values)
                records.append({self.header[i]: _jsonable(full[i]) for i in indexes})
            return json.dumps(records, indent=1) + "\n"
        owners = {owner for owner, _ in self.rows}
        if self.trim_owner and len(owners) <= 1 and not cols:
            indexes = [i for i in indexes if i != 0]
        lines: list[list[str]] = []
        if header:
            lines.append([self.header[i].upper() for i in indexes])
        for owner, values in self.rows:
            full = (f"{owner or ''}:", *values)
            lines.append([_cell(full[i]) for i in indexes])
        if not lines:
            return ""
        widths = [max(len(line[i]) for line in lines) for i in range(len(indexes))]
        out = []
        for line in lines:
            out.append(" ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
        return "\n".join(out) + "\n"


def _cell(value: Any) -> str:
    if value is None or value == "":
        return EMPTY
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
