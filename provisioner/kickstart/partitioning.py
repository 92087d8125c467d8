"""The kickstart's side of partitioning: the main section's `%include /tmp/partition-info`, the
%pre that writes the partition helper (partition_helper.py, one file for the installer) and
what the server knows of the host's disks (`partition_json`) into /tmp, and the %pre that runs
the helper to write /tmp/partition-info.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from provisioner.kickstart.syntax import PRE_LOG, PYTHON
from provisioner.kickstart.template import Part, Slot

# The per-host value the renderer adds under a name no attribute can have.
PARTITION_JSON = "\x00partition-json"
PARTITION_INCLUDE = "%include /tmp/partition-info"


@functools.cache
def helper_source() -> str:
    return (Path(__file__).parent / "partition_helper.py").read_text()


def helper_pre() -> list[Part]:
    return [
        "\n# Partition helper: module rocks_partition for the %pre programs below, and what\n"
        "# the server knows of this host's disks (written by provisioner, not a node file).\n"
        f"%pre --log={PRE_LOG}\n"
        'T="${ROCKS_PARTITION_TMP:-/tmp}"\n'
        'mkdir -p "$T"\n'
        "cat > \"$T/rocks_partition.py\" << 'ROCKS_PARTITION_EOF'\n",
        helper_source(),
        "ROCKS_PARTITION_EOF\ncat > \"$T/rocks_partition.json\" << 'ROCKS_PARTITION_EOF'\n",
        Slot(PARTITION_JSON, "the partition helper"),
        "\nROCKS_PARTITION_EOF\n"
        'if [ -z "$ROCKS_PARTITION_ROOT" ]; then\n'
        f'  (cd "$T" && {PYTHON} -c \'import rocks_partition, sysconfig; '
        'rocks_partition.install_copy(sysconfig.get_paths()["purelib"])\') '
        "2>/dev/null || true\n"
        "fi\n"
        "%end\n",
    ]


def do_partition_pre() -> list[Part]:
    return [
        "\n# Partitioning: /tmp/partition-info from /tmp/user_partition_info (rocks_partition)\n"
        f"%pre --log={PRE_LOG} --interpreter={PYTHON}\n"
        "import os\n"
        "import sys\n"
        'sys.path.insert(0, os.environ.get("ROCKS_PARTITION_TMP") or "/tmp")\n'
        "import rocks_partition\n"
        "rocks_partition.do_partition()\n"
        "%end\n"
    ]


_SORTED_JSON = json.JSONEncoder(sort_keys=True)


def partition_json(host: str, appliance: str, rows: Sequence[Mapping[str, str]]) -> str:
    """The per-host data the helper reads from /tmp/rocks_partition.json (one line)."""
    # One encoder for every call: json.dumps(sort_keys=True) builds a new one each time.
    return _SORTED_JSON.encode(
        {
            "host": host,
            "appliance": appliance,
            "frontend": appliance == "frontend",
            "partitions": [dict(r) for r in rows],
        }
    )
