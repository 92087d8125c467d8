"""Kickstarts from the node graph: compilation into templates, the cached renderer the web
server and the CLI share, the partition helper installers run, and validation.

Entry point: `KickstartRenderer(config, hooks).render(reader, host)`.
"""

from __future__ import annotations
