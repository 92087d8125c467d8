"""What installing nodes call: their kickstart, the install-done flip, partition reports and
install events. (The install tree itself is static: nginx serves it, provisioner/web/nginx.py.)

A kickstart is only for the host that asks from its own address: which host that is, is the
services' policy (provisioner/services/identity.py); what the host reports is written by
services too (services/events.py, services/boot.py, services/partitions.py). This module turns
HTTP into those calls and their answers into HTTP.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs

from flask import Blueprint, Response, abort, request

from provisioner.errors import ProvisionerError
from provisioner.services.hostargs import HostRow
from provisioner.services.identity import Refused, host_by_ip, identify, macs_in, normalize_ip
from provisioner.web.state import client_ip, state

bp = Blueprint("install", __name__)
log = logging.getLogger("provisioner.web")

EVENTS = frozenset({"pre", "post", "done", "failed", "started", "rebooting"})


def text(body: str, status: int = 200) -> Response:
    return Response(body if body.endswith("\n") else body + "\n", status, mimetype="text/plain")


MAC_HEADER = "HTTP_X_RHN_PROVISIONING_MAC_"


def macs_of(environ: dict[str, Any]) -> list[str]:
    """MACs from anaconda's `X-RHN-Provisioning-MAC-N: <dev> <mac> [...]` headers."""
    return macs_in(v for k, v in environ.items() if k.startswith(MAC_HEADER))


KICKSTART_PATHS = frozenset({"/install/sbin/kickstart.cgi", "/install/sbin/public/kickstart.cgi"})


def serve_kickstart(st: Any, ip: str, query: str, macs: list[str]) -> tuple[int, str]:
    """(status, body) of a kickstart request from `ip`: the whole logic, without Flask.

    provisionerd answers kickstart storms; Flask's request machinery costs more than finding
    the host and rendering its (cached) kickstart, so `KickstartFastPath` and the HTTP workers
    (`kickstart_answer`) call this directly.
    """
    args = {k: v[-1] for k, v in parse_qs(query).items()} if query else {}
    ip = normalize_ip(ip)
    reader = st.reader()
    try:
        host = identify(reader, ip, macs, args.get("client"))
    except Refused as refused:
        return refused.status, refused.message + "\n"
    body = st.kickstart(reader, host)
    if args:
        _report_hardware(st, host, args)
    st.events.record(host.id, "kickstart", {"ip": ip})
    return 200, body


def kickstart_answer(st: Any, ip: str, query: str, macs: list[str]) -> tuple[int, bytes]:
    """`serve_kickstart` with every failure turned into a one-line answer."""
    try:
        status, body = serve_kickstart(st, ip, query, macs)
    except ProvisionerError as exc:
        status, body = exc.http_status if exc.http_status != 400 else 500, f"{exc}\n"
    except Exception as exc:  # noqa: BLE001 - one line to the node, the rest to the log
        from provisioner.db.errors import translate as translate_db_error

        translated = translate_db_error(exc)
        if translated is None:
            log.exception("kickstart for %s failed", ip)
            status, body = 500, "internal error\n"
        else:
            status, body = translated.http_status, f"{translated}\n"
    return status, body.encode()


class KickstartFastPath:
    """WSGI middleware answering GET kickstart.cgi before Flask; everything else goes on."""

    def __init__(self, app: Any, st: Any) -> None:
        self.app = app
        self.state = st

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") not in KICKSTART_PATHS or environ.get("REQUEST_METHOD") not in (
            "GET",
            "HEAD",
        ):
            return self.app(environ, start_response)
        status, data = kickstart_answer(
            self.state, client_ip(environ), environ.get("QUERY_STRING", ""), macs_of(environ)
        )
        start_response(
            f"{status} {REASONS.get(status, 'Error')}",
            [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data)))],
        )
        return [b""] if environ.get("REQUEST_METHOD") == "HEAD" else [data]

    def behind_proxy(self, headers: list[tuple[str, str]], query: str) -> tuple[int, bytes]:
        """The same answer for the HTTP worker's own fast path (provisioner/web/worker.py),
        from the request's headers as nginx sent them: the client is nginx's X-Real-IP."""
        ip = ""
        macs = []
        for name, value in headers:
            low = name.lower()
            if low == "x-real-ip":
                ip = value
            elif low.startswith("x-rhn-provisioning-mac-"):
                macs.append(value)
        if not ip:
            return 400, b"no client address from the proxy\n"
        return kickstart_answer(self.state, ip, query, macs_in(macs))


REASONS = {
    200: "OK",
    403: "Forbidden",
    404: "Not Found",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def _report_hardware(st: Any, host: HostRow, args: dict[str, str]) -> None:
    # Rocks' kickstart.cgi recorded the CPU count and architecture the installer reported;
    # only a change costs a write.
    changes: dict[str, Any] = {}
    np = args.get("np", "")
    if np.isdigit() and 0 < int(np) < 100_000 and int(np) != host.cpus:
        changes["cpus"] = int(np)
    arch = args.get("arch", "")
    if arch and arch != host.arch and arch.replace("_", "").isalnum() and len(arch) < 32:
        changes["arch"] = arch
    if changes:
        from provisioner.services.hosts import set_host

        with st.session() as session:
            set_host(session, st.hooks, host.id, **changes)


def _owner() -> tuple[Any, HostRow]:
    st = state()
    reader = st.reader()
    ip = normalize_ip(client_ip(request.environ))
    host = host_by_ip(reader, ip)
    if host is None:
        abort(text(f"no host has address {ip}", 404))
    return st, host


@bp.route("/install/sbin/setPxeboot.cgi", methods=["GET", "POST"])
@bp.route("/install/sbin/public/setPxeboot.cgi", methods=["GET", "POST"])
def set_pxeboot() -> Response:
    """The end of an install (Rocks' pxeboot.xml): the next network boot is the local disk.
    `action=install` (cluster-kickstart-pxe) asks for a reinstall instead."""
    st, host = _owner()
    action = (request.values.get("action") or "os").strip('"')
    if action not in ("os", "install"):
        abort(text("action must be os or install", 400))
    from provisioner.services.events import install_finished

    with st.session() as session:
        install_finished(session, st.hooks, host.id, action)
    return text(f"{host.name}: boot action {action}")


@bp.post("/install/sbin/public/partitions")
def partitions() -> Response:
    """The partitions an installed host reports (JSON), upserted by device."""
    st, host = _owner()
    data = request.get_json(silent=True)
    rows = data.get("partitions") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and r.get("device") for r in rows):
        abort(text('expected JSON {"partitions": [{"device": ..., ...}, ...]}', 400))
    if len(rows) > 4096:
        abort(text("too many partitions", 400))
    from provisioner.services.events import partitions_reported

    with st.session() as session:
        count = partitions_reported(session, st.hooks, host.id, rows)
    return text(f"{host.name}: {count} partitions recorded")


@bp.post("/install/sbin/public/events")
def events() -> Response:
    """Progress of an install: {"event": "pre"|"post"|"done"|"failed"|..., "detail": {...}}."""
    st, host = _owner()
    data = request.get_json(silent=True)
    if not isinstance(data, dict) or data.get("event") not in EVENTS:
        abort(text(f'expected JSON {{"event": one of {", ".join(sorted(EVENTS))}}}', 400))
    detail = data.get("detail") if isinstance(data.get("detail"), dict) else {}
    st.events.record(host.id, str(data["event"]), detail)
    return Response(status=204)
