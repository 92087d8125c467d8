"""A small read-only dashboard: the hosts, what each boots next and how its last install went,
refreshed every few seconds. Plain server-rendered HTML, no script, nothing to install."""

from __future__ import annotations

from html import escape

from flask import Blueprint, Response

from provisioner.web.state import state

bp = Blueprint("ui", __name__)

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>{title}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; }}
th, td {{ padding: .25em .8em; border-bottom: 1px solid #ddd; text-align: left; }}
th {{ background: #f4f4f4; }} .failed {{ color: #b00; font-weight: bold; }}
.install {{ color: #a60; }} .done {{ color: #070; }} small {{ color: #777; }}
</style></head><body>
<h1>{title}</h1>
<p>{summary}</p>
<table><tr><th>host</th><th>appliance</th><th>address</th><th>MAC</th><th>next boot</th>
<th>last event</th><th>when</th></tr>
{rows}
</table>
<p><small>Read-only; change things with the <code>rocks</code> command.
JSON: <a href="/api/hosts">/api/hosts</a>. Refreshes every 5 seconds.</small></p>
</body></html>
"""


def cell(value: object, cls: str = "") -> str:
    text = escape(str(value)) if value not in (None, "") else "&mdash;"
    return f'<td class="{cls}">{text}</td>' if cls else f"<td>{text}</td>"


@bp.get("/")
@bp.get("/ui/hosts")
def hosts() -> Response:
    from provisioner.services import overview

    reader = state().reader()
    name = overview.cluster_name(reader)
    rows = overview.hosts(reader)
    out = []
    installing = failed = 0
    for host, appliance, ip, mac, boot, installaction, runaction, event, when in rows:
        nxt = {"install": installaction, "os": runaction, "run": runaction}.get(boot or "", None)
        nxt_text = f"{boot} ({nxt})" if boot and nxt and nxt != boot else (boot or "")
        installing += boot == "install"
        failed += event == "failed"
        cls = "failed" if event == "failed" else "done" if event == "done" else ""
        cells = [cell(v) for v in (host, appliance, ip, mac)]
        cells.append(cell(nxt_text, "install" if boot == "install" else ""))
        cells.append(cell(event, cls))
        cells.append(cell(when))
        out.append("<tr>" + "".join(cells) + "</tr>")
    title = f"{name} cluster" if name else "Cluster"
    summary = f"{len(rows)} hosts, {installing} to install at next boot, {failed} failed installs."
    html = PAGE.format(title=escape(title), summary=escape(summary), rows="\n".join(out))
    return Response(html, 200, mimetype="text/html")
