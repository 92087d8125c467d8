"""Boot configs computed from the database when a node asks: pxelinux, GRUB (UEFI) and iPXE.

Nothing is written to disk. A pxelinux client asks for `pxelinux.cfg/01-<mac>`, then
`pxelinux.cfg/<HEXIP>` (what Rocks wrote), then `default`; GRUB for `grub.cfg-01-<mac>`,
`grub.cfg-<HEXIP>`, `grub.cfg`; iPXE fetches `/boot/ipxe?mac=...` over HTTP. Each answer follows
the host's boot state: install uses its install action, os/run its run action (reference §3.3).
Unknown machines get the install action while discovery is on, else a local boot.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from provisioner.db.reader import Reader
from provisioner.services import boot as boot_service
from provisioner.services.discovery import is_on as discovery_on
from provisioner.services.hostargs import HostRow
from provisioner.services.identity import host_by_boot_address
from provisioner.services.urls import base_url

if TYPE_CHECKING:
    from provisioner.config import Config
    from provisioner.hooks import Hooks

KICKSTART_PATH = "/install/sbin/kickstart.cgi"
_PXE_MAC = re.compile(r"^01-((?:[0-9a-f]{2}-){5}[0-9a-f]{2})$")
_HEXIP = re.compile(r"^[0-9A-F]{8}$")
_GRUB = re.compile(r"(?:^|/)grub\.cfg(?:-(.+))?$")


@dataclass(frozen=True)
class BootSpec:
    """What to boot: a kernel with initrd and arguments, or a raw loader line (`localboot 0`,
    `kernel memdisk bigraw`), or the local disk."""

    label: str
    kernel: str | None = None
    initrd: str | None = None
    args: str = ""
    raw: str | None = None
    local: bool = False


LOCAL = BootSpec("os", local=True, raw="localboot 0")


def hexip(ip: str) -> str:
    """`10.1.255.254` -> `0A01FFFE`, the name Rocks gave a host's pxelinux file."""
    return "".join(f"{int(o):02X}" for o in ip.split("."))


def ip_from_hex(text: str) -> str | None:
    if not _HEXIP.match(text):
        return None
    return str(ipaddress.IPv4Address(int(text, 16)))


def mac_from_pxe(name: str) -> str | None:
    """`01-52-54-00-12-34-57` (pxelinux and GRUB spelling) -> `52:54:00:12:34:57`."""
    m = _PXE_MAC.match(name.lower())
    return m.group(1).replace("-", ":") if m else None


# Rocks' installer options and their names in today's installer (anaconda's `inst.` prefix).
LEGACY = {
    "kssendmac": "inst.ks.sendmac",
    "rescue": "inst.rescue",
    "vnc": "inst.vnc",
    "headless": "inst.text",
}


def install_args(args: str | None, ks_url: str, bootflags: str) -> str:
    """Rocks' install arguments for today's installer: a bare `ks` becomes the kickstart URL
    (both spellings); `kssendmac`, `rescue`, `vnc`, `headless` gain their modern names; the
    host's boot flags follow."""
    out: list[str] = []
    for token in (args or "").split():
        if token == "ks":
            out += [f"ks={ks_url}", f"inst.ks={ks_url}"]
        elif token in LEGACY:
            out += [token, LEGACY[token]]
        else:
            out.append(token)
    for flag in bootflags.split():
        if flag not in out:
            out.append(flag)
    return " ".join(out)


def spec_for_action(action: boot_service.Action | None, ks_url: str, bootflags: str) -> BootSpec:
    if action is None or not action.kernel:
        return LOCAL
    kernel = action.kernel.strip()
    if kernel.startswith("localboot"):
        return BootSpec(action.action, raw=kernel, local=True)
    if " " in kernel:
        # A raw loader line such as "kernel memdisk bigraw" or "kernel memtest": its arguments
        # are the loader's (keeppxe), not a Linux command line.
        return BootSpec(action.action, raw=kernel, initrd=action.ramdisk, args=action.args or "")
    args = install_args(action.args, ks_url, bootflags)
    return BootSpec(action.action, kernel=kernel, initrd=action.ramdisk, args=args)


def host_spec(reader: Reader, host: HostRow, url: str) -> BootSpec:
    name = boot_service.effective_action_name(host.boot_action, host.installaction, host.runaction)
    if name is None:
        return LOCAL
    action = boot_service.find_action(reader, name, host.id)
    return spec_for_action(action, url + KICKSTART_PATH, boot_service.bootflags(reader, host.id))


def default_spec(reader: Reader, url: str) -> BootSpec:
    """For machines we do not know: install while discovery is on, else the local disk."""
    if not discovery_on(reader):
        return LOCAL
    action = boot_service.find_action(reader, "install")
    return spec_for_action(action, url + KICKSTART_PATH, boot_service.bootflags(reader, None))


# -- renderers ----------------------------------------------------------------------------------


def _fetched(name: str, files_url: str | None) -> str:
    """A boot file as the loader should fetch it: a URL under /boot/files/ when the payload
    travels over HTTP (`files_url`), else its TFTP name."""
    if files_url is None or "://" in name:
        return name
    return f"{files_url}/{name.lstrip('/')}"


def _raw_line(raw: str, files_url: str | None) -> str:
    """`kernel memdisk bigraw` -> `kernel http://.../boot/files/memdisk bigraw` over HTTP."""
    words = raw.split()
    if len(words) >= 2 and words[0].lower() in ("kernel", "linux", "com32"):
        words[1] = _fetched(words[1], files_url)
        return " ".join(words)
    return raw


def render_pxelinux(spec: BootSpec, files_url: str | None = None) -> str:
    """Rocks' pxelinux file. With `files_url` (lpxelinux.0, which speaks HTTP) the kernel and
    initrd are URLs, so TFTP carries only the loader and this file."""
    lines = ["default rocks", "prompt 0", "label rocks"]
    initrd = _fetched(spec.initrd, files_url) if spec.initrd else None
    if spec.raw is not None and spec.kernel is None:
        lines.append(f"\t{spec.raw if spec.local else _raw_line(spec.raw, files_url)}")
        append = spec.args
        if initrd:
            append = f"initrd={initrd} {append}".strip()
        if append and not spec.local:
            lines.append(f"\tappend {append}")
        return "\n".join(lines) + "\n"
    assert spec.kernel is not None
    lines.append(f"\tkernel {_fetched(spec.kernel, files_url)}")
    append = spec.args + (f" initrd={initrd}" if initrd else "")
    lines.append(f"\tappend {append.strip()}")
    if "bootif" in spec.args.lower():
        lines.append("\tipappend 2")
    return "\n".join(lines) + "\n"


def grub_device(files_url: str | None) -> str:
    """Where GRUB fetches boot files: `(tftp)`, or `(http,host:port)/boot/files` over HTTP
    (GRUB's http module: not in Debian's signed grubnetx64.efi, see docs/deployment.md)."""
    if files_url is None:
        return "(tftp)"
    rest = files_url.split("://", 1)[1]
    hostport, _, path = rest.partition("/")
    return f"(http,{hostport})/{path}"


def render_grub(spec: BootSpec, tftp: str = "(tftp)") -> str:
    lines = ["set timeout=0", "set default=0"]
    if spec.local or spec.kernel is None:
        # Back to the firmware, which boots the next device in its order: the local disk.
        lines.append("exit 1")
        return "\n".join(lines) + "\n"
    lines.append(f"menuentry '{spec.label}' {{")
    # GRUB has no IPAPPEND: name the boot interface by its MAC the way dracut expects.
    args = spec.args.replace("ksdevice=bootif", "ksdevice=$net_default_mac")
    kernel = spec.kernel if "://" in spec.kernel else f"{tftp}/{spec.kernel}"
    lines.append(f"\tlinux {kernel} {args} BOOTIF=01-$net_default_mac".rstrip())
    if spec.initrd:
        initrd = spec.initrd if "://" in spec.initrd else f"{tftp}/{spec.initrd}"
        lines.append(f"\tinitrd {initrd}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_ipxe(spec: BootSpec, files_url: str) -> str:
    lines = ["#!ipxe"]
    if spec.local or spec.kernel is None:
        lines.append("exit")
        return "\n".join(lines) + "\n"
    kernel = spec.kernel if "://" in spec.kernel else f"{files_url}/{spec.kernel}"
    args = spec.args.replace("ksdevice=bootif", "ksdevice=${net0/mac}")
    initrd_arg = f" initrd={spec.initrd.rsplit('/', 1)[-1]}" if spec.initrd else ""
    lines.append(f"kernel {kernel} {args}{initrd_arg} BOOTIF=01-${{net0/mac:hexhyp}}".rstrip())
    if spec.initrd:
        initrd = spec.initrd if "://" in spec.initrd else f"{files_url}/{spec.initrd}"
        lines.append(f"initrd {initrd}")
    lines.append("boot")
    return "\n".join(lines) + "\n"


def render_for_host(config: Config, reader: Reader, host: HostRow, flavor: str) -> str:
    """The base roll's boot config for a known host (its `render_boot_config`, trylast)."""
    url = base_url(config, reader)
    spec = host_spec(reader, host, url)
    return render(spec, flavor, url, config.boot_payload)


def render(spec: BootSpec, flavor: str, url: str, payload: str = "http") -> str:
    """`payload` says how kernels and initrds travel: `http` from nginx's /boot/files/, or
    `tftp` (iPXE fetches over HTTP either way)."""
    files_url = url + "/boot/files"
    over_http = files_url if payload == "http" else None
    if flavor == "pxelinux":
        return render_pxelinux(spec, over_http)
    if flavor == "grub":
        return render_grub(spec, grub_device(over_http))
    if flavor == "ipxe":
        return render_ipxe(spec, files_url)
    raise ValueError(f"unknown boot loader '{flavor}'")


# -- the service --------------------------------------------------------------------------------


class BootConfigs:
    """The `dynamic` function of the TFTP server and the iPXE answer of the HTTP server.

    `reader` is called for each request and must return a Reader usable in the calling thread
    (a per-thread connection without a snapshot, so each request sees the latest state). A
    known host's config comes from the rolls' `render_boot_config` hook (the base roll's
    implementation last); machines we do not know get the default.
    """

    def __init__(
        self, config: Config, reader: Callable[[], Reader], hooks: Hooks | None = None
    ) -> None:
        self.config = config
        self._reader = reader
        self._hooks = hooks

    def config_for(
        self, flavor: str, mac: str | None = None, ip: str | None = None
    ) -> tuple[str, bool]:
        """The `flavor` boot config of the host with this MAC or IP, or the default for
        machines we do not know; and whether the host is known."""
        reader = self._reader()
        host = host_by_boot_address(reader, mac, ip)
        if host is None:
            url = base_url(self.config, reader)
            spec = default_spec(reader, url)
            return render(spec, flavor, url, self.config.boot_payload), False
        if self._hooks is not None:
            from provisioner.services.attrs import LazyAttrs

            text = self._hooks.render_boot_config(
                self.config, reader, host, flavor, LazyAttrs(reader, host)
            )
            if text is not None:
                return text, True
        return render_for_host(self.config, reader, host, flavor), True

    def tftp(self, path: str, client: tuple[str, int]) -> bytes | None:
        """Boot config files by TFTP path; None for anything else (read from the tftp root)."""
        path = path.lstrip("/")
        if path.startswith("pxelinux.cfg/"):
            name = path[len("pxelinux.cfg/") :]
            if name == "default":
                return self.config_for("pxelinux")[0].encode()
            mac = mac_from_pxe(name)
            ip = ip_from_hex(name) if mac is None else None
            if mac is None and ip is None:
                return None
            text, known = self.config_for("pxelinux", mac=mac, ip=ip)
            # An unknown machine falls through to pxelinux's next candidates and `default`.
            return text.encode() if known else None
        m = _GRUB.search(path)
        if m is not None:
            suffix = m.group(1)
            if suffix is None:
                return self.config_for("grub")[0].encode()
            mac = mac_from_pxe(suffix)
            ip = ip_from_hex(suffix) if mac is None else None
            if mac is None and ip is None:
                return None
            text, known = self.config_for("grub", mac=mac, ip=ip)
            return text.encode() if known else None
        return None

    def ipxe(self, mac: str | None, ip: str | None = None) -> str:
        return self.config_for("ipxe", mac=mac, ip=ip)[0]
