"""`rocks move host vm` between two hypervisors (two libvirt test drivers, one per container),
and moves that fail or are interrupted: the VM must stay where it was, running if it was,
with the database unchanged and no half-copied file left behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provisioner.plugins.xen import images, libvirt_driver

DATA_AT = 300 * 10**6  # some bytes in the middle of the sparse image, to copy and compare
DATA = bytes(range(256)) * 8192  # 2 MiB


@pytest.fixture
def two(vmc, tmp_path):
    """vm-container-0-0 and vm-container-0-1 on separate test hypervisors, and a running VM
    compute-0-0-0 on the first with 2 MiB written into its 1 GB image."""
    uris = {}
    for name in ("vm-container-0-0", "vm-container-0-1"):
        node = tmp_path / f"{name}.xml"
        node.write_text("<node/>\n")
        uris[name] = f"test://{node}"
        vmc.ok(f"set host attr {name} vm_uri {uris[name]}")
    vmc.ok("add host vm vm-container-0-0 membership=Compute disksize=1")
    vmc.ok("create host vm compute-0-0-0")
    image = vmc.disks / "vm-container-0-0" / "compute-0-0-0.hda"
    with open(image, "r+b") as fh:
        fh.seek(DATA_AT)
        fh.write(DATA)
    yield vmc, uris, image
    libvirt_driver.close_all()  # forget the private hypervisors


def state(uri: str, name: str) -> str | None:
    # The driver's own cached connection: each new test:///<file> connection is a new host.
    import libvirt

    conn = libvirt_driver.connect(uri)
    try:
        dom = conn.lookupByName(name)
    except libvirt.libvirtError:
        return None
    return libvirt_driver.STATES[dom.state()[0]]


def where(vmc) -> tuple[str, str]:
    row = json.loads(vmc.ok("list host vm compute-0-0-0 showdisks=y output-format=json"))[0]
    return row["host"], row["disk"]


def test_move_between_hypervisors(two):
    vmc, uris, image = two
    assert state(uris["vm-container-0-0"], "compute-0-0-0") == "active"
    result = vmc("move host vm compute-0-0-0 vm-container-0-1")
    assert result.status == 0, result.err
    target = vmc.disks / "vm-container-0-1" / "compute-0-0-0.hda"
    assert where(vmc) == ("vm-container-0-1", f"file:{target},hda,w")
    assert state(uris["vm-container-0-0"], "compute-0-0-0") is None
    assert state(uris["vm-container-0-1"], "compute-0-0-0") == "active"
    with open(target, "rb") as fh:
        fh.seek(DATA_AT)
        assert fh.read(len(DATA)) == DATA
    assert target.stat().st_size == 10**9
    assert target.stat().st_blocks * 512 < 64 * 2**20  # the holes stayed holes
    assert "[##############################] 100%" in result.err
    assert image.exists()  # the old image stays until the admin deletes it
    # and back again
    vmc.ok("move host vm compute-0-0-0 vm-container-0-0")
    assert state(uris["vm-container-0-0"], "compute-0-0-0") == "active"
    assert state(uris["vm-container-0-1"], "compute-0-0-0") is None


def assert_untouched(vmc, uris, image: Path) -> None:
    assert where(vmc) == ("vm-container-0-0", f"file:{image},hda,w")
    assert state(uris["vm-container-0-0"], "compute-0-0-0") == "active"
    assert state(uris["vm-container-0-1"], "compute-0-0-0") is None
    with open(image, "rb") as fh:
        fh.seek(DATA_AT)
        assert fh.read(len(DATA)) == DATA
    leftovers = (
        list((vmc.disks / "vm-container-0-1").glob("*"))
        if (vmc.disks / "vm-container-0-1").exists()
        else []
    )
    assert leftovers == []
    assert not (vmc.disks / "vm-container-0-0" / "compute-0-0-0.saved").exists()


def test_interrupted_move_leaves_the_vm_where_it_was(two, monkeypatch):
    from provisioner.plugins.xen.commands import power

    vmc, uris, image = two
    monkeypatch.setattr(images, "COPY_CHUNK", 256 * 1024)
    shown = power.ProgressBar.__call__

    def interrupt_halfway(self, done, total):
        shown(self, done, total)
        if total and done * 2 > total:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the copy

    monkeypatch.setattr(power.ProgressBar, "__call__", interrupt_halfway)
    result = vmc("move host vm compute-0-0-0 vm-container-0-1")
    assert result.status == 130
    assert result.err.rstrip().endswith("error: interrupted")
    assert_untouched(vmc, uris, image)


def test_move_failing_to_copy_reports_one_line(two, tmp_path):
    vmc, uris, image = two
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    vmc.ok(f"set host attr vm-container-0-1 vm_disk_dir {blocker}/disks")
    result = vmc("move host vm compute-0-0-0 vm-container-0-1")
    assert result.status == 1
    lines = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert lines == [
        "error: cannot move VM compute-0-0-0 on container vm-container-0-0: "
        f"NotADirectoryError: [Errno 20] Not a directory: '{blocker}/disks'"
    ]
    vmc.ok(f"set host attr vm-container-0-1 vm_disk_dir {vmc.disks}/vm-container-0-1")
    assert_untouched(vmc, uris, image)


def test_move_failing_on_the_target_hypervisor_puts_everything_back(two, tmp_path):
    vmc, uris, image = two
    # The copy succeeds; defining on the target fails: the copies go, the VM runs again.
    vmc.ok(f"set host attr vm-container-0-1 vm_uri test://{tmp_path}/missing.xml")
    result = vmc("move host vm compute-0-0-0 vm-container-0-1")
    assert result.status == 1
    assert sum(line.startswith("error:") for line in result.err.splitlines()) == 1
    assert "cannot move VM compute-0-0-0 on container vm-container-0-0:" in result.err
    assert_untouched(vmc, uris, image)


def test_move_refuses_nonsense(vmc):
    vmc.ok("add host vm vm-container-0-0 membership=Compute")
    assert "already on vm-container-0-0" in vmc("move host vm compute-0-0-0 vm-container-0-0").err
    vmc.ok("add host vm vm-container-0-1 membership=Compute")
    err = vmc("move host vm compute-0-0-0 compute-0-1-0").err
    assert "'compute-0-1-0' is a VM: a VM cannot hold VMs" in err
    assert (
        "is not defined on its container" in vmc("move host vm compute-0-0-0 vm-container-1-0").err
    )
