"""Partition rows: listing and removal (what forces a host to repartition)."""

from __future__ import annotations

import json

from provisioner.db.engine import make_engine, transaction
from provisioner.services.partitions import replace_partitions

ROWS = [
    {
        "device": "sda1",
        "mountpoint": "/",
        "sectorstart": "32.3kB",
        "partitionsize": "16.0GB",
        "partitionid": "83",
        "fstype": "ext4",
        "partitionflags": "boot",
        "formatflags": "",
    },
    {
        "device": "sda2",
        "mountpoint": "/var",
        "sectorstart": "16.0GB",
        "partitionsize": "4000MB",
        "partitionid": "83",
        "fstype": "ext4",
        "partitionflags": "",
        "formatflags": "",
    },
    {
        "device": "sda3",
        "mountpoint": "/state/partition1",
        "sectorstart": "21GB",
        "partitionsize": "1TB",
        "partitionid": "83",
        "fstype": "xfs",
        "partitionflags": "",
        "formatflags": "",
    },
]


def report(config, host_id: int, rows) -> None:
    engine = make_engine(config.db_url)
    with transaction(engine) as session:
        replace_partitions(session, host_id, rows)
    engine.dispose()


def host_id(rocks, config, name: str) -> int:
    from provisioner.db.reader import Reader
    from provisioner.services.hostargs import resolve_host

    with Reader.connect(config.db_url) as reader:
        return resolve_host(reader, name).id


def test_list_and_remove_partitions(rocks, config):
    rocks.ok("add host compute-0-0")
    hid = host_id(rocks, config, "compute-0-0")
    report(config, hid, ROWS)
    out = rocks.ok("list host partition compute-0-0")
    assert out.splitlines()[0].split() == [
        "HOST",
        "DEVICE",
        "MOUNTPOINT",
        "START",
        "SIZE",
        "ID",
        "TYPE",
        "FLAGS",
        "FORMATFLAGS",
    ]
    assert len(out.splitlines()) == 4
    # Reports are upserts by device: a second report updates, never duplicates.
    report(config, hid, [{**ROWS[2], "partitionsize": "2TB"}])
    rows = json.loads(rocks.ok("list host partition compute-0-0 output-format=json"))
    assert [r["size"] for r in rows] == ["16.0GB", "4000MB", "2TB"]
    rocks.ok("remove host partition compute-0-0 partition=/var")
    assert [
        r["mountpoint"]
        for r in json.loads(rocks.ok("list host partition compute-0-0 output-format=json"))
    ] == ["/", "/state/partition1"]
    rocks.ok("remove host partition compute-0-0")
    assert json.loads(rocks.ok("list host partition output-format=json")) == []
