"""`rocks init frontend`: create or upgrade the schema and load the defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from provisioner.cli.command import Command, Param
from provisioner.cli.context import Context


class InitFrontend(Command):
    """Create or upgrade the cluster database and load the defaults.

    Creates what is missing: appliances and memberships, boot actions, the private and public
    networks, the Kickstart_*/Info_* global attributes and the frontend host. Attributes given
    as key=value (or in a site.attrs file) are set globally, overwriting stored values;
    nothing else already in the database is changed, so running it again loses nothing.
    """

    name = "init frontend"
    transactional = False
    extra_params = True
    params = (Param("attrs", "A site.attrs file (Key:Value lines) of attributes to set."),)
    examples = (
        ("rocks init frontend", "A new database with the defaults."),
        (
            "rocks init frontend Kickstart_PrivateHostname=bayou "
            "Kickstart_PublicAddress=137.110.119.114 Kickstart_PublicNetmask=255.255.255.0",
            "Name the frontend and give its public address.",
        ),
        ("rocks init frontend attrs=/tmp/site.attrs", "A lights-out frontend's settings."),
    )

    def run(self, ctx: Context, args: list[str], params: dict[str, Any]) -> None:
        from provisioner.db import schema
        from provisioner.db.engine import transaction
        from provisioner.services.frontend import init_frontend, read_site_attrs

        given: dict[str, str] = {}
        if params.get("attrs"):
            given.update(read_site_attrs(Path(params["attrs"])))
        given.update({k: v for k, v in params.items() if k not in ("attrs",) and v is not None})
        engine = ctx.app.engine
        before, after = schema.upgrade(engine, hooks=ctx.hooks)
        if before is None:
            ctx.write(
                f"created the database schema (revision {after}) at {_safe(ctx.config.db_url)}"
            )
        elif before != after:
            ctx.write(f"upgraded the database schema from revision {before} to {after}")
        with transaction(engine) as session:
            report = init_frontend(session, ctx.hooks, given)
        if report.created:
            kinds: dict[str, int] = {}
            for item in report.created:
                kind = item.split()[0]
                kinds[kind] = kinds.get(kind, 0) + 1
            ctx.write(
                "added " + ", ".join(f"{n} {k}{'s' if n > 1 else ''}" for k, n in kinds.items())
            )
        if report.updated:
            ctx.write(f"set {len(report.updated)} attribute(s)")
        if not report.created and not report.updated and before == after:
            ctx.write(f"the database is up to date (revision {after}); nothing to add")


def _safe(url: str) -> str:
    # Never print a password from the URL.
    head, at, tail = url.rpartition("@")
    if not at:
        return url
    scheme, _, cred = head.partition("://")
    return f"{scheme}://{cred.split(':')[0]}:***@{tail}"
