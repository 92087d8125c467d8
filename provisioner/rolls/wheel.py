"""This project as a wheel, made from the installed package itself.

A lights-out frontend installs provisioner with pip from the distribution (`rocks create
distro` puts the wheel in `<dist>/pip/`). The wheel is written here, in Python, from the files
of the running package and its installed metadata, so any installation can make one, without
a source tree, build tools or network: a wheel is a zip of the package, a METADATA file (the
installed one, which names the dependencies), WHEEL, entry_points.txt and RECORD.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from importlib import metadata
from pathlib import Path

PROJECT = "provisioner"
_EPOCH = (1980, 1, 1, 0, 0, 0)


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


def _metadata(dist: metadata.Distribution | None, version: str) -> str:
    text = dist.read_text("METADATA") if dist is not None else None
    if text:
        return text
    lines = ["Metadata-Version: 2.1", f"Name: {PROJECT}", f"Version: {version}"]
    lines += [f"Requires-Dist: {r}" for r in (dist.requires or [] if dist else [])]
    return "\n".join(lines) + "\n"


def package_files(root: Path) -> list[tuple[str, Path]]:
    """(archive name, path) of the package's files: sources and data, no byte code."""
    out = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo"):
            continue
        out.append((f"{root.name}/{path.relative_to(root).as_posix()}", path))
    return out


def wheel_name(version: str) -> str:
    return f"{PROJECT}-{version}-py3-none-any.whl"


def build_wheel(dest_dir: Path) -> Path:
    """Write `provisioner-<version>-py3-none-any.whl` into `dest_dir`; returns its path."""
    import provisioner

    try:
        dist: metadata.Distribution | None = metadata.distribution(PROJECT)
    except metadata.PackageNotFoundError:
        dist = None
    version = dist.version if dist is not None else provisioner.__version__
    info = f"{PROJECT}-{version}.dist-info"
    files: list[tuple[str, bytes]] = [
        (name, path.read_bytes()) for name, path in package_files(Path(provisioner.__file__).parent)
    ]
    files.append((f"{info}/METADATA", _metadata(dist, version).encode()))
    files.append(
        (
            f"{info}/WHEEL",
            b"Wheel-Version: 1.0\nGenerator: provisioner\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n",
        )
    )
    entry_points = dist.read_text("entry_points.txt") if dist is not None else None
    if entry_points:
        files.append((f"{info}/entry_points.txt", entry_points.encode()))
    files.append((f"{info}/top_level.txt", f"{PROJECT}\n".encode()))
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in files)
    files.append((f"{info}/RECORD", (record + f"{info}/RECORD,,\n").encode()))

    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / wheel_name(version)
    partial = target.with_name(target.name + ".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files:
            # Fixed dates: the same package gives the same wheel, byte for byte.
            zi = zipfile.ZipInfo(name, _EPOCH)
            zi.external_attr = 0o644 << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(zi, data)
    partial.replace(target)
    return target
