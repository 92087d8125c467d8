"""`insert-ethers`, for Rocks users: turn discovery on, show machines as DHCP finds them and
whether each has fetched its kickstart, turn discovery off on Ctrl-C (or after --timeout).

Unlike Rocks' it scrapes no log and needs no terminal UI: discovery runs in provisionerd, and
this only watches the database, so it can also run in a script (`--timeout`, `--count`).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from provisioner.cli.main import App
from provisioner.config import Config
from provisioner.errors import ProvisionerError

MARK = {
    "kickstart": "(*)",
    "partitions": "(*)",
    "pre": "(*)",
    "post": "(*)",
    "done": "(*)",
    "failed": "(!)",
}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="insert-ethers", description=__doc__.split("\n\n")[0])
    ap.add_argument("--appliance", "--membership", default="compute", help="appliance of new hosts")
    ap.add_argument("--rack", "--cabinet", type=int, default=0, help="rack of new hosts")
    ap.add_argument("--rank", type=int, default=None, help="first rank (default: next free)")
    ap.add_argument("--timeout", type=float, default=0, help="stop after this many seconds")
    ap.add_argument(
        "--count", type=int, default=0, help="stop after this many hosts fetched their kickstart"
    )
    opts = ap.parse_args(argv)
    app = App(Config.load())
    words = ["enable", "discovery", f"appliance={opts.appliance}", f"rack={opts.rack}"]
    if opts.rank is not None:
        words.append(f"rank={opts.rank}")
    status = app.main(words)
    if status:
        return status
    print("Power on the new machines in the order you want them ranked. Ctrl-C to finish.")
    shown: dict[str, str] = {}
    deadline = time.monotonic() + opts.timeout if opts.timeout else None
    try:
        while deadline is None or time.monotonic() < deadline:
            fetched = watch(app, shown)
            if opts.count and fetched >= opts.count:
                break
            time.sleep(1.0)
    except KeyboardInterrupt:
        print()
    finally:
        app.main(["disable", "discovery"])
        app.close()
    return 0


def watch(app: App, shown: dict[str, str]) -> int:
    """Print hosts discovered since the last call and status changes; returns how many hosts
    have fetched their kickstart."""
    from provisioner.db.reader import Reader
    from provisioner.services.discovery import recent

    try:
        with Reader.connect(app.config.db_url, app.config.database_timeout) as reader:
            rows = recent(reader)
    except ProvisionerError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 0
    fetched = 0
    for name, mac, ip, _created, last in rows:
        mark = MARK.get(last, "( )")
        fetched += mark == "(*)"
        if shown.get(name) != mark:
            print(f"{name:<20} {mac or '':<17} {ip or '':<15} {mark}", flush=True)
            shown[name] = mark
    return fetched


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
