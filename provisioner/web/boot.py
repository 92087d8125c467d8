"""Network boot over HTTP: iPXE scripts per host. The boot files themselves (kernels, initrds
under `/boot/files/`) are static: nginx serves them from the tftpboot directory."""

from __future__ import annotations

from flask import Blueprint, Response, request

from provisioner.services.hostargs import is_mac
from provisioner.services.identity import normalize_ip
from provisioner.web.state import client_ip, state

bp = Blueprint("boot", __name__)


@bp.get("/boot/ipxe")
def ipxe() -> Response:
    """The iPXE script for the host with `mac` (or the asking address): its current boot action."""
    mac = request.args.get("mac", "")
    if mac and not is_mac(mac):
        return Response(f"bad MAC address '{mac}'\n", 400, mimetype="text/plain")
    script = state().boot.ipxe(mac or None, ip=normalize_ip(client_ip(request.environ)))
    return Response(script, 200, mimetype="text/plain")
