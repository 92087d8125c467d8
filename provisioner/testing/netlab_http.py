"""The netlab HTTP server, run as a script inside a lab namespace (`netlab.HttpServer`).

It serves files from a directory (kickstarts, kernels, iPXE scripts), answers every POST with
200 "ok" (install callbacks), and appends one JSON line per request — method, path, headers,
body, status — to a log the test reads. It imports nothing from the project, so it starts
with any Python 3.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import threading
import time
from typing import Any

MAX_BODY = 1 << 20


class Handler(http.server.SimpleHTTPRequestHandler):
    log_path = ""
    lock = threading.Lock()
    body = b""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(min(length, MAX_BODY)) if length > 0 else b""
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        record = {
            "time": time.time(),
            "client": self.client_address[0],
            "method": self.command,
            "path": self.path,
            "headers": dict(self.headers.items()),
            "body": self.body.decode("utf-8", "replace"),
            "status": int(code) if isinstance(code, int) else 0,
        }
        self.body = b""
        with self.lock, open(self.log_path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bind", required=True)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--root", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--ready", required=True, help="file that receives the port when bound")
    args = parser.parse_args()
    Handler.log_path = args.log
    handler = functools.partial(Handler, directory=args.root)
    server = http.server.ThreadingHTTPServer((args.bind, args.port), handler)
    server.daemon_threads = True
    tmp = args.ready + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{server.server_address[1]}\n")
    os.replace(tmp, args.ready)
    server.serve_forever()


if __name__ == "__main__":
    main()
