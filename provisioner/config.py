"""Settings: one declarative table of settings, read from a TOML file and PROVISIONER_* variables.

Every setting is a `Setting` with its name, type, default and doc; `Config` is the frozen result
that the CLI, the daemons and the tests pass around. docs/configuration.md is checked against
`SETTINGS` by a test, so a new setting cannot go undocumented.

Precedence, last wins: the default, the TOML file (`$PROVISIONER_HOME/provisioner.toml` or
`$PROVISIONER_CONFIG`), the environment variable `PROVISIONER_<NAME>`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from provisioner.errors import ConfigError

DEFAULT_HOME = "/var/lib/provisioner"


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "y", "yes", "true", "on"):
        return True
    if text in ("0", "n", "no", "false", "off", ""):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _list(value: Any) -> tuple[str, ...]:
    if isinstance(value, list | tuple):
        return tuple(str(v).strip() for v in value if str(v).strip())
    return tuple(v.strip() for v in str(value).split(",") if v.strip())


def _int(value: Any) -> int:
    return int(value)


def _str(value: Any) -> str:
    return str(value)


def _payload(value: Any) -> str:
    text = str(value).strip().lower()
    if text not in ("http", "tftp"):
        raise ValueError(f"must be http or tftp, not {value!r}")
    return text


@dataclass(frozen=True)
class Setting:
    """One setting: its key in the TOML file, its environment variable and its meaning."""

    name: str
    parse: Callable[[Any], Any]
    doc: str
    section: str = "general"

    @property
    def env(self) -> str:
        return "PROVISIONER_" + self.name.upper()


def _setting(name: str, default: Any, parse: Callable[[Any], Any], doc: str, section: str) -> Any:
    return field(
        default=default,
        metadata={"setting": Setting(name=name, parse=parse, doc=doc, section=section)},
    )


@dataclass(frozen=True)
class Config:
    """The resolved settings: `Config.load()` for the process, `Config.for_home()` in tests."""

    home: Path = _setting(
        "home",
        Path(DEFAULT_HOME),
        Path,
        "Directory holding the server's state: the SQLite database, generated daemon "
        "configuration, the install tree and the tftpboot directory, unless set separately.",
        "general",
    )
    database_url: str = _setting(
        "database_url",
        "",
        _str,
        "SQLAlchemy URL of the cluster database. Empty means the embedded SQLite file "
        "`$PROVISIONER_HOME/provisioner.db` (WAL mode). PostgreSQL: "
        "`postgresql+psycopg://user:password@host/dbname`.",
        "database",
    )
    database_timeout: int = _setting(
        "database_timeout",
        60,
        _int,
        "Seconds a command waits for another writer to finish before it gives up with "
        "'database is busy'.",
        "database",
    )
    site_profiles: Path = _setting(
        "site_profiles",
        Path(""),
        Path,
        "Directory of the site's own node graph files (`nodes/`, `graphs/<name>/`), searched "
        "before every roll's. Empty means `$PROVISIONER_HOME/site-profiles`. Point it at a "
        "checkout of your site's repository to keep customisations under version control; the "
        "project's `site-profiles/` is a skeleton with worked examples.",
        "graph",
    )
    eval_enabled: bool = _setting(
        "eval_enabled",
        False,
        _bool,
        "Run `<eval>` tags of node files (shell on this server at kickstart time). Off by "
        "default: a node file should not be able to run code here.",
        "graph",
    )
    http_address: str = _setting(
        "http_address",
        "0.0.0.0",
        _str,
        "Address the HTTP server (kickstarts, install tree, callbacks, API) listens on.",
        "server",
    )
    http_port: int = _setting("http_port", 80, _int, "Port of the HTTP server.", "server")
    http_workers: int = _setting(
        "http_workers",
        0,
        _int,
        "gunicorn worker processes; 0 means one per CPU.",
        "server",
    )
    http_worker_timeout: int = _setting(
        "http_worker_timeout",
        30,
        _int,
        "Seconds a gunicorn worker may spend on one request before it is replaced. Only "
        "dynamic requests reach the workers: nginx serves files itself and buffers slow "
        "clients, so a slow node never holds a worker.",
        "server",
    )
    http_worker_nice: int = _setting(
        "http_worker_nice",
        -5,
        _int,
        "Niceness added to the HTTP workers' (needs root to lower it). Their requests are short "
        "and someone waits for each (a kickstart, a callback), so under a boot storm they go "
        "ahead of the bulk transfers; 0 leaves them at provisionerd's own priority.",
        "server",
    )
    http_user: str = _setting(
        "http_user",
        "www-data",
        _str,
        "User nginx's worker processes run as when provisionerd runs as root (the install "
        "tree and the tftpboot directory must be readable by it; provisionerd checks at "
        "start). Ignored when provisionerd is not root.",
        "server",
    )
    nginx: str = _setting(
        "nginx",
        "nginx",
        _str,
        "The nginx program provisionerd runs in front of the HTTP workers (a name looked up "
        "in PATH and /usr/sbin, or a path).",
        "server",
    )
    nginx_workers: int = _setting(
        "nginx_workers", 0, _int, "nginx worker processes; 0 means one per CPU.", "server"
    )
    run_dir: Path = _setting(
        "run_dir",
        Path(""),
        Path,
        "Directory of provisionerd's runtime files: the generated nginx configuration, its "
        "pid and temporary files, and the HTTP workers' socket. Empty means "
        "`$PROVISIONER_HOME/run`.",
        "server",
    )
    boot_payload: str = _setting(
        "boot_payload",
        "http",
        _payload,
        "How nodes fetch kernels and initrds: `http` (from nginx; BIOS clients load "
        "lpxelinux.0, which speaks HTTP, UEFI ones iPXE) or `tftp` (plain pxelinux.0; slow "
        "and lossy under load, for sites whose loaders cannot do HTTP). TFTP carries only the "
        "first-stage loader and its config with `http`.",
        "server",
    )
    public_url: str = _setting(
        "public_url",
        "",
        _str,
        "Base URL nodes use to reach the HTTP server (`http://10.1.1.1`), written into boot "
        "configs. Empty: `http://<Kickstart_PrivateKickstartHost>` (with `:http_port` unless 80).",
        "server",
    )
    tftp_address: str = _setting(
        "tftp_address", "0.0.0.0", _str, "Address of the TFTP server.", "server"
    )
    tftp_port: int = _setting("tftp_port", 69, _int, "Port of the TFTP server.", "server")
    tftp_root: Path = _setting(
        "tftp_root",
        Path(""),
        Path,
        "Directory of boot loaders and boot files (lpxelinux.0, ldlinux.c32, ipxe.efi, "
        "vmlinuz, initrd.img...): TFTP serves the loaders from it, nginx the kernels and "
        "initrds as `/boot/files/`. Boot configs are computed, not read from it. Empty means "
        "`$PROVISIONER_HOME/tftpboot`.",
        "server",
    )
    install_root: Path = _setting(
        "install_root",
        Path(""),
        Path,
        "Directory served as `/install/` (distributions, rolls). Empty means "
        "`$PROVISIONER_HOME/install`.",
        "server",
    )
    dns_address: str = _setting(
        "dns_address", "0.0.0.0", _str, "Address of the DNS server.", "server"
    )
    dns_port: int = _setting(
        "dns_port", 53, _int, "Port of the DNS server; 0 turns DNS off.", "server"
    )
    dns_upstreams: tuple[str, ...] = _setting(
        "dns_upstreams",
        (),
        _list,
        "Resolvers (`ip` or `ip:port`, comma separated) that names outside our zones are "
        "forwarded to; none means such queries are REFUSED.",
        "server",
    )
    dnsmasq_dir: Path = _setting(
        "dnsmasq_dir",
        Path(""),
        Path,
        "Where `rocks sync config` writes the dnsmasq configuration (dnsmasq.conf and the "
        "dhcp-hostsdir). Empty means `$PROVISIONER_HOME/dnsmasq`.",
        "dhcp",
    )
    dnsmasq_restart: str = _setting(
        "dnsmasq_restart",
        "",
        _str,
        "Shell command `rocks sync config` runs when dnsmasq's main configuration changed "
        "(`systemctl restart dnsmasq`). Host files need no restart.",
        "dhcp",
    )
    dhcp_interface: str = _setting(
        "dhcp_interface", "", _str, "Interface dnsmasq serves DHCP on (empty: all).", "dhcp"
    )
    api_token: str = _setting(
        "api_token",
        "",
        _str,
        "Bearer token that writes to the JSON API must carry. Empty: the token is read from "
        "`$PROVISIONER_HOME/api-token` (created on first start, mode 0600).",
        "server",
    )
    disabled_plugins: tuple[str, ...] = _setting(
        "disabled_plugins",
        (),
        _list,
        "Rolls (plugins) not to load, by name, comma separated (`xen,myroll`). The base roll "
        "cannot be disabled.",
        "plugins",
    )

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, file: Path | None = None) -> Config:
        """Defaults, then the TOML file, then the environment."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        home = Path(env.get("PROVISIONER_HOME") or DEFAULT_HOME)
        if file is None:
            file = Path(env["PROVISIONER_CONFIG"]) if env.get("PROVISIONER_CONFIG") else None
            if file is None and (home / "provisioner.toml").is_file():
                file = home / "provisioner.toml"
        if file is not None:
            values.update(_read_toml(file))
        for s in settings():
            if s.env in env:
                values[s.name] = env[s.env]
        if "home" not in values:
            values["home"] = home
        return cls.from_mapping(values, origin=str(file) if file else "environment")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], origin: str = "settings") -> Config:
        known = {s.name: s for s in settings()}
        kwargs: dict[str, Any] = {}
        for key, raw in values.items():
            s = known.get(key)
            if s is None:
                raise ConfigError(f"unknown setting '{key}' in {origin}")
            try:
                kwargs[key] = s.parse(raw)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"bad value for setting '{key}' in {origin}: {exc}") from None
        return cls(**kwargs)

    @classmethod
    def for_home(cls, home: Path | str, **overrides: Any) -> Config:
        """A config rooted at `home` with nothing read from the environment (tests, tools)."""
        return cls.from_mapping({"home": Path(home), **overrides}, origin="arguments")

    def with_(self, **overrides: Any) -> Config:
        return replace(self, **overrides)

    @property
    def site_profiles_dir(self) -> Path:
        return (
            self.site_profiles
            if str(self.site_profiles) not in ("", ".")
            else self.home / "site-profiles"
        )

    def _under_home(self, value: Path, name: str) -> Path:
        return value if str(value) not in ("", ".") else self.home / name

    @property
    def tftp_dir(self) -> Path:
        return self._under_home(self.tftp_root, "tftpboot")

    @property
    def install_dir(self) -> Path:
        return self._under_home(self.install_root, "install")

    @property
    def runtime_dir(self) -> Path:
        return self._under_home(self.run_dir, "run")

    @property
    def dnsmasq_conf_dir(self) -> Path:
        return self._under_home(self.dnsmasq_dir, "dnsmasq")

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'provisioner.db'}"


def settings() -> list[Setting]:
    return [f.metadata["setting"] for f in fields(Config)]


def _read_toml(path: Path) -> dict[str, Any]:
    import tomllib

    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    flat: dict[str, Any] = {}
    for key, value in data.items():
        # Sections only group keys in the file; names are unique across sections.
        if isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    return flat
