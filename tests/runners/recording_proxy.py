"""An HTTP reverse proxy for tests: it forwards every request to one upstream and keeps what it received.

Point a client's endpoint at `proxy.url` and read `proxy.requests` to see exactly what the client sent (method,
path, headers, body) while the upstream still answers it. Plain HTTP, one upstream, bodies read whole: enough for
AWS query APIs (STS) and JSON APIs.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class RecordingProxy:
    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")
        self.requests: list[Recorded] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                proxy.requests.append(Recorded(self.command, self.path, dict(self.headers), body))
                # The client signed its own Host header (SigV4): pass the headers through as they came.
                forwarded = urllib.request.Request(proxy.upstream + self.path, data=body or None, method=self.command,
                                                   headers={k: v for k, v in self.headers.items()
                                                            if k.lower() not in ("content-length", "connection")})
                try:
                    with urllib.request.urlopen(forwarded, timeout=30) as response:
                        status, headers, payload = response.status, response.headers, response.read()
                except urllib.error.HTTPError as error:
                    status, headers, payload = error.code, error.headers, error.read()
                self.send_response(status)
                for key, value in headers.items():
                    if key.lower() not in ("content-length", "connection", "transfer-encoding", "server", "date"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _forward

            def log_message(self, *args: Any) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> RecordingProxy:
        threading.Thread(target=self.server.serve_forever, daemon=True, name="recording-proxy").start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
