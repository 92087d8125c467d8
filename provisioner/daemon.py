"""provisionerd: the server nodes talk to. Until the boot services land, it says so."""

from __future__ import annotations

import sys


def main() -> int:
    sys.stderr.write(
        "provisionerd: the boot services (HTTP, TFTP, DNS, discovery) are not built yet; "
        "use 'rocks' to manage the cluster database\n"
    )
    return 1
