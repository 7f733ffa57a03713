"""A fake of Google's OAuth2 token endpoint and IAM Credentials' generateAccessToken, for tests only.

It holds one RSA key pair and makes service-account key files (`service_account_info`) signed with it and pointing
their `token_uri` here, so google-auth's real service-account and impersonated credentials talk to it:
- `POST /token`: the JWT-bearer grant; the assertion's RS256 signature is checked against the key, and the access
  token handed out remembers who asked (the JWT's `iss`) and for which scopes (its `scope` claim).
- `POST /v1/projects/-/serviceAccounts/TARGET:generateAccessToken`: the caller's bearer token must be one of ours;
  the token handed out remembers TARGET, the body's scopes and who asked for it.
`identity(authorization)` then says who a request's `Authorization: Bearer ...` header speaks for: one of these
access tokens, or a self-signed service-account JWT (what the gapic clients send when they use JWT access).
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import jwt

GENERATE = ":generateAccessToken"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"  # google-auth's assertions name it, whatever token_uri


@dataclass(frozen=True)
class Identity:
    principal: str  # the service account the token acts as
    scopes: tuple[str, ...]
    via: str  # "token" (OAuth2 grant), "impersonated by <email>" or "self-signed jwt"


class FakeGoogleAuth:
    def __init__(self) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()).decode()
        self.public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                                        serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        self.key_id = uuid.uuid4().hex
        self.tokens: dict[str, Identity] = {}
        self.grants: list[Identity] = []  # every token handed out, in order
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeGoogleAuth:
        threading.Thread(target=self.server.serve_forever, daemon=True, name="gcp-fake-auth").start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def service_account_info(self, email: str) -> dict[str, str]:
        """A key file as the Cloud console gives it, signed with this fake's key."""
        return {"type": "service_account", "project_id": email.split("@")[1].split(".")[0],
                "private_key_id": self.key_id, "private_key": self.private_pem, "client_email": email,
                "client_id": "1", "token_uri": f"{self.url}/token"}

    def identity(self, authorization: str | None) -> Identity | None:
        if not authorization or not authorization.startswith("Bearer "):
            return None
        token = authorization.removeprefix("Bearer ")
        with self.lock:
            if token in self.tokens:
                return self.tokens[token]
        try:  # a self-signed JWT: no audience check (the gapic clients set the service's own)
            claims = jwt.decode(token, certs={self.key_id: self.public_pem}, verify=True)
        except ValueError:
            return None
        return Identity(claims["iss"], tuple(str(claims.get("scope", "")).split()), "self-signed jwt")

    def _issue(self, identity: Identity) -> str:
        token = f"fake-{uuid.uuid4().hex}"
        with self.lock:
            self.tokens[token] = identity
            self.grants.append(identity)
        return token

    def token_grant(self, form: dict[str, list[str]]) -> tuple[int, Any]:
        try:
            claims = jwt.decode(form["assertion"][0], certs={self.key_id: self.public_pem}, verify=True,
                                audience=GOOGLE_TOKEN_AUDIENCE)
        except (KeyError, ValueError) as exc:
            return 400, {"error": "invalid_grant", "error_description": str(exc)}
        token = self._issue(Identity(claims["iss"], tuple(str(claims.get("scope", "")).split()), "token"))
        return 200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}

    def generate_access_token(self, target: str, caller: Identity | None, body: dict[str, Any]) -> tuple[int, Any]:
        if caller is None:
            return 401, {"error": {"code": 401, "status": "UNAUTHENTICATED", "message": "no valid credentials"}}
        token = self._issue(Identity(target, tuple(body.get("scope", [])), f"impersonated by {caller.principal}"))
        return 200, {"accessToken": token, "expireTime": "2099-01-01T00:00:00Z"}


def _handler(fake: FakeGoogleAuth) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            if self.path == "/token":
                code, payload = fake.token_grant(parse_qs(raw))
            elif self.path.startswith("/v1/projects/-/serviceAccounts/") and self.path.endswith(GENERATE):
                target = self.path.removeprefix("/v1/projects/-/serviceAccounts/").removesuffix(GENERATE)
                caller = fake.identity(self.headers.get("Authorization"))
                code, payload = fake.generate_access_token(target, caller, json.loads(raw or "{}"))
            else:
                code, payload = 404, {"error": {"code": 404, "message": f"POST {self.path} is not faked"}}
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler
