"""A fake Saleor GraphQL endpoint on 127.0.0.1 (http.server in a thread), for the
promotions client and the retrain handler's tests."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeSaleor:
    """Answers each POST with `answer(request_number, variables, headers)`: (status,
    headers, body) or a callable writing the raw response itself."""

    def __init__(self, answer: Callable[[int, dict[str, Any], Any], Any]) -> None:
        self.answer = answer
        self.requests: list[tuple[dict[str, Any], dict[str, str]]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append((body, dict(self.headers)))
                result = fake.answer(len(fake.requests), body["variables"], self.headers)
                if callable(result):
                    result(self)
                    return
                status, headers, payload = result
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/graphql/"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> FakeSaleor:
        self.thread.start()
        return self

    def __exit__(self, *args: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
