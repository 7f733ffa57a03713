"""Kestra's notification tasks (workers/plugins/notifications.py) as real flows: the incoming webhooks against the
real HTTP server of tests/unit/http_server.py, MailSend against a real SMTP server (aiosmtpd) started here, in
plain SMTP with a login, STARTTLS and SMTPS (a certificate made for the test, trusted through SSL_CERT_FILE)."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from http_server import HttpServer, unanswered_port
from smtp_server import smtp_server

from app.model.states import State

WEBHOOKS = ["io.kestra.plugin.notifications.slack.SlackIncomingWebhook", "io.kestra.plugin.slack.SlackIncomingWebhook",
            "io.kestra.plugin.notifications.teams.TeamsIncomingWebhook",
            "io.kestra.plugin.notifications.discord.DiscordIncomingWebhook",
            "io.kestra.plugin.notifications.google.GoogleChatIncomingWebhook"]
MAIL = "io.kestra.plugin.notifications.mail.MailSend"


@pytest.fixture(scope="module")
def server() -> Iterator[HttpServer]:
    with HttpServer() as running:
        yield running


def run(client: Any, *tasks: dict[str, Any]) -> Any:
    flow = {"id": "notify", "namespace": "notify.tests", "tasks": list(tasks)}
    return client.run(yaml.safe_dump(flow, sort_keys=False), wait=True, timeout=60)


def ok(client: Any, *tasks: dict[str, Any]) -> Any:
    ex = run(client, *tasks)
    assert ex.state == State.SUCCESS, ex.to_json()
    return ex


def failure(client: Any, *tasks: dict[str, Any]) -> str:
    ex = run(client, *tasks)
    assert ex.state == State.FAILED, ex.to_json()
    return str(next(r for r in ex.task_runs if r.state == State.FAILED).error)


# -- incoming webhooks -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", WEBHOOKS)
def test_an_incoming_webhook_posts_its_rendered_payload(client: Any, server: HttpServer, kind: str) -> None:
    server.bodies.clear()
    payload = '{"text": "Flow {{ flow.id }} says {{ \'hi\' | upper }}"}'
    ex = ok(client, {"id": "hook", "type": kind, "url": server.url + "/hook", "payload": payload})
    assert ex.task_runs[0].outputs == {}
    assert [json.loads(body) for path, body in server.bodies] == [{"text": "Flow notify says HI"}]
    assert server.requests[-1][0] == "POST" and server.requests[-1][2]["Content-Type"] == "application/json"


def test_a_refused_webhook_fails_the_task(client: Any, server: HttpServer) -> None:
    message = failure(client, {"id": "hook", "type": WEBHOOKS[0], "url": server.url + "/status/404", "payload": "{}"})
    assert "Failed http request with response code '404'" in message


def test_webhook_options_bound_the_call(client: Any, server: HttpServer) -> None:
    hook = {"id": "hook", "type": WEBHOOKS[2], "payload": '{"text": "é"}'}
    slow = {**hook, "url": server.url + "/slow?s=5"}
    assert "ReadTimeout" in failure(client, {**slow, "options": {"readIdleTimeout": "PT0.5S"}})
    assert "ReadTimeout" in failure(client, {**slow, "options": {"readTimeout": "PT0.5S"}})
    with unanswered_port() as port:
        assert "ConnectTimeout" in failure(client, {**hook, "url": f"http://127.0.0.1:{port}/",
                                                    "options": {"connectTimeout": "PT0.5S"}})
    server.bodies.clear()
    ex = ok(client, {**hook, "url": server.url + "/hook", "options": {
        "defaultCharset": "ISO-8859-1", "connectionPoolIdleTimeout": "PT1S", "maxContentLength": 10}})
    assert server.bodies == [("/hook", '{"text": "é"}'.encode("latin-1"))]
    lines = [row["message"] for row in client.logs(ex.id)]
    assert "options.connectionPoolIdleTimeout has no effect on a webhook call" in lines
    assert "options.maxContentLength has no effect on a webhook call" in lines


# -- MailSend ----------------------------------------------------------------------------------------------------
def mail(port: int, **props: Any) -> dict[str, Any]:
    return {"id": "mail", "type": MAIL, "host": "127.0.0.1", "port": port, "transportStrategy": "SMTP",
            "from": "kestra@example.com", "to": "ada@example.com", "subject": "Run {{ flow.id }}", **props}


def test_mail_send_delivers_text_html_cc_attachments_and_images(client: Any) -> None:
    write = {"id": "report", "type": "io.kestra.plugin.core.storage.Write", "content": "id,total\n1,42\n",
             "extension": ".csv"}
    with smtp_server() as smtp:
        ok(client, write, mail(smtp.port, username="ada", password="lovelace", cc="bob@example.com; eve@example.com",
                               plainTextContent="plain {{ flow.namespace }}",
                               htmlTextContent='<p>html</p><img src="cid:logo.png">',
                               attachments=[{"name": "report.csv", "uri": "{{ outputs.report.uri }}",
                                             "contentType": "text/csv"}],
                               embeddedImages='[{"name": "logo.png", "uri": "{{ outputs.report.uri }}", '
                                              '"contentType": "image/png"}]'))
    (envelope,) = smtp.messages
    assert envelope.mail_from == "kestra@example.com"
    assert envelope.rcpt_tos == ["ada@example.com", "bob@example.com", "eve@example.com"]
    message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
    assert message["Subject"] == "Run notify" and message["Cc"] == "bob@example.com, eve@example.com"
    assert message["Disposition-Notification-To"] == "kestra@example.com"
    assert message.get_body(("plain",)).get_content().strip() == "plain notify.tests"
    html = message.get_body(("html",))
    assert "cid:logo.png" in html.get_content()
    parts = {part.get_filename(): part for part in message.walk() if part.get_filename()}
    assert parts["report.csv"].get_content() == "id,total\n1,42\n" and parts["report.csv"]["Content-Disposition"] \
        .startswith("attachment")
    assert parts["logo.png"]["Content-ID"] == "<logo.png>" and parts["logo.png"].get_content_type() == "image/png"


def test_mail_send_without_a_body_sends_kestras_plain_text(client: Any) -> None:
    with smtp_server() as smtp:
        ok(client, mail(smtp.port, to="a@example.com;b@example.com"))
    message = email.message_from_bytes(smtp.messages[0].original_content, policy=email.policy.default)
    assert message.get_content().strip() == "Please view this email in a modern email client"
    assert smtp.messages[0].rcpt_tos == ["a@example.com", "b@example.com"]


@pytest.mark.parametrize("mode", ["SMTP_TLS", "SMTPS"])
def test_mail_send_over_tls_checks_the_servers_certificate(client: Any, tmp_path: Path, mode: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    with smtp_server(mode, tls=tmp_path) as smtp:
        props = mail(smtp.port, transportStrategy=mode, username="ada", password="lovelace")
        assert "CERTIFICATE_VERIFY_FAILED" in failure(client, props)
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "server.pem"))  # the worker trusts the test's certificate
        ok(client, props)
    assert len(smtp.messages) == 1


def test_mail_send_failures_are_clear(client: Any) -> None:
    with smtp_server() as smtp:
        assert "refused the login: 535" in failure(client, mail(smtp.port, username="ada", password="nope"))
        assert "transportStrategy SMTP_OAUTH2 is not supported yet" in failure(
            client, mail(smtp.port, transportStrategy="SMTP_OAUTH2"))
        assert "needs a name and a uri" in failure(client, mail(smtp.port, attachments='[{"name": "x"}]'))
    assert not smtp.messages
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    assert "Cannot send the email through 127.0.0.1:" in failure(client, mail(closed))
    with unanswered_port() as port:
        started = time.monotonic()
        assert "timed out" in failure(client, mail(port, sessionTimeout=500))
        assert time.monotonic() - started < 5
