"""A small JSON API: reads are open to the cluster, writes need the bearer token."""

from __future__ import annotations

import hmac
from typing import Any

from flask import Blueprint, Response, abort, jsonify, request

from provisioner.errors import ProvisionerError
from provisioner.web.state import state

bp = Blueprint("api", __name__, url_prefix="/api")


def _require_token() -> None:
    token = state().api_token()
    sent = request.headers.get("Authorization", "")
    if not token or not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
        abort(
            Response(
                '{"error": "a valid bearer token is required"}\n', 401, mimetype="application/json"
            )
        )


def _host(name: str) -> Any:
    from provisioner.services.hostargs import resolve_host

    try:
        return resolve_host(state().reader(), name)
    except ProvisionerError as exc:
        abort(Response(f'{{"error": "{exc}"}}\n', exc.http_status, mimetype="application/json"))


def _host_json(h: Any) -> dict[str, Any]:
    return {
        "name": h.name,
        "membership": h.membership,
        "appliance": h.appliance,
        "rack": h.rack,
        "rank": h.rank,
        "cpus": h.cpus,
        "os": h.os,
        "arch": h.arch,
        "installaction": h.installaction,
        "runaction": h.runaction,
        "boot": h.boot_action,
        "comment": h.comment,
    }


@bp.get("/hosts")
def hosts() -> Response:
    from provisioner.services.hostargs import all_hosts

    return jsonify([_host_json(h) for h in all_hosts(state().reader())])


@bp.get("/hosts/<name>")
def host(name: str) -> Response:
    from provisioner.services.attrs import host_attr_values

    h = _host(name)
    return jsonify({**_host_json(h), "attrs": host_attr_values(state().reader(), h)})


@bp.put("/hosts/<name>/boot")
def set_boot(name: str) -> Response:
    _require_token()
    h = _host(name)
    data = request.get_json(silent=True) or {}
    action = data.get("action")
    if action not in ("install", "os", "run"):
        abort(
            Response(
                '{"error": "action must be install, os or run"}\n', 400, mimetype="application/json"
            )
        )
    from provisioner.services.boot import set_host_state

    with state().session() as session:
        set_host_state(session, h.id, action)
    return jsonify({"name": h.name, "boot": action})
