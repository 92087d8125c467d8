"""Leases reported by dnsmasq's lease script (from this machine only): unknown MACs become
hosts while discovery is on."""

from __future__ import annotations

from flask import Blueprint, Response, abort, request

from provisioner.services.identity import normalize_ip
from provisioner.web.install import text
from provisioner.web.state import client_ip, state

bp = Blueprint("discovery", __name__)


@bp.post("/discovery/lease")
def lease() -> Response:
    ip = normalize_ip(client_ip(request.environ))
    if ip not in ("127.0.0.1", "::1"):
        abort(text("leases are reported by the lease script on this machine only", 403))
    mac = request.form.get("mac", "")
    st = state()
    from provisioner.services.discovery import discover, publish

    with st.session() as session:
        host = discover(session, st.hooks, mac)
        name = host.name if host is not None else None
    if name is None:
        return text("nothing to do")
    publish(st.reader(), st.config.dnsmasq_conf_dir, mac)
    return text(f"discovered {name}")
