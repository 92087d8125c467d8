"""Where nodes reach this server's HTTP service: the URL boot configs, kickstarts and rolls use."""

from __future__ import annotations

from typing import TYPE_CHECKING

from provisioner.db.reader import Reader

if TYPE_CHECKING:
    from provisioner.config import Config


def base_url(config: Config, reader: Reader) -> str:
    """The `public_url` setting, else `http://` the kickstart host (Kickstart_PrivateKickstartHost)
    with the HTTP port when it is not 80."""
    if config.public_url:
        return config.public_url.rstrip("/")
    host = reader.scalar(
        "SELECT value FROM global_attributes WHERE attr = 'Kickstart_PrivateKickstartHost'"
    )
    host = host or "127.0.0.1"
    port = "" if config.http_port == 80 or ":" in host else f":{config.http_port}"
    return f"http://{host}{port}"
