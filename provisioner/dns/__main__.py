"""`python -m provisioner.dns [--address A] [--port P] [--workers N]`: the DNS service alone,
with the settings of `Config.load()` (PROVISIONER_HOME, PROVISIONER_DNS_UPSTREAMS...)."""

from __future__ import annotations

import argparse
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m provisioner.dns")
    parser.add_argument("--address")
    parser.add_argument("--port", type=int)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(message)s")
    from provisioner.dns import child_main, serve

    if args.child:
        return child_main()
    from provisioner.config import Config

    return serve(
        Config.load(),
        workers=args.workers,
        address=args.address,
        port=args.port,
        ready=lambda port: print(f"dns listening on port {port}", flush=True),
    )


if __name__ == "__main__":
    sys.exit(main())
