"""A real SMTP server for the mail task tests: aiosmtpd on a free port of 127.0.0.1, in plain SMTP, with STARTTLS
or as SMTPS (a certificate made for the test); it accepts the login ada / lovelace and keeps every envelope."""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from http_server import _self_signed


@dataclass
class Smtp:
    port: int
    messages: list[Any] = field(default_factory=list)  # aiosmtpd envelopes


@contextlib.contextmanager
def smtp_server(mode: str = "SMTP", tls: Path | None = None) -> Iterator[Smtp]:
    """aiosmtpd on a free port: plain SMTP (login allowed without TLS), STARTTLS offered, or implicit TLS (SMTPS);
    the login is ada / lovelace."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    smtp = Smtp(port)

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            smtp.messages.append(envelope)
            return "250 OK"

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        good = isinstance(data, LoginPassword) and (data.login, data.password) == (b"ada", b"lovelace")
        return AuthResult(success=good, handled=False)  # handled=False: aiosmtpd answers 535 itself

    context = None
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(_self_signed(tls))
    kwargs: dict[str, Any] = {"authenticator": authenticator, "auth_require_tls": False}
    if mode == "SMTP_TLS":
        kwargs.update(tls_context=context, require_starttls=True)
    elif mode == "SMTPS":
        kwargs["ssl_context"] = context
    controller = Controller(Handler(), hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield smtp
    finally:
        controller.stop()
