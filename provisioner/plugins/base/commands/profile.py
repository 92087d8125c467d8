"""Kickstarts and the node graph: list host profile/xml, list node xml, report host graph."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from provisioner.cli.command import Arg, Command, Param
from provisioner.cli.context import Context
from provisioner.plugins.base.commands._common import HOSTS

_ONE_HOST_OPTIONAL = Arg(
    "host", "One host, by name, IP or MAC; none shows the whole graph.", optional=True
)


def _renderer(ctx: Context) -> Any:
    from provisioner.kickstart.renderer import KickstartRenderer

    return KickstartRenderer(ctx.config, ctx.hooks, check_interval=0)


class ListHostProfile(Command):
    """Print the kickstart file a host installs with.

    The host's appliance names the graph and the root node; the traversal's node files are
    rendered with the host's attributes into a kickstart for the syntax version in the
    Kickstart_SyntaxVersion attribute. validate=yes also checks it with pykickstart.
    """

    name = "list host profile"
    args = (HOSTS,)
    params = (
        Param("validate", "Check the result with pykickstart (needs pykickstart).", "bool", False),
    )
    examples = (
        ("rocks list host profile compute-0-0", "The kickstart of compute-0-0."),
        ("rocks list host profile compute-0-0 validate=yes", "Also validate it."),
    )

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.errors import ProvisionerError
        from provisioner.kickstart.validate import validate

        renderer = _renderer(ctx)
        bad = []
        for host in ctx.hosts(args, at_least_one=True):
            text = renderer.render(ctx.reader, host)
            ctx.write(text)
            if params["validate"]:
                values, _, _ = renderer.host_values(ctx.reader, host)
                problems = validate(text, values.get("Kickstart_SyntaxVersion", "RHEL9"))
                bad.extend(f"{host.name}: {p}" for p in problems)
        if bad:
            raise ProvisionerError(
                f"kickstart not valid: {bad[0]}"
                + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else "")
            )


class ListHostXml(Command):
    """Print a host's traversed node files, expanded with its attribute values.

    Attribute references are replaced by the values (XML-escaped), tags whose conditions are
    false are left out with a comment, and every tag names the file it came from.
    """

    name = "list host xml"
    args = (HOSTS,)
    examples = (("rocks list host xml compute-0-0", "The node XML compute-0-0 gets."),)

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        renderer = _renderer(ctx)
        for host in ctx.hosts(args, at_least_one=True):
            ctx.write(renderer.render_xml(ctx.reader, host))


def read_attrs(spec: str) -> dict[str, str]:
    """attrs= of `list node xml`: a Python dict literal, or a site.attrs file."""
    from provisioner.errors import UsageError

    text = spec.strip()
    if text.startswith("{"):
        try:
            data = ast.literal_eval(text)
        except (ValueError, SyntaxError) as exc:
            raise UsageError(f"attrs= is not a dict literal: {exc}") from None
        if not isinstance(data, dict):
            raise UsageError("attrs= must be a dict literal or a site.attrs file")
        return {str(k): str(v) for k, v in data.items()}
    from provisioner.services.frontend import read_site_attrs

    return read_site_attrs(Path(text))


class ListNodeXml(Command):
    """Print the XML (or the kickstart) a graph traversal from a node gives.

    For frontend builds ("rocks list node xml root attrs=/tmp/site.attrs"): the attributes
    come from attrs= (a site.attrs file of Key:Value lines or a Python dict literal) instead
    of the database; without attrs= the global attributes of the database are used. Defaults
    are those of a frontend (hostname frontend, membership Frontend, os linux).
    """

    name = "list node xml"
    args = (Arg("node", "Root node of the traversal, e.g. root, server, compute."),)
    params = (
        Param("attrs", "site.attrs file or Python dict literal of attributes."),
        Param("graph", "Graph name.", default="default"),
        Param(
            "format",
            "xml (the default) or kickstart.",
            "choice",
            "xml",
            choices=("xml", "kickstart"),
        ),
    )
    examples = (
        ("rocks list node xml root attrs=/tmp/site.attrs", "A frontend build's XML."),
        (
            "rocks list node xml server attrs=/tmp/site.attrs format=kickstart",
            "The frontend's kickstart from site.attrs.",
        ),
    )

    # An installing frontend has no database yet: open one only when attrs= is not given.
    transactional = False

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        renderer = _renderer(ctx)
        if params["attrs"]:
            attrs = read_attrs(params["attrs"])
        else:
            from provisioner.db.reader import Reader
            from provisioner.services.attrs import global_attrs

            with Reader.connect(ctx.config.db_url, ctx.config.database_timeout) as reader:
                attrs = global_attrs(reader)
        values = renderer.node_values(attrs, args[0], params["graph"])
        if params["format"] == "kickstart":
            ctx.write(renderer.render_values(values, params["graph"], args[0]))
        else:
            ctx.write(renderer.render_values_xml(values, params["graph"], args[0]))


class ReportHostGraph(Command):
    """Print the node graph in Graphviz dot, with a host's traversal marked.

    With a host: its appliance's graph, the nodes it gets filled, the edges it follows bold,
    the edges whose conditions failed dashed. Render with "dot -Tsvg".
    """

    name = "report host graph"
    args = (_ONE_HOST_OPTIONAL,)
    params = (Param("graph", "Graph name when no host is given.", default="default"),)
    examples = (
        ("rocks report host graph compute-0-0 | dot -Tsvg > graph.svg", "Draw a host's path."),
        ("rocks report host graph", "The whole default graph."),
    )

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.graph.dot import to_dot

        renderer = _renderer(ctx)
        if not args:
            ctx.write(to_dot(renderer.graph(params["graph"]), None))
            return
        host = ctx.host(args[0])
        values, graph, root = renderer.host_values(ctx.reader, host)
        plan = renderer.plan(graph, root, values)
        ctx.write(to_dot(plan.graph, plan.traversal, title=host.name))
