"""`python -m provisioner.pxe.tftp ROOT [ADDRESS [PORT]]`: serve a directory over TFTP, for
benches and checking by hand (provisionerd starts `TftpService` itself)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from provisioner.pxe.tftp.service import TftpService
from provisioner.udp import default_workers


def main(argv: list[str] | None = None) -> int:
    """`python -m provisioner.pxe.tftp ROOT [ADDRESS [PORT]] [--workers N]
    [--max-per-client N]`: serve a directory."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(prog="python -m provisioner.pxe.tftp")
    parser.add_argument("root")
    parser.add_argument("address", nargs="?", default="127.0.0.1")
    parser.add_argument("port", nargs="?", type=int, default=6969)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--max-per-client", type=int, default=8)
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(message)s")
    service = TftpService(
        Path(args.root),
        args.address,
        args.port,
        workers=args.workers,
        max_per_client=args.max_per_client,
    )
    signal.signal(signal.SIGTERM, lambda *_: service.stop())
    print(f"serving {args.root} on {service.address}:{service.port}", flush=True)
    try:
        service.start()
    except KeyboardInterrupt:
        service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
