"""What installing nodes call: their kickstart, the install-done flip, partition reports and
install events. (The install tree itself is static: nginx serves it, provisioner/web/nginx.py.)

A kickstart is only for the host that asks from its own address. A request from an address no
host owns may name itself by the MACs anaconda sends (`kssendmac`: X-RHN-Provisioning-MAC-N),
but only from the private network and only for a host that has no private address of its own
yet; naming another host than the one the address belongs to is refused (403), with nothing of
the kickstart in the answer.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs

from flask import Blueprint, Response, abort, request

from provisioner.db.reader import Reader
from provisioner.errors import ProvisionerError
from provisioner.services.hostargs import HOST_SELECT, HostRow, is_mac, normalize_mac
from provisioner.web.state import client_ip, state

bp = Blueprint("install", __name__)
log = logging.getLogger("provisioner.web")

EVENTS = frozenset({"pre", "post", "done", "failed", "started", "rebooting"})


def text(body: str, status: int = 200) -> Response:
    return Response(body if body.endswith("\n") else body + "\n", status, mimetype="text/plain")


def normalize_ip(ip: str) -> str:
    if ip.count(".") == 3 and ":" not in ip:
        return ip  # the common case, without parsing
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


# From the interface to its host: a join is half the work of `h.id IN (subquery)` for SQLite,
# and this runs for every kickstart of a storm.
_HOST_BY_IP = (
    HOST_SELECT.replace("FROM hosts h ", "FROM interfaces i JOIN hosts h ON h.id = i.host_id ", 1)
    + " WHERE i.ip = :ip AND (i.vlan IS NULL OR i.vlan = 0) LIMIT 1"
)


def host_by_ip(reader: Reader, ip: str) -> HostRow | None:
    rows = reader.all(_HOST_BY_IP, ip=ip)
    return HostRow(*rows[0]) if rows else None


def hosts_by_macs(reader: Reader, macs: list[str]) -> list[HostRow]:
    if not macs:
        return []
    clause, params = reader.in_clause("m", macs)
    rows = reader.all(
        f"{HOST_SELECT} WHERE h.id IN "
        f"(SELECT host_id FROM interfaces WHERE lower(mac) IN {clause})",
        **params,
    )
    return [HostRow(*r) for r in rows]


def _private_ip(reader: Reader, host_id: int) -> str | None:
    return reader.scalar(
        "SELECT i.ip FROM interfaces i JOIN subnets s ON s.id = i.subnet_id "
        "WHERE i.host_id = :h AND s.name = 'private' AND i.ip IS NOT NULL",
        h=host_id,
    )


def _in_private_network(reader: Reader, ip: str) -> bool:
    row = reader.one("SELECT subnet, netmask FROM subnets WHERE name = 'private'")
    if row is None:
        return False
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(f"{row[0]}/{row[1]}", strict=False)
    except ValueError:
        return False


class Refused(Exception):
    """A kickstart request that gets a one-line refusal instead of a kickstart."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


MAC_HEADER = "HTTP_X_RHN_PROVISIONING_MAC_"


def macs_of(environ: dict[str, Any]) -> list[str]:
    """MACs from anaconda's `X-RHN-Provisioning-MAC-N: <dev> <mac> [...]` headers."""
    return macs_in(v for k, v in environ.items() if k.startswith(MAC_HEADER))


def macs_in(values: Iterable[str]) -> list[str]:
    """The MAC of each `<dev> <mac> [...]` header value."""
    macs = []
    for value in values:
        for word in str(value).split():
            if is_mac(word):
                macs.append(normalize_mac(word))
                break
    return macs


def identify(reader: Reader, ip: str, macs: list[str], named: str | None) -> HostRow:
    """The host a kickstart request is for; Refused (403/404) with a one-line reason."""
    owner = host_by_ip(reader, ip)
    if owner is not None:
        if named and named.lower() != owner.name:
            raise Refused(403, f"{ip} belongs to {owner.name}: it cannot ask for another host")
        for other in hosts_by_macs(reader, macs):
            if other.id != owner.id:
                raise Refused(
                    403, f"{ip} belongs to {owner.name}, not to the host of the MACs sent"
                )
        return owner
    if named:
        raise Refused(403, f"no host has address {ip}: a kickstart is only served to its own host")
    candidates = hosts_by_macs(reader, macs)
    if not candidates:
        reason = f"no host has address {ip}" + (f" or MAC {', '.join(macs)}" if macs else "")
        raise Refused(404, reason)
    if len(candidates) > 1:
        raise Refused(403, f"the MACs sent belong to {len(candidates)} hosts")
    host = candidates[0]
    own = _private_ip(reader, host.id)
    if own is not None or not _in_private_network(reader, ip):
        # Its kickstart would go to whoever claims its MAC: only from its own address.
        raise Refused(
            403, f"{host.name} must ask from its own address {own or '(private network)'}"
        )
    return host


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
        from provisioner.cli.main import translate_db_error

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
    from provisioner.db.models import Host

    with st.session() as session:
        row = session.get(Host, host.id)
        assert row is not None
        row.boot_action = action
        from provisioner.db.models import InstallEvent

        event = "done" if action == "os" else "reinstall"
        session.add(
            InstallEvent(host_id=host.id, event=event, detail=json.dumps({"action": action}))
        )
        st.hooks.install_event(session, row, event, {"action": action})
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
    from provisioner.db.models import Host
    from provisioner.services.partitions import replace_partitions

    with st.session() as session:
        count = replace_partitions(session, host.id, rows)
        row = session.get(Host, host.id)
        assert row is not None
        st.hooks.install_event(session, row, "partitions", {"count": count})
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
