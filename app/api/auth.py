"""Who may call the API: HTTP basic auth against `api_basic_auth`, or a bearer token made by `celestra api-token
create` (compared by its SHA-256, the only form stored). Nothing else gets in, unless `api_no_auth` says so."""

from __future__ import annotations

import base64
import binascii
import hmac

from fastapi import HTTPException, Request

from app import runtime

CHALLENGE = {"WWW-Authenticate": 'Basic realm="celestra"'}


def _basic_pairs() -> list[tuple[str, str]]:
    configured = runtime.settings().api_basic_auth
    if configured is None:
        return []
    pairs = []
    for pair in configured.get_secret_value().split(","):
        user, sep, password = pair.partition(":")
        if sep:
            pairs.append((user.strip(), password))
    return pairs


def _basic_ok(encoded: str) -> bool:
    try:
        user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    # Every pair is compared, in constant time each, so the answer's timing says nothing of which was close.
    matches = [hmac.compare_digest(user.encode(), u.encode()) & hmac.compare_digest(password.encode(), p.encode())
               for u, p in _basic_pairs()]
    return any(matches)


def require_caller(request: Request) -> str:
    """The caller's name (the basic-auth user or the token's name); 401 for anyone else."""
    if runtime.settings().api_no_auth:
        return "anonymous"
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic" and _basic_ok(credentials.strip()):
        return base64.b64decode(credentials.strip()).decode().partition(":")[0]
    if scheme.lower() == "bearer" and credentials.strip():
        owner = runtime.store().api_token_owner(credentials.strip())
        if owner is not None:
            return f"token:{owner}"
    raise HTTPException(401, "Unauthorized: basic auth (api_basic_auth) or a bearer token (celestra api-token "
                             "create) is required", headers=CHALLENGE)
