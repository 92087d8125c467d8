"""`make run`: a demo cluster on the embedded SQLite database, then the main job.

The first run creates the database under $PROVISIONER_HOME with `rocks init frontend` and the
commands of examples/demo-cluster.rocks; later runs find it and leave it alone.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from provisioner.cli.main import App
from provisioner.config import Config

DEMO_ATTRS = [
    "Kickstart_PrivateHostname=frontend",
    "Kickstart_PublicHostname=frontend.example.org",
    "Kickstart_PublicAddress=198.51.100.10",
    "Kickstart_PublicNetmask=255.255.255.0",
    "Kickstart_PublicGateway=198.51.100.1",
    "Kickstart_PublicDNSDomain=example.org",
    "Info_ClusterName=demo",
]
DEMO_FILE = Path(__file__).resolve().parent.parent / "examples" / "demo-cluster.rocks"


def main() -> int:
    config = Config.load()
    app = App(config)
    try:
        db = config.home / "provisioner.db"
        if not config.database_url and not db.exists():
            print(f"creating the demo cluster in {config.home}")
            status = app.main(["init", "frontend", *DEMO_ATTRS])
            if status == 0 and DEMO_FILE.exists():
                status = app.main(["batch", str(DEMO_FILE)])
            if status:
                return status
        print(f"$ rocks list host      (PROVISIONER_HOME={config.home})")
        return app.main(["list", "host"])
    finally:
        app.close()


if __name__ == "__main__":
    os.environ.setdefault("PROVISIONER_HOME", str(Path.cwd() / "var"))
    sys.exit(main())
