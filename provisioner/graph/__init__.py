"""The XML node graph: hardened loading of node and graph files, the search path with
`extend-`/`replace-` files, edge and tag conditions, traversal from an appliance's root node
and Rocks' HEAD/TAIL ordering.

`provisioner.kickstart` turns the ordered nodes into a kickstart; nothing here knows about
hosts or the database: callers pass attribute values in.
"""

from __future__ import annotations

from provisioner.graph.errors import GraphError

__all__ = ["GraphError"]
