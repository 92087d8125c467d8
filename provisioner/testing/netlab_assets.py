"""Boot assets for the netlab, cached across runs: the Debian cloud kernel (lz4, fast under
TCG, virtio drivers as modules), a busybox-static initrd whose /init fetches a kickstart and
calls back (provisioner/testing/netboot/), and the PXE loaders from Debian packages.

The cache directory is $PROVISIONER_E2E_CACHE (default /var/cache/provisioner-e2e). The first
run downloads the kernel package with `apt-get download` (the only network access outside the
lab namespaces, to the configured Debian mirror) and keeps just vmlinuz and the virtio modules;
later runs reuse them. The initrd is rebuilt when /init, busybox or the modules change.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from provisioner.testing.netlab import NetlabError

DEFAULT_CACHE = Path("/var/cache/provisioner-e2e")
NETBOOT_DIR = Path(__file__).with_name("netboot")
BUSYBOX = Path("/bin/busybox")
KERNEL_META = "linux-image-cloud-amd64"
ABI_MEMO_SECONDS = 24 * 3600
# Load order matters (insmod resolves nothing by itself); a module built in is simply absent.
VIRTIO_MODULES = (
    "net/core/failover",
    "drivers/net/net_failover",
    "drivers/virtio/virtio_ring",
    "drivers/virtio/virtio",
    "drivers/virtio/virtio_pci_modern_dev",
    "drivers/virtio/virtio_pci_legacy_dev",
    "drivers/virtio/virtio_pci",
    "drivers/net/virtio_net",
)
# TFTP name -> candidates on a Debian system (pxelinux, syslinux-common, ipxe).
LOADERS = {
    "pxelinux.0": ("/usr/lib/PXELINUX/pxelinux.0",),
    "lpxelinux.0": ("/usr/lib/PXELINUX/lpxelinux.0",),
    "ldlinux.c32": ("/usr/lib/syslinux/modules/bios/ldlinux.c32",),
    "ipxe.efi": ("/usr/lib/ipxe/ipxe.efi", "/boot/ipxe.efi"),
    "snponly.efi": ("/usr/lib/ipxe/snponly.efi",),
}


def cache_dir() -> Path:
    return Path(os.environ.get("PROVISIONER_E2E_CACHE") or DEFAULT_CACHE)


@dataclass(frozen=True)
class BootAssets:
    """Paths of cached boot files; `populate_tftp` lays them out for one test."""

    cache: Path
    kernel_version: str
    kernel: Path
    initrd: Path
    loaders: dict[str, Path]

    def populate_tftp(
        self,
        root: Path,
        *,
        kernel_name: str = "vmlinuz",
        initrd_name: str = "initrd.gz",
        loaders: Sequence[str] | None = None,
    ) -> Path:
        """Fill `root` with the loaders (all by default), kernel, initrd and an empty
        pxelinux.cfg/ directory. Files are hard links into the cache where possible (same
        file system), copies otherwise; tests must not write to them."""
        (root / "pxelinux.cfg").mkdir(parents=True, exist_ok=True)
        for name in self.loaders if loaders is None else loaders:
            _place(self.loaders[name], root / name)
        _place(self.kernel, root / kernel_name)
        _place(self.initrd, root / initrd_name)
        return root


def _place(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.unlink(missing_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


@contextlib.contextmanager
def _locked(cache: Path) -> Iterator[None]:
    """Concurrent test runs share the cache: one builds, the others wait for it."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_assets(cache: Path | None = None) -> BootAssets:
    """Return the cached assets, downloading and building what is missing (first run ~10 s;
    later runs ~0.1 s). $PROVISIONER_E2E_KERNEL_DEB may name a local kernel .deb instead."""
    cache = cache or cache_dir()
    with _locked(cache):
        kdir = _ensure_kernel(cache)
        version = kdir.name
        initrd = _ensure_initrd(cache, kdir)
        loaders = {name: _find_loader(name, paths) for name, paths in LOADERS.items()}
    return BootAssets(cache, version, kdir / "vmlinuz", initrd, loaders)


def _find_loader(name: str, candidates: Sequence[str]) -> Path:
    for path in candidates:
        if os.path.exists(path):
            return Path(path).resolve()
    raise NetlabError(
        f"{name} not found at {' or '.join(candidates)} (Debian packages: "
        "pxelinux syslinux-common ipxe)"
    )


def resolve_cloud_abi() -> str:
    """`6.1.0-56`: the ABI the linux-image-cloud-amd64 meta package points at (changes with
    point releases, so it is looked up, not written down)."""
    for attempt in range(2):
        proc = subprocess.run(
            ["apt-cache", "depends", KERNEL_META], capture_output=True, text=True, timeout=60
        )
        for line in proc.stdout.splitlines():
            word = line.split(":", 1)[-1].strip()
            if line.strip().startswith("Depends:") and word.startswith("linux-image-"):
                return word.removeprefix("linux-image-").removesuffix("-cloud-amd64")
        if attempt == 0 and os.geteuid() == 0:
            # A fresh machine may have no package lists yet (apt-get installed nothing).
            _run(["apt-get", "update", "-qq"], timeout=600)
    raise NetlabError(f"apt-cache depends {KERNEL_META} names no kernel (apt-get update?)")


def _ensure_kernel(cache: Path) -> Path:
    kernels = cache / "kernel"
    local_deb = os.environ.get("PROVISIONER_E2E_KERNEL_DEB")
    if local_deb:
        package = _run(["dpkg-deb", "--field", local_deb, "Package"], timeout=60).stdout
        kdir = kernels / package.strip().removeprefix("linux-image-")
        if (kdir / "vmlinuz").exists():
            return kdir
        return _extract_kernel(Path(local_deb), kernels)
    memo = kernels / "abi"
    try:
        # apt-cache costs 1-3 s on a busy box: ask it at most once a day.
        if memo.exists() and time.time() - memo.stat().st_mtime < ABI_MEMO_SECONDS:
            abi = memo.read_text().strip()
        else:
            abi = resolve_cloud_abi()
            kernels.mkdir(parents=True, exist_ok=True)
            memo.write_text(abi + "\n")
    except (NetlabError, OSError, subprocess.SubprocessError) as exc:
        # Offline with an older download: keep testing with what the cache has.
        cached = sorted(p for p in kernels.glob("*/vmlinuz"))
        if cached:
            return cached[-1].parent
        raise NetlabError(f"cannot find the cloud kernel to download: {exc}") from exc
    kdir = kernels / f"{abi}-cloud-amd64"
    if (kdir / "vmlinuz").exists():
        return kdir
    package = f"linux-image-{abi}-cloud-amd64"
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as tmp:
        _run(["apt-get", "download", "-q", package], cwd=Path(tmp), timeout=600)
        debs = sorted(Path(tmp).glob(f"{package}_*.deb"))
        if not debs:
            raise NetlabError(f"apt-get download {package} produced no .deb")
        return _extract_kernel(debs[0], kernels)


def _extract_kernel(deb: Path, kernels: Path) -> Path:
    """Keep only /boot/vmlinuz-* and the virtio modules of the package (the rest is 100 MB)."""
    wanted = {m.rsplit("/", 1)[-1] + ".ko": m for m in VIRTIO_MODULES}
    tmp = Path(tempfile.mkdtemp(dir=kernels.parent, prefix=".extract-"))
    tmp.chmod(0o755)
    try:
        version = None
        with subprocess.Popen(
            ["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE
        ) as proc:
            assert proc.stdout is not None
            with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                for member in tar:
                    name = member.name.removeprefix("./")
                    base = name.rsplit("/", 1)[-1]
                    if name.startswith("boot/vmlinuz-") and member.isfile():
                        version = base.removeprefix("vmlinuz-")
                        target = tmp / "vmlinuz"
                    elif base in wanted and name.endswith(wanted[base] + ".ko"):
                        target = tmp / "modules" / base
                    else:
                        continue
                    target.parent.mkdir(exist_ok=True)
                    src = tar.extractfile(member)
                    assert src is not None
                    with open(target, "wb") as out:
                        shutil.copyfileobj(src, out)
        if proc.returncode != 0 or version is None:
            raise NetlabError(f"{deb}: no kernel found (dpkg-deb exit {proc.returncode})")
        if not (tmp / "modules" / "virtio_net.ko").exists():
            raise NetlabError(f"{deb}: virtio_net.ko not found as a module")
        kdir = kernels / version
        kernels.mkdir(parents=True, exist_ok=True)
        if kdir.exists():
            shutil.rmtree(kdir)
        tmp.rename(kdir)
        return kdir
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _is_static_elf(path: Path) -> bool:
    """True when the ELF64 file has no PT_INTERP (a dynamic busybox cannot run in the initrd)."""
    data = path.read_bytes()
    if data[:5] != b"\x7fELF\x02":
        return False
    phoff = int.from_bytes(data[0x20:0x28], "little")
    phentsize = int.from_bytes(data[0x36:0x38], "little")
    phnum = int.from_bytes(data[0x38:0x3A], "little")
    for i in range(phnum):
        off = phoff + i * phentsize
        if int.from_bytes(data[off : off + 4], "little") == 3:  # PT_INTERP
            return False
    return True


def _ensure_initrd(cache: Path, kdir: Path) -> Path:
    modules = [kdir / "modules" / (m.rsplit("/", 1)[-1] + ".ko") for m in VIRTIO_MODULES]
    modules = [m for m in modules if m.exists()]
    if not BUSYBOX.exists() or not _is_static_elf(BUSYBOX):
        raise NetlabError(f"{BUSYBOX} is missing or not static (Debian package busybox-static)")
    inputs = [NETBOOT_DIR / "init", NETBOOT_DIR / "udhcpc.script", BUSYBOX, *modules]
    digest = hashlib.sha256()
    for path in inputs:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    out = cache / "initrd" / f"initrd-{kdir.name}-{digest.hexdigest()[:12]}.gz"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    order = "".join(m.stem + "\n" for m in modules).encode()
    entries: list[tuple[str, int, bytes]] = [
        (d, 0o040755, b"")
        for d in ("bin", "dev", "proc", "sys", "tmp", "etc", "lib", "lib/modules")
    ]
    entries += [
        ("lib/modules/netlab", 0o040755, b""),
        ("init", 0o100755, (NETBOOT_DIR / "init").read_bytes()),
        ("udhcpc.script", 0o100755, (NETBOOT_DIR / "udhcpc.script").read_bytes()),
        ("bin/busybox", 0o100755, BUSYBOX.read_bytes()),
        ("lib/modules/netlab/load-order", 0o100644, order),
    ]
    entries += [(f"lib/modules/netlab/{m.name}", 0o100644, m.read_bytes()) for m in modules]
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(gzip.compress(newc_archive(entries), compresslevel=9, mtime=0))
    tmp.replace(out)
    # Initrds of an older /init go after a day (not at once: another checkout may use one).
    for old in out.parent.glob("initrd-*.gz"):
        if old != out and time.time() - old.stat().st_mtime > ABI_MEMO_SECONDS:
            old.unlink(missing_ok=True)
    return out


def newc_archive(entries: Sequence[tuple[str, int, bytes]]) -> bytes:
    """A cpio "newc" archive (the initramfs format) of (path, mode, data), owned by root.
    Written here so building the initrd needs neither cpio nor fakeroot."""
    buf = io.BytesIO()

    def pad() -> None:
        buf.write(b"\0" * (-buf.tell() % 4))

    for ino, (name, mode, data) in enumerate([*entries, ("TRAILER!!!", 0, b"")], start=1):
        raw = name.encode() + b"\0"
        nlink = 2 if mode & 0o040000 else 1
        fields = [ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(raw), 0]
        buf.write(b"070701" + b"".join(b"%08X" % f for f in fields) + raw)
        pad()
        buf.write(data)
        pad()
    return buf.getvalue()


def _run(
    argv: Sequence[str], timeout: float, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        raise NetlabError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc
