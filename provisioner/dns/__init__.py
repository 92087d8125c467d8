"""The DNS service: authoritative for the cluster's networks with `servedns`, forwarding the rest.

`zones` reads the database into zones and records, `resolver.ClusterResolver` decides the
answers (dnslib resolver protocol, and `resolver.FastResolver` for our server), `wire` packs
them, `forward.Forwarder` asks the upstreams, `server.DnsServer` moves packets.
`serve(config)` is what provisionerd runs: one server process per core but one (up to four),
sharing the port with SO_REUSEPORT, each with its own database reader. Importing this
package imports none of that.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from provisioner.udp import default_workers

if TYPE_CHECKING:
    from provisioner.config import Config

log = logging.getLogger("provisioner.dns")


def parse_upstreams(values: Sequence[str]) -> list[tuple[str, int]]:
    """`ip`, `ip:port`, `[v6]:port` or a bare IPv6 address, each to `(ip, port)`."""
    out = []
    for value in values:
        value = value.strip()
        if not value:
            continue
        if value.startswith("["):
            host, _, port = value[1:].partition("]")
            out.append((host, int(port.lstrip(":") or 53)))
        elif value.count(":") == 1:
            host, _, port = value.partition(":")
            out.append((host, int(port)))
        else:
            out.append((value, 53))
    return out


def serve(
    config: Config,
    workers: int | None = None,
    address: str | None = None,
    port: int | None = None,
    ready: Any = None,
) -> int:
    """Run the DNS service until SIGTERM/SIGINT (blocking; call from the main thread).

    `ready(port)`, if given, is called once every process is listening.
    """
    settings = {
        "url": config.db_url,
        "address": config.dns_address if address is None else address,
        "port": config.dns_port if port is None else port,
        "upstreams": parse_upstreams(config.dns_upstreams),
        "workers": default_workers() if workers is None else max(1, workers),
    }
    return _run(settings, ready)


def _build(settings: dict[str, Any], reuse_port: bool) -> Any:
    from provisioner.dns.resolver import ClusterResolver
    from provisioner.dns.server import DnsServer

    resolver = ClusterResolver(settings["url"], [tuple(u) for u in settings["upstreams"]])
    return DnsServer(resolver, settings["address"], int(settings["port"]), reuse_port=reuse_port)


def _run(settings: dict[str, Any], ready: Any = None) -> int:
    workers = int(settings["workers"])
    server = _build(settings, reuse_port=workers > 1)
    children: list[subprocess.Popen[bytes]] = []
    for _ in range(workers - 1):
        # The child reads its settings from stdin (no database password on a command line)
        # and stops when stdin closes: when we stop, or die.
        child = subprocess.Popen(
            [sys.executable, "-m", "provisioner.dns", "--child"], stdin=subprocess.PIPE
        )
        assert child.stdin is not None
        child.stdin.write(json.dumps({**settings, "port": server.port}).encode() + b"\n")
        child.stdin.flush()
        children.append(child)
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    signal.signal(signal.SIGINT, lambda *_: server.stop())
    if ready is not None:
        threading.Thread(
            target=_when_listening, args=(server, children, ready), daemon=True
        ).start()
    try:
        server.start()
    finally:
        for child in children:
            if child.stdin is not None:
                child.stdin.close()
        for child in children:
            try:
                child.wait(5)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    return 0


def _when_listening(server: Any, children: list[Any], ready: Any) -> None:
    # A child is listening once it has bound; give them a moment, then report.
    import time

    time.sleep(0.3 if children else 0)
    ready(server.port)


def child_main() -> int:
    """A server process started by `serve()`: settings on stdin, stop at stdin's end."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    settings = json.loads(sys.stdin.buffer.readline())
    server = _build(settings, reuse_port=True)

    def watch_parent() -> None:
        while sys.stdin.buffer.read(4096):
            pass
        server.stop()

    threading.Thread(target=watch_parent, daemon=True).start()
    server.start()
    return 0
