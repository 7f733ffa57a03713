"""Kestra's notification tasks: Slack, Microsoft Teams, Discord and Google Chat incoming webhooks (a JSON `payload`
POSTed to `url`, on the HTTP tasks' client: `pip install 'celestra[http]'`), and `MailSend` over SMTP (the standard
library's smtplib: SMTP, SMTP with STARTTLS, or SMTPS; attachments and embedded images from the internal storage).

The payload is rendered once (Kestra renders it twice; a second pass would run as a template whatever an input or
an output put into it). None of these tasks has outputs; a refused message fails the task saying why.
"""

from __future__ import annotations

import contextlib
import email.message
import email.utils
import json
import smtplib
import ssl
from collections.abc import Iterator
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, model_validator

from workers.plugin_api import Duration, RunContext, RunnableTask, TaskFailure
from workers.plugins.http import HttpOptions, HttpTimeout, exchange
from workers.plugins.storage import owned_file, reading

DEFAULT_TEXT = "Please view this email in a modern email client"  # Kestra's plain text when none is given


class WebhookOptions(BaseModel):
    """Kestra's RequestOptions of the notification tasks."""

    model_config = ConfigDict(extra="forbid")
    connectTimeout: Duration | None = None
    readTimeout: Duration | None = None  # read as readIdleTimeout when that one is not set
    readIdleTimeout: Duration | None = None
    connectionPoolIdleTimeout: Duration | None = None  # no effect (a warning says so)
    maxContentLength: int | None = None  # no effect on a webhook's short answer (a warning says so)
    defaultCharset: str = "UTF-8"


class _IncomingWebhook(RunnableTask):
    url: str
    payload: str | dict[str, Any] | None = None
    options: WebhookOptions | None = None

    def run(self, ctx: RunContext) -> dict[str, Any]:
        rendered = ctx.render(self.payload) if self.payload is not None else {}
        post(ctx, self.url, rendered, self.options)
        return {}


def post(ctx: RunContext, url: str, payload: str | dict[str, Any], given: WebhookOptions | None) -> None:
    """POST `payload` (JSON text, or a value sent as JSON) to the rendered `url`; a refusal fails the task."""
    given = given or WebhookOptions()
    for name in ("connectionPoolIdleTimeout", "maxContentLength"):
        if getattr(given, name) is not None:
            ctx.log("WARN", f"options.{name} has no effect on a webhook call")
    options = HttpOptions(timeout=HttpTimeout(connectTimeout=given.connectTimeout,
                                              readIdleTimeout=given.readIdleTimeout or given.readTimeout),
                          defaultCharset=given.defaultCharset)
    body = payload if isinstance(payload, str) else json.dumps(payload)
    charset = ctx.render_str(given.defaultCharset).strip()
    try:
        content = body.encode(charset)
    except LookupError:
        raise TaskFailure(f"options.defaultCharset: unknown charset '{charset}'") from None
    except UnicodeEncodeError as exc:
        raise TaskFailure(f"the payload cannot be written in {charset}: {exc.reason} at {exc.start}") from None
    args = {"method": "POST", "url": ctx.render_str(url).strip(), "content": content,
            "headers": {"Content-Type": "application/json"}}
    with exchange(ctx, options, lambda stack: args, limit=1024 * 1024) as (response, chunks):
        answer = b"".join(chunks).decode(errors="replace")
    ctx.log("DEBUG", f"webhook answered HTTP {response.status_code}: {answer[:500]}")
    ctx.log("INFO", "Request succeeded")


class SlackIncomingWebhook(_IncomingWebhook):
    """`messageText` is Slack's `text` (mrkdwn, nothing to escape): the payload `{"text": messageText}`."""

    type: Literal["io.kestra.plugin.notifications.slack.SlackIncomingWebhook",
                  "io.kestra.plugin.slack.SlackIncomingWebhook",
                  "io.kestra.plugin.slack.notifications.SlackIncomingWebhook", "SlackIncomingWebhook"]
    messageText: str | None = None

    @model_validator(mode="after")
    def _one_message(self) -> SlackIncomingWebhook:
        if self.payload is not None and self.messageText is not None:
            raise ValueError("give payload or messageText, not both")
        return self

    def run(self, ctx: RunContext) -> dict[str, Any]:
        if self.messageText is None:
            return super().run(ctx)
        post(ctx, self.url, {"text": ctx.render_str(self.messageText)}, self.options)
        return {}


class TeamsIncomingWebhook(_IncomingWebhook):
    type: Literal["io.kestra.plugin.notifications.teams.TeamsIncomingWebhook", "TeamsIncomingWebhook"]


class DiscordIncomingWebhook(_IncomingWebhook):
    type: Literal["io.kestra.plugin.notifications.discord.DiscordIncomingWebhook", "DiscordIncomingWebhook"]


class GoogleChatIncomingWebhook(_IncomingWebhook):
    type: Literal["io.kestra.plugin.notifications.google.GoogleChatIncomingWebhook", "GoogleChatIncomingWebhook"]


class Attachment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    uri: str
    name: str
    contentType: str = "application/octet-stream"


class MailSend(RunnableTask):
    """An email through an SMTP server; `to` and `cc` hold addresses separated by `;` (or `,`)."""

    type: Literal["io.kestra.plugin.notifications.mail.MailSend", "io.kestra.plugin.email.MailSend", "MailSend"]
    host: str
    port: int | str | None = None
    username: str | None = None
    password: str | None = None
    transportStrategy: Literal["SMTP", "SMTPS", "SMTP_TLS"] | str = "SMTPS"
    sessionTimeout: int | str = 10000  # milliseconds, each exchange with the server
    from_: str | None = Field(None, alias="from")
    to: str
    cc: str | None = None
    subject: str | None = None
    htmlTextContent: str | None = None
    plainTextContent: str | None = None
    attachments: list[Attachment] | str | None = None
    embeddedImages: list[Attachment] | str | None = None

    def run(self, ctx: RunContext) -> dict[str, Any]:
        strategy = ctx.render_str(self.transportStrategy).strip().upper()
        if strategy not in ("SMTP", "SMTPS", "SMTP_TLS"):
            raise TaskFailure(f"transportStrategy {strategy} is not supported yet (SMTP, SMTPS or SMTP_TLS)")
        message, recipients = self._message(ctx)
        host = ctx.render_str(self.host).strip()
        port = int(ctx.render_str(self.port)) if self.port is not None else (465 if strategy == "SMTPS" else 25)
        timeout = int(ctx.render_str(self.sessionTimeout)) / 1000
        try:
            with self._smtp(strategy, host, port, timeout) as smtp:
                if self.username:
                    smtp.login(ctx.render_str(self.username), ctx.render_str(self.password or ""))
                refused = smtp.send_message(message, to_addrs=recipients)
        except smtplib.SMTPAuthenticationError as exc:
            said = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
            raise TaskFailure(f"The SMTP server {host}:{port} refused the login: {exc.smtp_code} {said}") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise TaskFailure(f"Cannot send the email through {host}:{port} ({strategy}): {exc}") from None
        if refused:
            raise TaskFailure(f"The SMTP server refused these recipients: {sorted(refused)}")
        ctx.log("INFO", f"Email sent to {len(recipients)} recipient(s)")
        return {}

    @staticmethod
    @contextlib.contextmanager
    def _smtp(strategy: str, host: str, port: int, timeout: float) -> Iterator[smtplib.SMTP]:
        context = ssl.create_default_context()  # certificates are checked, as Kestra's mailer does
        if strategy == "SMTPS":
            with smtplib.SMTP_SSL(host, port, timeout=timeout, context=context) as smtp:
                yield smtp
            return
        with smtplib.SMTP(host, port, timeout=timeout) as smtp:
            if strategy == "SMTP_TLS":
                smtp.starttls(context=context)
            yield smtp

    def _message(self, ctx: RunContext) -> tuple[email.message.EmailMessage, list[str]]:
        sender = ctx.render_str(self.from_).strip() if self.from_ else None
        if not sender:
            raise TaskFailure("from is required: the address the email is sent from")
        to, cc = _addresses(ctx.render_str(self.to)), _addresses(ctx.render_str(self.cc)) if self.cc else []
        if not to:
            raise TaskFailure("to names no address")
        message = email.message.EmailMessage()
        message["From"], message["To"] = sender, ", ".join(to)
        if cc:
            message["Cc"] = ", ".join(cc)
        subject, plain, html_text = self._content(ctx)
        message["Subject"] = subject
        message["Date"] = email.utils.formatdate(localtime=False)
        message["Message-ID"] = email.utils.make_msgid()
        message["Disposition-Notification-To"] = sender  # Kestra asks for a return receipt
        message.set_content(plain)
        images = self._files(ctx, self.embeddedImages, "embeddedImages")
        if html_text:
            message.add_alternative(html_text, subtype="html")
            html = cast(email.message.EmailMessage, message.get_payload()[-1])  # type: ignore[index]
            for name, kind, data in images:  # referred to as <img src="cid:NAME">
                main, _, sub = kind.partition("/")
                html.add_related(data, maintype=main, subtype=sub or "octet-stream", cid=f"<{name}>", filename=name)
        elif images:
            raise TaskFailure("embeddedImages need htmlTextContent to refer to them (cid:NAME)")
        for name, kind, data in self._files(ctx, self.attachments, "attachments"):
            main, _, sub = kind.partition("/")
            message.add_attachment(data, maintype=main, subtype=sub or "octet-stream", filename=name)
        return message, to + cc

    def _content(self, ctx: RunContext) -> tuple[str, str, str | None]:
        """The subject, the plain text and the HTML text (None: none), as sent."""
        return (ctx.render_str(self.subject) if self.subject else "",
                ctx.render_str(self.plainTextContent) if self.plainTextContent else DEFAULT_TEXT,
                ctx.render_str(self.htmlTextContent) if self.htmlTextContent else None)

    @staticmethod
    def _files(ctx: RunContext, value: list[Attachment] | str | None, what: str) -> list[tuple[str, str, bytes]]:
        if value is None:
            return []
        items: Any = ctx.render(value) if isinstance(value, str) else [a.model_dump() for a in value]
        if isinstance(items, str):  # `{{ inputs.files | toJson }}`: JSON text of one attachment or a list
            try:
                items = json.loads(items) if items.strip() else []
            except ValueError:
                raise TaskFailure(f"{what} must be a list of {{name, uri, contentType}} or its JSON") from None
        items = [items] if isinstance(items, dict) else items
        found = []
        for item in items:
            try:
                attachment = Attachment(**item)
            except (TypeError, ValueError) as exc:
                raise TaskFailure(f"{what}: each needs a name and a uri: {exc}") from None
            uri = owned_file(ctx, ctx.render_str(attachment.uri))
            with reading(ctx, uri) as stream:
                data = stream.read()
            found.append((ctx.render_str(attachment.name), ctx.render_str(attachment.contentType), data))
        return found


def _addresses(text: str) -> list[str]:
    return [a.strip() for a in text.replace(",", ";").split(";") if a.strip()]


TASKS: list[type[RunnableTask]] = [  # the `notifications` family (pyproject.toml)
    SlackIncomingWebhook, TeamsIncomingWebhook, DiscordIncomingWebhook, GoogleChatIncomingWebhook, MailSend]
