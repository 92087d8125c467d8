"""nginx in front of the HTTP workers: its configuration, written from our settings.

provisionerd's supervisor runs nginx as one of its children with the file `render()` returns.
nginx faces the nodes: it serves the static roots itself (the install tree as `/install/`, the
boot files as `/boot/files/`: sendfile, Range requests, no time limit on a transfer that makes
progress) and proxies everything dynamic (kickstarts, boot scripts, callbacks, discovery, API,
dashboard) to gunicorn over a unix socket that only nginx can reach, buffering whole requests
before they reach a worker and whole responses after. A slow or hostile client therefore costs
nginx a connection, never a Python worker (gunicorn's own docs ask for exactly this proxy).

The app learns the client's address only from `X-Real-IP`, which nginx sets from the peer
address of the connection (a header of that name sent by a client is replaced, never passed
on), and only on the unix socket (`provisioner.web.behind_proxy`).

Nothing here touches the system's nginx: no /etc/nginx, no system service. The configuration,
pid file and temporary files live in the runtime directory (`run_dir`, `$PROVISIONER_HOME/run`).
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from provisioner.errors import ConfigError

if TYPE_CHECKING:
    from provisioner.config import Config

# A unix socket path must fit sun_path (108 bytes with its NUL).
_SUN_PATH_MAX = 100

# What nodes and browsers fetch; anything else is application/octet-stream.
MIME_TYPES = {
    "text/plain": "txt cfg ks log asc sum sha256 md5",
    "text/html": "html htm",
    "text/css": "css",
    "text/xml": "xml",
    "application/javascript": "js",
    "application/json": "json",
    "image/svg+xml": "svg",
    "image/png": "png",
    "application/x-rpm": "rpm",
    "application/x-iso9660-image": "iso",
    "application/gzip": "gz tgz",
    "application/x-xz": "xz",
    "application/zstd": "zst",
}


@dataclass(frozen=True)
class FrontPaths:
    """Where the front's runtime files live."""

    run: Path
    conf: Path
    pid: Path
    temp: Path
    socket_dir: Path
    socket: Path


def front_paths(config: Config) -> FrontPaths:
    run = config.runtime_dir
    socket_dir = run / "http"
    sock = socket_dir / "app.sock"
    if len(os.fsencode(sock)) > _SUN_PATH_MAX:
        # A deep PROVISIONER_HOME (test trees, long mount points) would not fit sun_path: a
        # short private directory of ours under /tmp, named after the runtime directory.
        digest = hashlib.sha1(os.fsencode(run)).hexdigest()[:16]
        socket_dir = Path("/tmp") / f"provisioner-{digest}"
        sock = socket_dir / "app.sock"
    return FrontPaths(
        run=run,
        conf=run / "nginx.conf",
        pid=run / "nginx.pid",
        temp=run / "nginx",
        socket_dir=socket_dir,
        socket=sock,
    )


def find_nginx(config: Config) -> str:
    """The nginx program, or ConfigError saying how to get it."""
    name = config.nginx
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        raise ConfigError(
            f"nginx not found ('{name}'): install the Debian package nginx "
            "(make run does), or set the nginx setting to its path"
        )
    return found


@dataclass(frozen=True)
class WorkerUser:
    """Who nginx's workers run as: `name` for the `user` directive (None: as provisionerd)."""

    name: str | None
    uid: int
    gid: int


def worker_user(config: Config) -> WorkerUser:
    if os.geteuid() != 0:
        return WorkerUser(None, os.geteuid(), os.getegid())
    try:
        entry = pwd.getpwnam(config.http_user)
    except KeyError:
        raise ConfigError(
            f"http_user '{config.http_user}' does not exist on this machine: nginx's workers "
            "need an unprivileged user (www-data on Debian)"
        ) from None
    return WorkerUser(entry.pw_name, entry.pw_uid, entry.pw_gid)


def unreadable(path: Path, user: WorkerUser) -> str | None:
    """Why `user` cannot list and read `path` (a directory), or None when it can.

    Walks every parent as the kernel would: each needs search permission for that user.
    """
    if user.uid == 0:
        return None
    groups = {user.gid}
    if user.name is not None:
        import grp

        groups |= {g.gr_gid for g in grp.getgrall() if user.name in g.gr_mem}
    real = Path(os.path.realpath(path))
    chain = [*reversed(real.parents), real]
    for i, part in enumerate(chain):
        try:
            st = os.stat(part)
        except FileNotFoundError:
            return f"{part} does not exist"
        need = stat.S_IXOTH | (stat.S_IROTH if i == len(chain) - 1 else 0)
        if st.st_uid == user.uid:
            mode = (st.st_mode >> 6) & 7
        elif st.st_gid in groups:
            mode = (st.st_mode >> 3) & 7
        else:
            mode = st.st_mode & 7
        if mode & need != need:
            what = "listed" if i == len(chain) - 1 else "entered"
            return f"{part} cannot be {what} by {user.name or user.uid}"
    return None


def check_roots(config: Config, user: WorkerUser) -> None:
    """ConfigError if nginx's workers could not read a served root."""
    for root in (config.install_dir, config.tftp_dir):
        why = unreadable(root, user)
        if why is not None:
            raise ConfigError(
                f"nginx serves {root} as user {user.name}, but {why}: make it readable "
                "(chmod o+rx on it and its parents) or set http_user"
            )


def descriptor_limit() -> int:
    """The hard limit on open files, which the supervisor also takes as its soft limit (its
    children inherit it)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return int(min(hard, 1 << 20))


def _quote(value: str | Path) -> str:
    """A path for nginx, quoted. nginx would expand `$` (alias takes variables) and has no
    escape for it, so such paths are refused rather than mangled."""
    text = str(value)
    bad = sorted({c for c in text if c in '$"\\\n\r\0'})
    if bad:
        raise ConfigError(f"nginx cannot serve a path containing {bad!r}: {text!r}")
    return f'"{text}"'


def _listen(address: str, port: int) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"{host}:{port}"


def render(config: Config, paths: FrontPaths, user: WorkerUser) -> str:
    """The whole nginx.conf for our settings."""
    workers = config.nginx_workers or "auto"
    # Workers cannot raise their descriptor limit past the hard one; a proxied request takes
    # two descriptors.
    nofile = descriptor_limit()
    connections = max(512, min(16384, nofile // 2 - 64))
    user_line = f"user {user.name};" if user.name else "# user: as provisionerd"
    types = "\n".join(f"        {mime} {exts};" for mime, exts in MIME_TYPES.items())
    install = _quote(f"{config.install_dir}/")
    boot = _quote(f"{config.tftp_dir}/")
    upstream = _quote(f"unix:{paths.socket}")
    temp = paths.temp
    # dnsmasq's lease script reports leases to 127.0.0.1: listen there too when the public
    # side is one address of the private interface.
    loopback = ""
    if config.http_address not in ("0.0.0.0", "::", "127.0.0.1", "localhost"):
        loopback = f"\n        listen {_listen('127.0.0.1', config.http_port)} backlog=4096;"
    return f"""\
# Written by provisionerd at every start from its settings; edits here are lost.
{user_line}
worker_processes {workers};
worker_rlimit_nofile {nofile};
pid {_quote(paths.pid)};
error_log stderr warn;
# The supervisor runs nginx in the foreground and owns its lifetime.
daemon off;
pcre_jit on;

events {{
    # A boot storm of a thousand nodes, plus as many slow or hostile connections.
    worker_connections {connections};
    multi_accept on;
}}

http {{
    types {{
{types}
    }}
    default_type application/octet-stream;
    server_tokens off;

    # One JSON object per line, like every other service of provisionerd.
    log_format provisioner escape=json
        '{{"time":$msec,"level":"info","component":"nginx",'
        '"message":"$remote_addr \\\\"$request\\\\" $status $body_bytes_sent $request_time",'
        '"client":"$remote_addr","method":"$request_method","uri":"$uri","status":$status,'
        '"bytes":$body_bytes_sent,"seconds":$request_time,"upstream":"$upstream_addr",'
        '"upstream_seconds":"$upstream_response_time"}}';
    access_log /dev/stdout provisioner buffer=64k flush=1s;

    client_body_temp_path {_quote(temp / "body")};
    proxy_temp_path {_quote(temp / "proxy")};
    fastcgi_temp_path {_quote(temp / "fastcgi")};
    uwsgi_temp_path {_quote(temp / "uwsgi")};
    scgi_temp_path {_quote(temp / "scgi")};

    # Files: straight from the page cache to the socket.
    sendfile on;
    # Small enough that one busy download does not hold the worker's event loop (and every
    # kickstart waiting behind it) for long; large enough to cost nothing in throughput.
    sendfile_max_chunk 256k;
    tcp_nopush on;
    tcp_nodelay on;

    # Slow clients: a request must arrive in whole within these, and a response must keep
    # moving (send_timeout is between two writes, not for the whole transfer: a 200 MB
    # image at 100 KB/s is fine, a client that stops reading is not).
    client_header_timeout 10s;
    client_body_timeout 10s;
    send_timeout 60s;
    keepalive_timeout 15s;
    keepalive_requests 1000;
    reset_timedout_connection on;
    client_header_buffer_size 1k;
    large_client_header_buffers 4 8k;
    client_max_body_size 1m;

    # Connections to the workers stay open between requests (provisioner/web/worker.py): no
    # connect, accept or close per kickstart.
    upstream provisioner_app {{
        server {upstream} max_fails=0;
        keepalive 32;
        keepalive_requests 100000;
        keepalive_timeout 60s;
    }}

    server {{
        listen {_listen(config.http_address, config.http_port)} backlog=4096;{loopback}
        server_name _;

        # The dynamic paths: to gunicorn, whole requests in, whole responses out.
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $http_host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $remote_addr;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_buffering on;
        proxy_request_buffering on;
        proxy_buffer_size 32k;
        proxy_buffers 16 32k;
        proxy_busy_buffers_size 64k;
        proxy_max_temp_file_size 256m;
        proxy_connect_timeout 10s;
        proxy_send_timeout 60s;
        proxy_read_timeout 300s;
        # A kept-alive connection the workers closed (a worker replaced) is tried once more
        # for GET and HEAD; a POST (callbacks, API writes) is never sent twice.
        proxy_next_upstream error;
        proxy_next_upstream_tries 2;

        location / {{
            proxy_pass http://provisioner_app;
        }}

        # Rocks' paths: /install/sbin/ holds what installers call (kickstart.cgi,
        # setPxeboot.cgi, partition and event reports), the rest of /install/ is the tree.
        location ^~ /install/sbin/ {{
            proxy_pass http://provisioner_app;
        }}

        location ^~ /install/ {{
            alias {install};
            disable_symlinks if_not_owner from=$document_root;
            autoindex off;
        }}

        location ^~ /boot/files/ {{
            alias {boot};
            disable_symlinks if_not_owner from=$document_root;
            autoindex off;
        }}
    }}
}}
"""


def prepare(config: Config, paths: FrontPaths, user: WorkerUser) -> None:
    """Create the runtime directories with the right owners and write nginx.conf.

    The socket directory is the only way to the workers' socket: the owner (provisionerd)
    and nginx's workers' group may enter it, nobody else.
    """
    paths.run.mkdir(parents=True, exist_ok=True)
    paths.temp.mkdir(parents=True, exist_ok=True)
    _private_dir(paths.socket_dir, user)
    tmp = paths.conf.with_suffix(".conf.tmp")
    tmp.write_text(render(config, paths, user))
    os.replace(tmp, paths.conf)


def _private_dir(path: Path, user: WorkerUser) -> None:
    try:
        os.mkdir(path, 0o750)
    except FileExistsError:
        pass
    st = os.lstat(path)
    # Under /tmp someone else could have made it first, or left a symlink there.
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise ConfigError(f"{path} is not a directory owned by this user: remove it")
    os.chown(path, -1, user.gid)
    os.chmod(path, 0o750)
