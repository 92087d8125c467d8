"""What a compilation takes: the nodes in kickstart order (`NodeEntry`), what the comment block
says about it (`Info`), and how a node file is named in comments and annotations.
"""

from __future__ import annotations

from dataclasses import dataclass

from provisioner.graph.model import NodeFile


@dataclass(frozen=True)
class NodeEntry:
    """A node in kickstart order, with its files (base or replacement, then extensions)."""

    name: str
    files: tuple[NodeFile, ...]


@dataclass(frozen=True)
class Info:
    """What the comment block says about the generation."""

    graph: str
    root: str
    version: str


def display_path(nf: NodeFile) -> str:
    # nodes/x.xml inside the roll's (or the site's) directory
    return f"{nf.roll}:{nf.path.parent.name}/{nf.path.name}"
