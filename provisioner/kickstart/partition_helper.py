# ruff: noqa: UP006, UP035, UP045, B905 - runs on the installer's Python (3.6 on RHEL 8)
"""rocks_partition: the installer-side partition helper that every kickstart embeds.

The kickstart's first %pre writes this file as /tmp/rocks_partition.py (anaconda runs %pre
programs from /tmp, so `import rocks_partition` works in them) together with
/tmp/rocks_partition.json, what the server knows about the host (its name, whether it is a
frontend, and the partitions it reported last time). It offers Rocks' API
(`RocksPartition().getDisks()`, `getRaids()`, `getNodePartInfo(disks)`,
`isRocksDisk(partinfo, touchit=0)`, `addPartitions()`, `compareDiskInfo()`,
`defaultRootDisk()`...) to user programs that write /tmp/user_partition_info, and:

- `do_partition()` (the kickstart's last %pre) writes /tmp/partition-info, which the main
  section `%include`s: raw lines of /tmp/user_partition_info verbatim, or the Rocks schemes
  `rocks force-default`, `rocks force-default-root-disk-only` (the default) and `rocks manual`;
  disks the server knows are reconnected first, reformatting only / and /var.
- `report_partitions(url)` (an early %post) POSTs the installed layout as JSON and stamps
  /.rocks-release on every filesystem.

It uses only the standard library and runs on Python 3.6+. Everything it learns about the
machine goes through `Probe`; with ROCKS_PARTITION_ROOT set, `Probe` reads prepared files
under that directory instead of running parted, mdadm, blkid and mount, which is how the
tests give it fake disks. ROCKS_PARTITION_TMP moves /tmp the same way.
"""

import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Tuple

ROOT_ENV = "ROCKS_PARTITION_ROOT"
TMP_ENV = "ROCKS_PARTITION_TMP"
DEFAULT_FSTYPE = "ext4"
# Rocks 5.1-5.4.3 defaults, in MB; a disk too small for them gets proportional sizes.
PART_SIZES = {"root": 16000, "var": 4000, "swap": 1000}
REFORMAT = ("/", "/var")
SCHEMES = ("force-default", "force-default-root-disk-only", "manual")
DEFAULT_SCHEME = "force-default-root-disk-only"
_NOT_DISKS = ("loop", "ram", "zram", "sr", "fd", "dm-", "md", "nbd", "zd", "drbd")

PartInfo = Tuple[str, str, str, str, str, str, str, str]
FIELDS = (
    "device",
    "sectorstart",
    "partitionsize",
    "partitionid",
    "fstype",
    "partitionflags",
    "formatflags",
    "mountpoint",
)


def _log(msg: str) -> None:
    sys.stderr.write(f"rocks_partition: {msg}\n")


def _natural(name: str) -> Tuple:
    letters = re.sub(r"\d", "", name)
    parts = re.split(r"(\d+)", name)
    return (len(letters), [int(p) if p.isdigit() else p for p in parts])


def partition_device(disk: str, number: str) -> str:
    """sda + 1 -> sda1; nvme0n1 + 1 -> nvme0n1p1 (kernel naming)."""
    return f"{disk}p{number}" if disk[-1:].isdigit() else disk + number


class Probe:
    """What the helper asks of the machine. With a root directory (tests), answers come from
    files: sys/block/<dev>/{size,ro}, parted/<dev> (`parted -s -m /dev/<dev> unit s print`
    output), mdadm/<md> (`mdadm --detail`), blkid/<dev> (`blkid -o export`), fs/<dev>/ (the
    filesystem's contents, as if mounted) and proc/mounts."""

    def __init__(self, root: Optional[str] = None) -> None:
        self.root = root if root is not None else os.environ.get(ROOT_ENV, "")

    @property
    def fake(self) -> bool:
        return bool(self.root)

    def path(self, absolute: str) -> str:
        return os.path.join(self.root, absolute.lstrip("/")) if self.root else absolute

    def _read(self, absolute: str) -> str:
        try:
            with open(self.path(absolute)) as fh:
                return fh.read()
        except OSError:
            return ""

    def _run(self, argv: List[str]) -> str:
        try:
            proc = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, universal_newlines=True
            )
            out, _ = proc.communicate(timeout=120)
            return out or ""
        except (OSError, subprocess.SubprocessError) as exc:
            _log(f"{argv[0]}: {exc}")
            return ""

    def block_devices(self) -> List[str]:
        try:
            return sorted(os.listdir(self.path("/sys/block")), key=_natural)
        except OSError:
            return []

    def device_size(self, dev: str) -> int:
        """Size in 512-byte sectors (0 when unknown or no medium)."""
        text = self._read(f"/sys/block/{dev}/size").strip()
        return int(text) if text.isdigit() else 0

    def read_only(self, dev: str) -> bool:
        return self._read(f"/sys/block/{dev}/ro").strip() == "1"

    def parted(self, dev: str) -> str:
        if self.fake:
            return self._read(f"/parted/{dev}")
        return self._run(["parted", "-s", "-m", f"/dev/{dev}", "unit", "s", "print"])

    def mdadm_detail(self, dev: str) -> str:
        if self.fake:
            return self._read(f"/mdadm/{dev}")
        return self._run(["mdadm", "--detail", f"/dev/{dev}"])

    def blkid(self, dev: str) -> Dict[str, str]:
        if self.fake:
            text = self._read(f"/blkid/{dev}")
        else:
            text = self._run(["blkid", "-o", "export", f"/dev/{dev}"])
        out = {}
        for line in text.splitlines():
            key, eq, value = line.partition("=")
            if eq:
                out[key.strip()] = value.strip()
        return out

    def mounted_at(self, dev: str) -> Optional[str]:
        for line in self._read("/proc/mounts").splitlines():
            fields = line.split()
            if len(fields) > 1 and fields[0] == f"/dev/{dev}":
                return self.path(fields[1]) if self.fake else fields[1]
        return None

    def mount(self, dev: str, writable: bool = False) -> Optional[str]:
        """A directory where the device's filesystem is visible, or None."""
        if self.fake:
            d = self.path(f"/fs/{dev}")
            return d if os.path.isdir(d) else None
        where = self.mounted_at(dev)
        if where:
            return where
        d = tempfile.mkdtemp(prefix="rocks-mnt-")
        opts = "rw" if writable else "ro"
        rc = subprocess.call(
            ["mount", "-o", opts, f"/dev/{dev}", d],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if rc != 0:
            os.rmdir(d)
            return None
        return d

    def unmount(self, dev: str, directory: Optional[str]) -> None:
        if self.fake or not directory or directory == self.mounted_at(dev):
            return
        subprocess.call(["umount", directory], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            os.rmdir(directory)
        except OSError:
            pass


def tmp_path(name: str) -> str:
    return os.path.join(os.environ.get(TMP_ENV) or "/tmp", name)


def load_config() -> Dict:
    """What the server embedded: host, frontend, partitions (the database rows)."""
    try:
        with open(tmp_path("rocks_partition.json")) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


class RocksPartition:
    """Rocks' partition helper API, for user %pre programs and for `do_partition`."""

    def __init__(self, probe: Optional[Probe] = None) -> None:
        self.probe = probe or Probe()
        self.mountpoints = []  # type: List[str]
        self.fstype = DEFAULT_FSTYPE
        self.saved_fstab = []  # type: List[str]
        self._ids = {}  # type: Dict[str, Tuple[str, ...]]

    # -- disks ------------------------------------------------------------------------------

    def getDisks(self) -> List[str]:
        """The hard disks with a medium, in kernel order (sda, sdb, ..., nvme0n1...)."""
        listed = self._discovered("disks:")
        if listed is not None:
            return listed
        out = []
        for dev in self.probe.block_devices():
            if dev.startswith(_NOT_DISKS):
                continue
            if self.probe.device_size(dev) > 0 and not self.probe.read_only(dev):
                out.append(dev)
        return out

    def getRaids(self) -> List[str]:
        """Software RAID devices (md0...) that exist now."""
        listed = self._discovered("raids:")
        if listed is not None:
            return listed
        return [
            d
            for d in self.probe.block_devices()
            if re.match(r"^md\d+$", d) and self.probe.device_size(d) > 0
        ]

    def _discovered(self, key: str) -> Optional[List[str]]:
        # Rocks' anaconda wrote /tmp/discovered.disks; honour it when someone still does.
        try:
            with open(tmp_path("discovered.disks")) as fh:
                for line in fh:
                    words = line.split()
                    if words and words[0] == key:
                        return words[1:]
        except OSError:
            return None
        return [] if key == "raids:" else None

    def getDiskInfo(self, disk: str) -> List[str]:
        return self.probe.parted(disk).splitlines()

    def gptDrive(self, disk: str) -> int:
        for line in self.getDiskInfo(disk):
            fields = line.rstrip(";").split(":")
            if len(fields) > 5 and fields[0] == f"/dev/{disk}":
                return 1 if fields[5] == "gpt" else 0
        return 0

    def listDiskPartitions(self, disk: str) -> List[str]:
        if disk.startswith("md"):
            return [disk]
        out = []
        for line in self.getDiskInfo(disk):
            fields = line.rstrip(";").split(":")
            if len(fields) > 3 and fields[0].isdigit():
                out.append(partition_device(disk, fields[0]))
        return out

    def getRaidLevel(self, device: str) -> Optional[str]:
        for line in self.probe.mdadm_detail(device).splitlines():
            key, colon, value = line.partition(":")
            if colon and key.strip() == "Raid Level":
                value = value.strip()
                return value[4:] if value.startswith("raid") else value
        return None

    def getRaidParts(self, device: str) -> str:
        parts = []
        started = False
        for line in self.probe.mdadm_detail(device).splitlines():
            words = line.split()
            if "RaidDevice" in words:
                started = True
                continue
            if started and words and words[-1].startswith("/dev/"):
                parts.append("raid." + words[-1].split("/")[-1])
        return " ".join(parts)

    # -- mountpoints ------------------------------------------------------------------------

    def getFstab(self, disks: List[str]) -> List[str]:
        """The /etc/fstab of an existing (or the just installed) system on these disks."""
        for known in ("/mnt/sysimage/etc/fstab", "/mnt/sysroot/etc/fstab", "/upgrade/etc/fstab"):
            path = self.probe.path(known)
            if os.path.exists(path):
                with open(path) as fh:
                    return fh.readlines()
        for disk in disks:
            for part in self.listDiskPartitions(disk):
                where = self.probe.mount(part)
                if where is None:
                    continue
                try:
                    fstab = os.path.join(where, "etc", "fstab")
                    if os.path.exists(fstab):
                        with open(fstab) as fh:
                            return fh.readlines()
                finally:
                    self.probe.unmount(part, where)
        return []

    def _identifiers(self, device: str) -> Tuple[str, ...]:
        if device not in self._ids:
            ids = [f"/dev/{device}"]
            info = self.probe.blkid(device)
            for key in ("UUID", "LABEL", "PARTUUID", "PARTLABEL"):
                if info.get(key):
                    ids.append(f"{key}={info[key]}")
                    ids.append(f"/dev/disk/by-{key.lower()}/{info[key]}")
            self._ids[device] = tuple(ids)
        return self._ids[device]

    def findMntInFstab(self, identifier: str) -> str:
        for line in self.saved_fstab:
            fields = line.split()
            if len(fields) > 1 and not fields[0].startswith("#") and fields[0] == identifier:
                return fields[1]
        return ""

    def getMountPoint(self, device: str) -> str:
        for ident in self._identifiers(device):
            found = self.findMntInFstab(ident)
            if found:
                return "swap" if found == "none" or found == "swap" else found
        return ""

    # -- partition tables -------------------------------------------------------------------

    def formatPartedNodePartInfo(self, devname: str, lines: List[str]) -> List[PartInfo]:
        out = []  # type: List[PartInfo]
        is_disk = False
        for line in lines:
            fields = line.strip().rstrip(";").split(":")
            if fields and fields[0].startswith("/dev/"):
                is_disk = True
                continue
            if len(fields) < 4 or not fields[0].isdigit():
                continue
            is_disk = True
            if devname.startswith("md"):
                device = devname
            else:
                device = partition_device(devname, fields[0])
            start, size = fields[1], fields[3]
            fstype = fields[4] if len(fields) > 4 else ""
            flags = fields[6] if len(fields) > 6 else ""
            bootflags = " ".join(f.strip() for f in flags.split(",") if f.strip())
            partid = "fd" if "raid" in bootflags.split() else ""
            if fstype.startswith("linux-swap"):
                fstype, mnt = "swap", "swap"
            elif "raid" in bootflags.split():
                mnt = f"raid.{device}"
            elif "bios_grub" in bootflags.split():
                mnt = "biosboot"
            else:
                mnt = self.getMountPoint(device)
            out.append((device, start, size, partid, fstype, bootflags, "", mnt))
        if not out and is_disk:
            # An empty disk still appears, so the database can record it.
            out.append((devname, "", "", "", "", "", "", ""))
        return out

    def getNodePartInfo(self, disks: List[str]) -> Dict[str, List[PartInfo]]:
        """{disk: [(device, start, size, id, fstype, bootflags, partflags, mountpoint)]}"""
        self.saved_fstab = self.getFstab([d for d in disks if not d.startswith("md")])
        out = {}  # type: Dict[str, List[PartInfo]]
        for disk in disks:
            infos = self.formatPartedNodePartInfo(disk, self.getDiskInfo(disk))
            if disk.startswith("md"):
                level = self.getRaidLevel(disk)
                members = self.getRaidParts(disk)
                infos = [
                    (
                        i[0],
                        i[1],
                        i[2],
                        i[3],
                        i[4],
                        members,
                        f"--level={level}" if level else "",
                        i[7],
                    )
                    for i in infos
                ]
            if infos:
                out[disk] = infos
        return out

    def compareDiskInfo(self, dbpartinfo: List[PartInfo], nodepartinfo: List[PartInfo]) -> int:
        """1 when the database's rows for a disk describe exactly what is on it."""
        if len(dbpartinfo) != len(nodepartinfo):
            return 0
        on_disk = {tuple(n[1:]) for n in nodepartinfo}
        for db in dbpartinfo:
            if tuple(db[1:]) not in on_disk:
                return 0
        return 1

    # -- Rocks disks ------------------------------------------------------------------------

    def isRocksDisk(self, partinfo: List[PartInfo], touchit: int = 0) -> int:
        """1 when a filesystem of the disk has /.rocks-release; `touchit` creates it."""
        found = 0
        for part in partinfo:
            device, fstype, mnt = part[0], part[4], part[7]
            if not part[1] or fstype == "swap" or mnt == "swap" or mnt.startswith("raid."):
                continue
            where = self.probe.mount(device, writable=bool(touchit))
            if where is None:
                continue
            try:
                stamp = os.path.join(where, ".rocks-release")
                if touchit:
                    try:
                        with open(stamp, "w") as fh:
                            fh.write(json.dumps(_stamp_text()) + "\n")
                    except OSError as exc:
                        _log(f"cannot stamp {device}: {exc}")
                if os.path.exists(stamp):
                    found = 1
            finally:
                self.probe.unmount(device, where)
            if found and not touchit:
                break
        return found

    # -- kickstart lines --------------------------------------------------------------------

    def addPartitions(self, nodepartinfo: List[PartInfo], format: int) -> List[str]:
        """Lines that reuse existing partitions; only / and /var are reformatted (or every
        partition with `format`)."""
        parts = []
        for device, _start, _size, _pid, fstype, bootflags, partflags, mnt in nodepartinfo:
            if not mnt:
                continue
            if device.startswith("md"):
                members = [p for p in bootflags.split() if p.startswith("raid.")]
                args = [mnt, f"--device={device}"]
                if partflags:
                    args.append(partflags)
                if mnt in REFORMAT or format:
                    args += ["--fstype=%s" % (fstype or self.fstype), "--useexisting"]
                else:
                    args.append("--noformat")
                parts.append("raid " + " ".join(args + members))
            elif mnt.startswith("raid."):
                parts.append(f"part {mnt} --noformat --onpart={device}")
            elif mnt == "biosboot":
                parts.append(f"part biosboot --fstype=biosboot --onpart={device}")
            elif mnt in REFORMAT or format:
                parts.append(f"part {mnt} --fstype={fstype or self.fstype} --onpart={device}")
            else:
                parts.append(f"part {mnt} --noformat --onpart={device}")
            self.mountpoints.append(mnt)
        return parts

    def RocksGetPartsize(self, mountpoint: str) -> int:
        return PART_SIZES.get(mountpoint, 0)

    def _sizes(self, disk: str) -> Dict[str, int]:
        sizes = dict(PART_SIZES)
        mb = self.probe.device_size(disk) * 512 // (1024 * 1024)
        need = sum(sizes.values())
        if 0 < mb < need * 2:
            # Keep half of a small disk for /state/partition1, like the big-disk layout does.
            scale = mb / (need * 2.0)
            sizes = {k: max(256, int(v * scale)) for k, v in sizes.items()}
        return sizes

    def defaultRootDisk(self, disk: str) -> List[str]:
        sizes = self._sizes(disk)
        parts = [
            f"part / --size={sizes['root']} --fstype={self.fstype} --ondisk={disk}",
            f"part /var --size={sizes['var']} --fstype={self.fstype} --ondisk={disk}",
            f"part swap --size={sizes['swap']} --ondisk={disk}",
        ]
        self.mountpoints += ["/", "/var", "swap"]
        return parts + self.defaultDataDisk(disk)

    def defaultDataDisk(self, disk: str) -> List[str]:
        i = 1
        while f"/state/partition{i}" in self.mountpoints:
            i += 1
        name = f"/state/partition{i}"
        self.mountpoints.append(name)
        return [f"part {name} --size=1 --fstype={self.fstype} --grow --ondisk={disk}"]


def _stamp_text() -> Dict[str, str]:
    config = load_config()
    return {
        "host": str(config.get("host", "")),
        "stamped": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "by": "provisioner",
    }


def db_partinfo(rows: List[Dict[str, str]], disks: List[str]) -> Dict[str, List[PartInfo]]:
    """The database rows as Rocks' tuples, grouped by the disk (or md device) they are on."""
    out = {}  # type: Dict[str, List[PartInfo]]
    for row in rows:
        device = str(row.get("device") or "")
        info = tuple(str(row.get(f) or "") for f in FIELDS)
        # Rocks' tuple order: device, start, size, id, fstype, bootflags, partflags, mountpoint
        t = (info[0], info[1], info[2], info[3], info[4], info[5], info[6], info[7])
        owner = ""
        for disk in sorted(disks, key=len, reverse=True):
            if device == disk or (device.startswith(disk) and not disk.startswith("md")):
                owner = disk
                break
        if owner:
            out.setdefault(owner, []).append(t)  # type: ignore[arg-type]
    return out


def read_scheme() -> Tuple[Optional[str], bool]:
    """(`rocks <scheme>` sentinel or None, whether raw user lines remain)."""
    path = tmp_path("user_partition_info")
    if not os.path.exists(path):
        return None, False
    with open(path) as fh:
        for line in fh:
            words = line.split()
            if len(words) == 2 and words[0] == "rocks":
                os.remove(path)
                return words[1], False
    return None, True


def do_partition(probe: Optional[Probe] = None) -> List[str]:
    """Decide the partitioning and write /tmp/partition-info; returns its lines."""
    scheme, raw = read_scheme()
    if scheme is not None and scheme not in SCHEMES:
        _log(f"unknown scheme 'rocks {scheme}': using {DEFAULT_SCHEME}")
        scheme = DEFAULT_SCHEME
    if scheme == "manual":
        open(tmp_path("manual-partitioning"), "w").close()
        return _write_info([])

    config = load_config()
    p = RocksPartition(probe)
    disks = p.getDisks() if scheme or not raw else p.getDisks() + p.getRaids()
    nodedisks = p.getNodePartInfo(disks)
    dbrows = config.get("partitions") or []
    db = db_partinfo(dbrows, list(nodedisks))
    parts = []  # type: List[str]
    free = [d for d in disks]

    # The database still knowing the host's partitions is what makes a stamped disk ours;
    # `rocks remove host partition` clears them and so forces repartitioning.
    if not config.get("frontend") and dbrows:
        for disk in list(free):
            if disk in nodedisks and p.isRocksDisk(nodedisks[disk]):
                _log(f"{disk} carries /.rocks-release: reconnected")
                parts += p.addPartitions(nodedisks[disk], 0)
                free.remove(disk)
    for disk in list(free):
        if disk in db and disk in nodedisks and p.compareDiskInfo(db[disk], nodedisks[disk]):
            _log(f"{disk} matches the database: reconnected")
            parts += p.addPartitions(nodedisks[disk], 0)
            free.remove(disk)

    header = []  # type: List[str]
    if raw:
        if parts:
            _log("disks were reconnected: /tmp/user_partition_info is ignored")
        else:
            with open(tmp_path("user_partition_info")) as fh:
                parts = [line.rstrip("\n") for line in fh]
    else:
        free = [d for d in free if not d.startswith("md")]
        install = free[:1] if (scheme or DEFAULT_SCHEME) == DEFAULT_SCHEME else free
        if install:
            header.append("zerombr")
            header.append("clearpart --all --initlabel --drives=" + ",".join(install))
        for disk in install:
            if "/" not in p.mountpoints:
                header.append("reqpart")
                parts += p.defaultRootDisk(disk)
            else:
                parts += p.defaultDataDisk(disk)
    raid = [line for line in parts if line.startswith("raid")]
    rest = [line for line in parts if not line.startswith("raid")]
    return _write_info(header + rest + raid)


def _write_info(lines: List[str]) -> List[str]:
    path = tmp_path("partition-info")
    tmp = path + ".new"
    with open(tmp, "w") as fh:
        fh.write("".join(line + "\n" for line in lines))
    os.replace(tmp, path)
    return lines


def collect(probe: Optional[Probe] = None) -> List[Dict[str, str]]:
    """Every partition of every disk and md device, as the JSON rows the server stores."""
    p = RocksPartition(probe)
    info = p.getNodePartInfo(p.getDisks() + p.getRaids())
    return [dict(zip(FIELDS, t)) for disk in sorted(info, key=_natural) for t in info[disk]]


def report_partitions(
    url: str, probe: Optional[Probe] = None, tries: int = 5, max_sleep: float = 10.0
) -> bool:
    """POST the layout to the server, then stamp every filesystem. True if the POST worked."""
    import urllib.error
    import urllib.request

    rows = collect(probe)
    body = json.dumps({"partitions": rows}).encode("utf-8")
    sent = False
    for attempt in range(tries):
        try:
            req = urllib.request.Request(
                url, data=body, headers={"Content-Type": "application/json"}, method="POST"
            )
            with urllib.request.urlopen(req, timeout=30) as resp:
                if 200 <= resp.status < 300:
                    sent = True
                    break
                _log(f"POST {url}: HTTP {resp.status}")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            _log(f"POST {url}: {exc}")
        if attempt + 1 < tries:
            time.sleep(random.uniform(0, max_sleep))
    stamp_disks(probe)
    return sent


def stamp_disks(probe: Optional[Probe] = None) -> int:
    """Write /.rocks-release on every filesystem of every disk; returns how many disks."""
    p = RocksPartition(probe)
    info = p.getNodePartInfo(p.getDisks() + p.getRaids())
    return sum(p.isRocksDisk(info[disk], touchit=1) for disk in info)


def install_copy(target_dir: str) -> None:
    """Copy this module where the installer's Python finds it without /tmp on sys.path."""
    try:
        shutil.copy(os.path.abspath(__file__), os.path.join(target_dir, "rocks_partition.py"))
    except OSError:
        pass


def main(argv: List[str]) -> int:
    if argv[:1] == ["do-partition"]:
        for line in do_partition():
            print(line)
        return 0
    if argv[:1] == ["report"] and len(argv) == 2:
        return 0 if report_partitions(argv[1]) else 1
    sys.stderr.write("usage: rocks_partition.py do-partition | report <url>\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
