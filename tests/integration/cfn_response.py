"""CloudFormation's pre-signed ResponseURL for a custom resource, served on loopback."""

from __future__ import annotations

import json
from typing import Any


class ResponseCatcher:
    """CloudFormation's pre-signed ResponseURL, on loopback: records each PUT body."""

    def __init__(self) -> None:
        import http.server
        import threading

        bodies: list[dict[str, Any]] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                length = int(self.headers["Content-Length"])
                bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.bodies = bodies
        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/response?signature=x"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
