"""`make run`: a demo cluster on the embedded SQLite database, then provisionerd on loopback.

The first run creates the database under $PROVISIONER_HOME with `rocks init frontend` and the
commands of examples/demo-cluster.rocks, and copies the repository's site-profiles/ to
$PROVISIONER_HOME/site-profiles with examples/extend-compute.xml active; later runs find them
and leave them alone. The copy, not the repository's directory, is what the demo uses: there
the example can be active without changing the checkout, and it is where `rocks` in another
shell looks too (the default `site_profiles`). provisionerd then serves it on unprivileged
ports of 127.0.0.1 until Ctrl-C.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path

from provisioner.cli.main import App
from provisioner.config import Config

DEMO_ATTRS = [
    "Kickstart_PrivateHostname=frontend",
    "Kickstart_PublicHostname=frontend.example.org",
    "Kickstart_PublicAddress=198.51.100.10",
    "Kickstart_PublicNetmask=255.255.255.0",
    "Kickstart_PublicGateway=198.51.100.1",
    "Kickstart_PublicDNSDomain=example.org",
    "Info_ClusterName=demo",
]
DEMO_FILE = Path(__file__).resolve().parent.parent / "examples" / "demo-cluster.rocks"
SITE_PROFILES = Path(__file__).resolve().parent.parent / "site-profiles"
DEMO_ACTIVE = ("extend-compute.xml",)  # examples the demo's compute nodes show
PORTS = {"HTTP": 8080, "TFTP": 6969, "DNS": 5353}


def free(port: int, kind: int) -> int:
    """`port` if nothing uses it on 127.0.0.1, else the next free one."""
    for candidate in range(port, port + 100):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return candidate
    raise SystemExit(f"no free port near {port} on 127.0.0.1")


def http_user(config: Config) -> str | None:
    """Who nginx's workers run as in the demo: the default (www-data) when it can read the
    demo's files, else the user running `make run` (a checkout under /root is private)."""
    import pwd

    from provisioner.web import nginx

    if os.geteuid() != 0 or "PROVISIONER_HTTP_USER" in os.environ:
        return None
    for root in (config.install_dir, config.tftp_dir):
        root.mkdir(parents=True, exist_ok=True)
    try:
        nginx.check_roots(config, nginx.worker_user(config))
        return None
    except Exception:  # noqa: BLE001 - any reason www-data cannot serve them
        me = pwd.getpwuid(os.geteuid()).pw_name
        print(
            f"(nginx's workers run as {me}: {config.http_user} cannot read {config.home}; "
            "a real frontend keeps its files where it can, docs/deployment.md)"
        )
        return me


def install_site_profiles(config: Config) -> Path | None:
    """Copy the repository's site-profiles/ where `config` looks for the site's files and
    activate the DEMO_ACTIVE examples in its nodes/; None when that directory exists already
    (a site's own files are never overwritten) or there is nothing to copy."""
    target = Path(config.site_profiles_dir)
    if target.exists() or not SITE_PROFILES.is_dir():
        return None
    shutil.copytree(SITE_PROFILES, target)
    for name in DEMO_ACTIVE:
        shutil.copy(target / "examples" / name, target / "nodes" / name)
    return target


def main() -> int:
    config = Config.load()
    app = App(config)
    try:
        db = config.home / "provisioner.db"
        if not config.database_url and not db.exists():
            print(f"creating the demo cluster in {config.home}")
            site = install_site_profiles(config)
            if site is not None:
                active = ", ".join(f"nodes/{n}" for n in DEMO_ACTIVE)
                print(f"site profiles: {site} (a copy of site-profiles/; active: {active})")
            status = app.main(["init", "frontend", *DEMO_ATTRS])
            if status == 0 and DEMO_FILE.exists():
                status = app.main(["batch", str(DEMO_FILE)])
            if status:
                return status
        print(f"$ rocks list host      (PROVISIONER_HOME={config.home})")
        status = app.main(["list", "host"])
        if status:
            return status
    finally:
        app.close()
    http = free(PORTS["HTTP"], socket.SOCK_STREAM)
    tftp = free(PORTS["TFTP"], socket.SOCK_DGRAM)
    dns = free(PORTS["DNS"], socket.SOCK_DGRAM)
    env = {
        **os.environ,
        "PROVISIONER_HTTP_ADDRESS": "127.0.0.1",
        "PROVISIONER_HTTP_PORT": str(http),
        "PROVISIONER_HTTP_WORKERS": os.environ.get("PROVISIONER_HTTP_WORKERS", "2"),
        "PROVISIONER_TFTP_ADDRESS": "127.0.0.1",
        "PROVISIONER_TFTP_PORT": str(tftp),
        "PROVISIONER_DNS_ADDRESS": "127.0.0.1",
        "PROVISIONER_DNS_PORT": str(dns),
        "PROVISIONER_PUBLIC_URL": f"http://127.0.0.1:{http}",
    }
    nginx_user = http_user(config)
    if nginx_user:
        env["PROVISIONER_HTTP_USER"] = nginx_user
    print(
        f"""
provisionerd serves the demo cluster on 127.0.0.1 (Ctrl-C stops it):
  HTTP  http://127.0.0.1:{http}/   nginx: install tree and boot files itself; kickstarts,
                                  callbacks and API through it from gunicorn's workers
  TFTP  127.0.0.1:{tftp}           boot configs computed from the database
  DNS   127.0.0.1:{dns}           zone "local" of the private network
In another shell (export PROVISIONER_HOME={config.home}):
  curl -s tftp://127.0.0.1:{tftp}/pxelinux.cfg/01-52-54-00-00-00-01   # compute-0-0's boot config
  curl -s http://127.0.0.1:{http}/api/hosts                              # the hosts, as JSON
  .venv/bin/python -c "from dnslib import DNSRecord as D; \\
    print(D.parse(D.question('compute-0-0.local').send('127.0.0.1', {dns})))"    # its address
  .venv/bin/rocks set host boot compute-0-0 action=os                 # then fetch the config again
  .venv/bin/rocks list host profile compute-0-0 | grep -A5 site:    # its site-profiles/ files
To serve real nodes: run provisionerd with PROVISIONER_HTTP_ADDRESS, _TFTP_ADDRESS and
_DNS_ADDRESS on the private interface (ports 80, 69, 53), and dnsmasq with the configuration
`rocks sync config` writes (docs/deployment.md).
""",
        flush=True,
    )
    daemon = str(Path(sys.executable).parent / "provisionerd")
    os.execve(daemon, [daemon], env)
    return 0  # pragma: no cover - execve does not return


if __name__ == "__main__":
    os.environ.setdefault("PROVISIONER_HOME", str(Path.cwd() / "var"))
    sys.exit(main())
