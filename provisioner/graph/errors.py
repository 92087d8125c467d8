"""The one error type of the node graph: a one-line message that names the file (and line)."""

from __future__ import annotations

from pathlib import Path

from provisioner.errors import ProvisionerError


class GraphError(ProvisionerError):
    """A node or graph file is refused, or the graph cannot produce a kickstart for a host.

    Served over HTTP it is the server's fault (a bad file), not the installing client's.
    """

    http_status = 500


def where(path: Path | str, line: int | None = None) -> str:
    """`file:line` as editors and compilers print it."""
    return f"{path}:{line}" if line else str(path)
