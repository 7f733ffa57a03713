"""A real HTTP server for the HTTP task tests, on 127.0.0.1 in a thread, plus a forward proxy and TLS.

Routes: `/echo` answers what it received as JSON (method, path, query, headers, body as text, form or multipart
parts); `/status/N` answers N; `/redirect` is a 302 to /echo; `/slow?s=N` waits N seconds first; `/file` a file
with a Content-Disposition name; `/empty` no body; `/bytes?n=N` N bytes; `/binary` bytes that are not UTF-8;
`/hook` answers ok; `/basic` and `/digest` need user `ada` with password `lovelace`, `/bearer` the token `t0ken`.
`requests` keeps each request's (method, path, headers), `bodies` its (path, body). `unanswered_port()` is a port
a connect to never completes. `ProxyServer` forwards absolute-form requests and records them.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import email.parser
import email.policy
import hashlib
import json
import socket
import ssl
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

USER, PASSWORD, TOKEN, REALM, NONCE = "ada", "lovelace", "t0ken", "celestra", "n0nce"


def _digest_ok(header: str, method: str) -> bool:
    fields = dict(part.strip().split("=", 1) for part in header.removeprefix("Digest ").split(","))
    f = {k: v.strip('"') for k, v in fields.items()}
    ha1 = hashlib.md5(f"{USER}:{REALM}:{PASSWORD}".encode()).hexdigest()
    ha2 = hashlib.md5(f"{method}:{f['uri']}".encode()).hexdigest()
    expected = hashlib.md5(f"{ha1}:{f['nonce']}:{f['nc']}:{f['cnonce']}:{f['qop']}:{ha2}".encode()).hexdigest()
    return f.get("username") == USER and f.get("response") == expected


class _Handler(BaseHTTPRequestHandler):
    server: HttpServer

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, code: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests.append((self.command, url.path, dict(self.headers)))
        self.server.bodies.append((url.path, raw))
        auth = self.headers.get("Authorization", "")
        if url.path == "/echo":
            self._send(200, json.dumps(self._echo(url, query, raw)).encode(),
                       {"Content-Type": "application/json", "X-Echo": "one", "x-multi": "a"})
        elif url.path.startswith("/status/"):
            code = int(url.path.rsplit("/", 1)[1])
            self._send(code, f"status {code}".encode() if code != 204 else b"")
        elif url.path == "/hook":  # an incoming webhook: Slack answers a plain "ok"
            self._send(200, b"ok")
        elif url.path == "/redirect":
            self._send(302, b"", {"Location": "/echo"})
        elif url.path == "/slow":
            time.sleep(float(query.get("s", "5")))
            self._send(200, b"late")
        elif url.path == "/file":
            self._send(200, b"id,name\n1,ada\n", {"Content-Disposition": 'attachment; filename="../orders.csv"'})
        elif url.path == "/empty":
            self._send(200)
        elif url.path == "/bytes":
            self._send(200, b"x" * int(query["n"]))
        elif url.path == "/binary":
            self._send(200, b"\xff\xfe\x00bad")
        elif url.path == "/basic":
            good = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            self._send(200, b"basic ok") if auth == good else self._send(401, b"no", {"WWW-Authenticate": "Basic"})
        elif url.path == "/bearer":
            self._send(200, b"bearer ok") if auth == f"Bearer {TOKEN}" else self._send(401, b"no")
        elif url.path == "/digest":
            if auth.startswith("Digest ") and _digest_ok(auth, self.command):
                self._send(200, b"digest ok")
            else:
                challenge = f'Digest realm="{REALM}", qop="auth", nonce="{NONCE}", algorithm=MD5'
                self._send(401, b"no", {"WWW-Authenticate": challenge})
        else:
            self._send(404, b"not found")

    def _echo(self, url: urllib.parse.SplitResult, query: dict[str, str], raw: bytes) -> dict[str, Any]:
        echo: dict[str, Any] = {"method": self.command, "path": url.path, "query": query,
                                "headers": {k.lower(): v for k, v in self.headers.items()},
                                "body": raw.decode("latin-1")}
        kind = self.headers.get("Content-Type", "")
        if kind.startswith("application/x-www-form-urlencoded"):
            echo["form"] = dict(urllib.parse.parse_qsl(raw.decode()))
        elif kind.startswith("multipart/form-data"):
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                f"Content-Type: {kind}\r\n\r\n".encode() + raw)
            echo["parts"] = {part.get_param("name", header="content-disposition"): {
                "filename": part.get_filename(), "content": part.get_payload(decode=True).decode()}
                for part in message.iter_parts()}
        return echo

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle


class HttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, tls: Path | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.bodies: list[tuple[str, bytes]] = []  # (path, body) of each request
        scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(_self_signed(tls))
            self.socket = context.wrap_socket(self.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> HttpServer:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


def _self_signed(folder: Path) -> str:
    """A certificate and key for 127.0.0.1 in one PEM file, signed by themselves (no client trusts them)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(key, hashes.SHA256()))
    path = folder / "server.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return str(path)


class _ProxyHandler(BaseHTTPRequestHandler):
    server: ProxyServer

    def log_message(self, *args: Any) -> None:
        pass

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests.append((self.command, self.path, dict(self.headers)))
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("proxy-authorization", "proxy-connection", "connection", "content-length")}
        request = urllib.request.Request(self.path, data=body or None, method=self.command, headers=headers)
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=10) as response:
            payload = response.read()
            self.send_response(response.status)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Via", "celestra-test-proxy")
            self.end_headers()
            self.wfile.write(payload)

    do_GET = do_POST = _forward


class ProxyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.port = self.server_address[1]

    def __enter__(self) -> ProxyServer:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


@contextlib.contextmanager
def unanswered_port() -> Iterator[int]:
    """A port whose listen queue is full: Linux drops further SYNs, so a connect there waits until it times out."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(listener.getsockname())
        fillers.append(filler)
    try:
        yield int(listener.getsockname()[1])
    finally:
        for sock in [*fillers, listener]:
            sock.close()
