"""The installer-side partition helper with fake disks: Rocks' API, the schemes, reconnecting
known disks, the report to the server, and the seed's programs run unchanged by the
kickstart's own %pre sections (in a private mount namespace, so /tmp is the test's)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from provisioner.config import Config
from provisioner.kickstart import partition_helper as ph
from provisioner.kickstart.renderer import KickstartRenderer
from provisioner.kickstart.validate import validate
from provisioner.plugins.base.attributes import ATTRIBUTES

# The seed's partitioning programs, kept as the worked examples of the site-profiles/ skeleton.
SEEDS = Path(__file__).resolve().parents[2] / "site-profiles" / "examples"
GB = 2 * 1024 * 1024  # sectors

PARTED_SDA = """BYT;
/dev/sda:209715200s:scsi:512:512:msdos:ATA QEMU HARDDISK:;
1:2048s:32770047s:32768000s:ext4::boot;
2:32770048s:40962047s:8192000s:ext4::;
3:40962048s:43059199s:2097152s:linux-swap(v1)::;
4:43059200s:209715199s:166656000s:ext4::;
"""
FSTAB = """# /etc/fstab of an installed node
UUID=1111 / ext4 defaults 1 1
UUID=2222 /var ext4 defaults 1 2
UUID=3333 none swap defaults 0 0
LABEL=state1 /state/partition1 ext4 defaults 1 2
"""


def make_disk(root: Path, name: str, sectors: int = 100 * GB, ro: bool = False) -> None:
    d = root / "sys" / "block" / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "size").write_text(f"{sectors}\n")
    (d / "ro").write_text("1\n" if ro else "0\n")


def installed_sda(root: Path, stamped: bool = True) -> None:
    """sda as a previous install left it: four partitions, fstab on sda1, a stamp on sda4."""
    make_disk(root, "sda")
    (root / "parted").mkdir(exist_ok=True)
    (root / "parted" / "sda").write_text(PARTED_SDA)
    (root / "blkid").mkdir(exist_ok=True)
    for dev, ident in (("sda1", "UUID=1111"), ("sda2", "UUID=2222"), ("sda4", "LABEL=state1")):
        (root / "blkid" / dev).write_text(f"DEVNAME=/dev/{dev}\n{ident}\nTYPE=ext4\n")
        (root / "fs" / dev).mkdir(parents=True)
    (root / "fs" / "sda1" / "etc").mkdir()
    (root / "fs" / "sda1" / "etc" / "fstab").write_text(FSTAB)
    if stamped:
        (root / "fs" / "sda4" / ".rocks-release").write_text("{}\n")


@pytest.fixture
def machine(tmp_path, monkeypatch):
    root, tmp = tmp_path / "machine", tmp_path / "tmp"
    root.mkdir()
    tmp.mkdir()
    monkeypatch.setenv(ph.ROOT_ENV, str(root))
    monkeypatch.setenv(ph.TMP_ENV, str(tmp))
    return root, tmp


def configure(tmp: Path, partitions=(), frontend=False) -> None:
    (tmp / "rocks_partition.json").write_text(
        json.dumps({"host": "compute-0-0", "frontend": frontend, "partitions": list(partitions)})
    )


def lines(tmp: Path) -> list[str]:
    return (tmp / "partition-info").read_text().splitlines()


def test_disks_are_found_filtered_and_ordered(machine):
    root, _ = machine
    for name in ("sdb", "sdaa", "sda", "nvme0n1", "md0"):
        make_disk(root, name)
    make_disk(root, "sr0", ro=True)
    make_disk(root, "loop0")
    make_disk(root, "sdc", sectors=0)  # a card reader without a card
    p = ph.RocksPartition()
    assert p.getDisks() == ["sda", "sdb", "sdaa", "nvme0n1"]
    assert p.getRaids() == ["md0"]


def test_partition_info_of_an_installed_disk(machine):
    root, _ = machine
    installed_sda(root)
    info = ph.RocksPartition().getNodePartInfo(["sda"])
    assert info == {
        "sda": [
            ("sda1", "2048s", "32768000s", "", "ext4", "boot", "", "/"),
            ("sda2", "32770048s", "8192000s", "", "ext4", "", "", "/var"),
            ("sda3", "40962048s", "2097152s", "", "swap", "", "", "swap"),
            ("sda4", "43059200s", "166656000s", "", "ext4", "", "", "/state/partition1"),
        ]
    }
    assert ph.RocksPartition().isRocksDisk(info["sda"]) == 1


def test_raid_devices_and_members(machine):
    root, _ = machine
    for d in ("sda", "sdb"):
        make_disk(root, d)
        (root / "parted").mkdir(exist_ok=True)
        (root / "parted" / d).write_text(
            f"BYT;\n/dev/{d}:209715200s:scsi:512:512:gpt:QEMU:;\n"
            "1:2048s:10487807s:10485760s:::raid;\n"
        )
    make_disk(root, "md0")
    (root / "parted" / "md0").write_text(
        "BYT;\n/dev/md0:10477568s:md:512:512:loop:Linux Software RAID Array:;\n"
        "1:0s:10477567s:10477568s:ext4::;\n"
    )
    (root / "mdadm").mkdir()
    (root / "mdadm" / "md0").write_text(
        "/dev/md0:\n        Raid Level : raid1\n"
        "    Number   Major   Minor   RaidDevice State\n"
        "       0       8        1        0      active sync   /dev/sda1\n"
        "       1       8       17        1      active sync   /dev/sdb1\n"
    )
    p = ph.RocksPartition()
    info = p.getNodePartInfo(["sda", "sdb", "md0"])
    assert info["sda"] == [("sda1", "2048s", "10485760s", "fd", "", "raid", "", "raid.sda1")]
    assert info["md0"][0][5:7] == ("raid.sda1 raid.sdb1", "--level=1")
    assert p.gptDrive("sda") == 1
    md = [("md0", "0s", "10477568s", "", "ext4", "raid.sda1 raid.sdb1", "--level=1", "/data")]
    assert p.addPartitions(info["sda"], 0) == ["part raid.sda1 --noformat --onpart=sda1"]
    assert p.addPartitions(md, 0) == [
        "raid /data --device=md0 --level=1 --noformat raid.sda1 raid.sdb1"
    ]


def test_default_scheme_takes_the_first_disk_only(machine):
    root, tmp = machine
    make_disk(root, "sda")
    make_disk(root, "sdb")
    (tmp / "user_partition_info").write_text("rocks force-default-root-disk-only\n")
    configure(tmp)
    assert (
        ph.do_partition()
        == lines(tmp)
        == [
            "zerombr",
            "clearpart --all --initlabel --drives=sda",
            "reqpart",
            "part / --size=16000 --fstype=ext4 --ondisk=sda",
            "part /var --size=4000 --fstype=ext4 --ondisk=sda",
            "part swap --size=1000 --ondisk=sda",
            "part /state/partition1 --size=1 --fstype=ext4 --grow --ondisk=sda",
        ]
    )
    assert not (tmp / "user_partition_info").exists()  # the sentinel is consumed


def test_no_user_file_means_the_default_scheme(machine):
    root, tmp = machine
    make_disk(root, "vda", sectors=20 * GB)
    ph.do_partition()
    # A disk smaller than twice Rocks' sizes gets proportional ones.
    assert lines(tmp)[3:6] == [
        "part / --size=7801 --fstype=ext4 --ondisk=vda",
        "part /var --size=1950 --fstype=ext4 --ondisk=vda",
        "part swap --size=487 --ondisk=vda",
    ]


def test_force_default_takes_every_disk(machine):
    root, tmp = machine
    make_disk(root, "sda")
    make_disk(root, "sdb")
    (tmp / "user_partition_info").write_text("rocks force-default\n")
    ph.do_partition()
    got = lines(tmp)
    assert got[1] == "clearpart --all --initlabel --drives=sda,sdb"
    assert got[-1] == "part /state/partition2 --size=1 --fstype=ext4 --grow --ondisk=sdb"


def test_manual_writes_nothing_and_flags_it(machine):
    root, tmp = machine
    make_disk(root, "sda")
    (tmp / "user_partition_info").write_text("rocks manual\n")
    assert ph.do_partition() == []
    assert lines(tmp) == [] and (tmp / "manual-partitioning").exists()


def test_raw_lines_are_used_verbatim(machine):
    root, tmp = machine
    make_disk(root, "sda")
    raw = ["clearpart --all --initlabel --drives=sda", "part / --size 8000 --ondisk sda"]
    (tmp / "user_partition_info").write_text("\n".join(raw) + "\n")
    ph.do_partition()
    assert lines(tmp) == raw


DB_ROWS = [
    {"device": "sda1", "sectorstart": "2048s", "partitionsize": "32768000s", "partitionid": "",
     "fstype": "ext4", "partitionflags": "boot", "formatflags": "", "mountpoint": "/"},
    {"device": "sda2", "sectorstart": "32770048s", "partitionsize": "8192000s",
     "partitionid": "", "fstype": "ext4", "partitionflags": "", "formatflags": "",
     "mountpoint": "/var"},
    {"device": "sda3", "sectorstart": "40962048s", "partitionsize": "2097152s",
     "partitionid": "", "fstype": "swap", "partitionflags": "", "formatflags": "",
     "mountpoint": "swap"},
    {"device": "sda4", "sectorstart": "43059200s", "partitionsize": "166656000s",
     "partitionid": "", "fstype": "ext4", "partitionflags": "", "formatflags": "",
     "mountpoint": "/state/partition1"},
]  # fmt: skip
RECONNECTED = [
    "part / --fstype=ext4 --onpart=sda1",
    "part /var --fstype=ext4 --onpart=sda2",
    "part swap --noformat --onpart=sda3",
    "part /state/partition1 --noformat --onpart=sda4",
]


@pytest.mark.parametrize("stamped", [True, False])
def test_a_known_disk_is_reconnected_keeping_its_data(machine, stamped):
    root, tmp = machine
    installed_sda(root, stamped=stamped)
    rows = DB_ROWS if not stamped else DB_ROWS[:2]  # a stamp needs only known rows
    configure(tmp, rows)
    (tmp / "user_partition_info").write_text("rocks force-default-root-disk-only\n")
    ph.do_partition()
    assert lines(tmp) == RECONNECTED
    assert validate("\n".join(["zerombr", *RECONNECTED]) + "\n") == []


def test_raw_lines_are_ignored_when_a_disk_was_reconnected(machine):
    root, tmp = machine
    installed_sda(root)
    configure(tmp, DB_ROWS)
    (tmp / "user_partition_info").write_text("clearpart --all\npart / --size 1 --grow\n")
    ph.do_partition()
    assert lines(tmp) == RECONNECTED


def test_forgotten_partitions_mean_repartitioning_even_with_a_stamp(machine):
    # `rocks remove host partition` empties the rows the kickstart embeds.
    root, tmp = machine
    installed_sda(root, stamped=True)
    configure(tmp, [])
    ph.do_partition()
    assert lines(tmp)[:2] == ["zerombr", "clearpart --all --initlabel --drives=sda"]


def test_a_changed_disk_is_not_reconnected(machine):
    root, tmp = machine
    installed_sda(root, stamped=False)
    rows = [dict(r) for r in DB_ROWS]
    rows[3]["partitionsize"] = "1000s"
    configure(tmp, rows)
    ph.do_partition()
    assert lines(tmp)[1] == "clearpart --all --initlabel --drives=sda"


class _Recorder(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append({"path": self.path, "body": json.loads(body)})
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_report_posts_json_and_stamps_then_the_rows_reconnect(machine):
    root, tmp = machine
    installed_sda(root, stamped=False)
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    _Recorder.received = []
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/install/sbin/public/partitions"
    try:
        assert ph.report_partitions(url, tries=1) is True
    finally:
        thread.join(10)
        server.server_close()
    [got] = _Recorder.received
    assert got["path"] == "/install/sbin/public/partitions"
    rows = got["body"]["partitions"]
    assert rows == DB_ROWS
    for dev in ("sda1", "sda2", "sda4"):
        assert (root / "fs" / dev / ".rocks-release").exists()
    # What was reported is what the next install compares with.
    configure(tmp, rows)
    ph.do_partition()
    assert lines(tmp) == RECONNECTED


def test_report_retries_and_still_stamps_when_the_server_is_down(machine):
    root, _ = machine
    installed_sda(root, stamped=False)
    assert ph.report_partitions("http://127.0.0.1:9/partitions", tries=2, max_sleep=0) is False
    assert (root / "fs" / "sda1" / ".rocks-release").exists()


# -- the kickstart's own %pre sections, with the seed's programs -------------------------------


def _kickstart(tmp_path: Path, seed: str | None) -> str:
    site = tmp_path / "site"
    (site / "nodes").mkdir(parents=True)
    if seed:
        shutil.copy(SEEDS / seed, site / "nodes" / "replace-partition.xml")
    config = Config.for_home(tmp_path / "home", site_profiles=str(site))
    from provisioner.hooks import Hooks

    renderer = KickstartRenderer(config, Hooks.from_config(config))
    attrs = {a.name: a.default for a in ATTRIBUTES if a.default is not None}
    attrs.update(
        Kickstart_PrivateKickstartHost="10.1.1.1",
        Kickstart_PrivateHostname="frontend",
        Kickstart_PrivateAddress="10.1.1.1",
        Kickstart_PrivateNTPHost="10.1.1.1",
        Kickstart_PrivateSyslogHost="10.1.1.1",
        hostname="compute-0-0",
        membership="Compute",
        appliance="compute",
    )
    values = renderer.node_values(attrs, "compute")
    return renderer.render_values(values, "default", "compute")


def _pre_sections(text: str) -> list[tuple[str, str]]:
    out = []
    for m in re.finditer(r"^%pre (.*?)\n(.*?)^%end$", text, re.M | re.S):
        interp = re.search(r"--interpreter=(\S+)", m.group(1))
        out.append((interp.group(1) if interp else "/bin/sh", m.group(2)))
    return out


DRIVER = """
import json, os, subprocess, sys
sections = json.load(open("/tmp/sections.json"))
env = dict(os.environ, ROCKS_PARTITION_ROOT="/tmp/machine")
for n, (interp, body) in enumerate(sections):
    script = "/tmp/ks-script-%d" % n
    with open(script, "w") as fh:
        fh.write(body)
    # As anaconda does: the script runs from /tmp, so /tmp is the first entry of sys.path.
    rc = subprocess.call([interp, script], cwd="/tmp", env=env)
    if rc:
        sys.exit("section %d (%s) failed: %d" % (n, interp, rc))
"""


def run_pre_sections(text: str, tmp_path: Path, disks: list[str]) -> list[str]:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("running %pre sections needs root and unshare for a private /tmp")
    installer_tmp = tmp_path / "installer-tmp"
    machine = installer_tmp / "machine"
    machine.mkdir(parents=True)
    for d in disks:
        make_disk(machine, d)
    make_disk(machine, "sr0", ro=True)
    (installer_tmp / "sections.json").write_text(json.dumps(_pre_sections(text)))
    (installer_tmp / "driver.py").write_text(DRIVER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROCKS_PARTITION")}
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         'mount --bind "$0" /tmp && exec /usr/bin/python3 /tmp/driver.py', str(installer_tmp)],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    if result.returncode != 0 and "mount" in result.stderr and "permission" in result.stderr:
        pytest.skip(f"no private mount namespace here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    return (installer_tmp / "partition-info").read_text().splitlines()


SEED_TWO_DISKS = [
    "clearpart --all --initlabel --drives=sda,sdb",
    "part / --size=6000 --fstype=ext3 --ondisk=sda",
    "part /var --size=2000 --fstype=ext3 --ondisk=sda",
    "part raid.sda --size=5000 --ondisk=sda",
    "part raid.sdb --size=5000 --ondisk=sdb",
    "raid /bigdisk --fstype=ext3 --device=md0 --level=1 raid.sda raid.sdb",
]
SEED_ONE_DISK = [
    "clearpart --all --initlabel --drives=sda",
    "part / --size=6000 --fstype=ext3 --ondisk=sda",
    "part /var --size=2000 --fstype=ext3 --ondisk=sda",
    "part swap --size=2000 --ondisk=sda",
    "part /mydata --size=1 --grow --fstype=ext3 --ondisk=sda",
]


@pytest.mark.parametrize(
    ("seed", "disks", "expected"),
    [
        ("replace-partition-python-two-disks.xml", ["sda", "sdb"], SEED_TWO_DISKS),
        ("replace-partition-python-two-disks.xml", ["sda"], SEED_ONE_DISK),
        ("replace-partition-python-one-disk.xml", ["sda"], SEED_ONE_DISK),
        (
            "replace-partition-shell.xml",
            ["hda"],
            [
                "clearpart --all --initlabel --drives=hda",
                "part / --size 8000 --ondisk hda",
                "part swap --size 1000 --ondisk hda",
                "part /mydata --size 1 --grow --ondisk hda",
            ],
        ),
        (
            "replace-partition-raid-shell.xml",
            ["hda", "hdb"],
            [
                "clearpart --all --initlabel --drives=hda,hdb",
                "part / --size 8000 --ondisk hda",
                "part swap --size 1000 --ondisk hda",
                "",
                "part raid.00 --size=10000 --ondisk hda",
                "part raid.01 --size=10000 --ondisk hdb",
                "",
                "raid /mydata --level=1 --device=md0 raid.00 raid.01",
            ],
        ),
    ],
)
def test_seed_programs_run_unchanged_in_the_kickstart(tmp_path, seed, disks, expected):
    text = _kickstart(tmp_path, seed)
    got = run_pre_sections(text, tmp_path, disks)
    assert got == expected
    # The lines are a valid partitioning for the installer.
    assert validate("\n".join(got) + "\n") == []


def test_seed_one_disk_program_on_two_disks_leaves_the_default(tmp_path):
    text = _kickstart(tmp_path, "replace-partition-python-one-disk.xml")
    got = run_pre_sections(text, tmp_path, ["sda", "sdb"])
    assert got[:3] == ["zerombr", "clearpart --all --initlabel --drives=sda", "reqpart"]


def test_default_graph_pre_sections_write_the_default_scheme(tmp_path):
    got = run_pre_sections(_kickstart(tmp_path, None), tmp_path, ["sda", "sdb"])
    assert got[1] == "clearpart --all --initlabel --drives=sda"
    assert "part /state/partition1 --size=1 --fstype=ext4 --grow --ondisk=sda" in got
    assert validate("\n".join(got) + "\n") == []


def test_install_copy_puts_the_module_where_python_finds_it(tmp_path):
    ph.install_copy(str(tmp_path))
    assert (tmp_path / "rocks_partition.py").read_text() == Path(ph.__file__).read_text()


def test_every_shell_section_of_the_kickstart_parses(tmp_path):
    text = _kickstart(tmp_path, "replace-partition-shell.xml")
    sections = re.findall(r"^%(pre|post) (.*?)\n(.*?)^%end$", text, re.M | re.S)
    shells = [body for _, head, body in sections if "--interpreter" not in head]
    pythons = [body for _, head, body in sections if "python3" in head]
    assert len(shells) >= 5 and len(pythons) >= 2
    for body in shells:
        result = subprocess.run(["bash", "-n"], input=body, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr + body
    for body in pythons:
        compile(body, "section", "exec")
