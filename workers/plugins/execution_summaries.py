"""Kestra's execution-summary notifications: SlackExecution, TeamsExecution, DiscordExecution, GoogleChatExecution
and MailExecution tell what became of an execution: its namespace, flow, id and state, when it started, how long it
ran, the task it failed on, a link to it (when `public_url` is set), and the task's `customMessage` and
`customFields`. The execution is the current one unless `executionId` names another; in a flow started by a Flow
trigger that is `executionId: "{{ trigger.executionId }}"`, the use Kestra documents.

A task reads only its own execution, an execution of its own namespace, or the one whose end started its execution
(the Flow trigger's `trigger.executionId`): a summary never shows another team's executions. Another execution is
read once it has ended (or is in the state its Flow trigger saw), waiting for it as Kestra does (1 s, doubling up to
15 s, for at most 10 minutes); the current one is read as it is, running.

The message is built here, not rendered from a template: only customMessage, customFields and the channel's own
properties are rendered, once, so nothing an execution produced (an output, an error) is ever run as a template.
"""

from __future__ import annotations

import html
import json
import time
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app import runtime
from app.model.records import Execution, iso, now
from app.model.states import State
from workers.plugin_api import RunContext, RunnableTask, TaskFailure, TaskKilled
from workers.plugins.notifications import MailSend, WebhookOptions, post

WAIT_FOR = 600.0  # seconds another execution may take to reach the state the summary is about
COLORS = {State.SUCCESS: ("good", "2EB67D"), State.WARNING: ("warning", "ECB22E")}  # Slack's name, the hex
DANGER = ("danger", "E01E5A")


@dataclass(frozen=True)
class Summary:
    execution: Execution
    link: str | None
    duration: str  # as Kestra prints it: H:mm:ss.SSS
    failed_task: str | None  # the last task run that FAILED (Kestra's `firstFailed.taskId`)
    message: str | None  # customMessage, rendered
    fields: dict[str, str]  # customFields, rendered, as text

    @property
    def title(self) -> str:
        ex = self.execution
        return f"[{ex.namespace}] {ex.flow_id} ➛ {ex.state.value}"

    @property
    def outcome(self) -> str:
        if self.failed_task is not None:
            said = f"Failed on task `{self.failed_task}`"
        else:
            said = "Succeeded" if self.execution.state == State.SUCCESS else self.execution.state.value.capitalize()
        return f"{said} after {self.duration}"

    @property
    def facts(self) -> list[tuple[str, str]]:
        ex = self.execution
        return [("Namespace", ex.namespace), ("Flow", ex.flow_id), ("Execution", ex.id),
                ("Status", ex.state.value), *self.fields.items()]

    @property
    def color(self) -> tuple[str, str]:
        return COLORS.get(self.execution.state, DANGER)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _duration(seconds: float) -> str:
    millis = int(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


class _Summarized(RunnableTask):
    executionId: str = "{{ execution.id }}"
    customMessage: str | None = None
    customFields: dict[str, Any] | str | None = None

    def summary(self, ctx: RunContext) -> Summary:
        ex = self._execution(ctx, ctx.render_str(self.executionId).strip())
        fields = ctx.render(self.customFields) if self.customFields is not None else {}
        if not isinstance(fields, dict):
            raise TaskFailure(f"customFields must be a map of names to values, got {_text(fields)[:200]}")
        failed = [run.task_id for run in ex.task_runs if run.state == State.FAILED]
        start = ex.started or ex.created
        return Summary(
            ex, runtime.settings().execution_url(ex.namespace, ex.flow_id, ex.id),
            _duration(((ex.ended or now()) - start).total_seconds()), failed[-1] if failed else None,
            ctx.render_str(self.customMessage) if self.customMessage is not None else None,
            {str(name): _text(value) for name, value in fields.items()})

    @staticmethod
    def _execution(ctx: RunContext, execution_id: str) -> Execution:
        if ctx.executions is None:
            raise TaskFailure("This worker has no store to read executions from")
        current = ctx.variables["execution"]["id"]
        trigger = ctx.variables.get("trigger") or {}
        triggering = trigger.get("executionId") == execution_id
        seen = trigger.get("state") if triggering else None  # the state the Flow trigger fired on
        delay, deadline = 1.0, time.monotonic() + WAIT_FOR
        while True:
            ex = ctx.executions.execution(execution_id)
            if ex is None or not (ex.namespace == ctx.namespace or execution_id == current or triggering):
                raise TaskFailure(f"Unable to find execution '{execution_id}' (a task reads only executions of its "
                                  f"own namespace '{ctx.namespace}', or the one that triggered its execution)")
            if execution_id == current or ex.state.terminal or seen in ("RUNNING", ex.state.value):
                return ex
            if time.monotonic() > deadline:
                raise TaskFailure(f"Execution '{execution_id}' is still {ex.state.value} after {WAIT_FOR:.0f} s")
            if ctx.sleep(delay):
                raise TaskKilled("killed while waiting for the execution to end")
            delay = min(delay * 2, 15.0)


class _Webhook(_Summarized):
    url: str
    options: WebhookOptions | None = None

    def run(self, ctx: RunContext) -> dict[str, Any]:
        post(ctx, self.url, self.payload(ctx, self.summary(ctx)), self.options)
        return {}

    def payload(self, ctx: RunContext, s: Summary) -> dict[str, Any]:
        raise NotImplementedError


class SlackExecution(_Webhook):
    """Slack's message: a headline linking to the execution, a section for customMessage, and an attachment with
    the facts and customFields, colored by state; `messageText` replaces the notification's text line."""

    type: Literal["io.kestra.plugin.notifications.slack.SlackExecution", "io.kestra.plugin.slack.SlackExecution",
                  "io.kestra.plugin.slack.notifications.SlackExecution", "SlackExecution"]
    channel: str | None = None
    username: str | None = None
    iconUrl: str | None = None
    iconEmoji: str | None = None
    messageText: str | None = None

    def payload(self, ctx: RunContext, s: Summary) -> dict[str, Any]:
        headline = f"*<{s.link}|{s.title}>*" if s.link else f"*{s.title}*"
        text = f"{headline}\n> {s.outcome}"
        section: dict[str, Any] = {"type": "section", "text": {"type": "mrkdwn", "text": text}}
        if s.link:
            section["accessory"] = {"type": "button", "text": {"type": "plain_text", "text": "Details"}, "url": s.link}
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": s.message}}] if s.message else []
        start = s.execution.started or s.execution.created
        payload: dict[str, Any] = {
            "text": ctx.render_str(self.messageText) if self.messageText is not None else text,
            "blocks": [*blocks, section],
            "attachments": [{"color": s.color[0], "ts": int(start.timestamp()), "fields": [
                {"title": "Job" if name == "Flow" else name, "value": value, "short": True}
                for name, value in s.facts]}]}
        for name, key in (("channel", "channel"), ("username", "username"), ("iconUrl", "icon_url"),
                          ("iconEmoji", "icon_emoji")):
            if getattr(self, name) is not None:
                payload[key] = ctx.render_str(getattr(self, name))
        return payload


class TeamsExecution(_Webhook):
    """A Microsoft Teams MessageCard: the facts and customFields, customMessage as its text, a Details button."""

    type: Literal["io.kestra.plugin.notifications.teams.TeamsExecution", "TeamsExecution"]
    themeColor: str = "0076D7"
    activityTitle: str | None = None
    activitySubtitle: str | None = None

    def payload(self, ctx: RunContext, s: Summary) -> dict[str, Any]:
        section: dict[str, Any] = {"facts": [{"name": "Job" if name == "Flow" else name, "value": value}
                                             for name, value in s.facts], "markdown": True}
        for name in ("activityTitle", "activitySubtitle"):
            if getattr(self, name) is not None:
                section[name] = ctx.render_str(getattr(self, name))
        if s.message:
            section["text"] = s.message
        card: dict[str, Any] = {"@type": "MessageCard", "@context": "http://schema.org/extensions",
                                "themeColor": ctx.render_str(self.themeColor).strip(),
                                "summary": f"{s.title}: {s.outcome}", "title": s.title, "sections": [section]}
        if s.link:
            card["potentialAction"] = [{"@type": "OpenUri", "name": "Details",
                                        "targets": [{"os": "default", "uri": s.link}]}]
        return card


class Embed(BaseModel):
    """One more Discord embed, after the summary's."""

    model_config = ConfigDict(extra="forbid")
    title: str | None = None
    websiteUrl: str | None = None
    description: str | None = None
    thumbnail: str | None = None
    authorName: str | None = None
    color: list[int] | None = Field(None, min_length=3, max_length=3)  # [red, green, blue], 0 to 255
    footer: str | None = None


class DiscordExecution(_Webhook):
    """A Discord message: an embed with the facts (customMessage first, customFields as fields), then `embedList`."""

    type: Literal["io.kestra.plugin.notifications.discord.DiscordExecution", "DiscordExecution"]
    username: str | None = None
    avatarUrl: str | None = None
    content: str | None = None
    embedList: list[Embed] = Field(default_factory=list)

    def payload(self, ctx: RunContext, s: Summary) -> dict[str, Any]:
        ex = s.execution
        lines = [f"Namespace: {ex.namespace}", f"Flow ID: {ex.flow_id}", f"Execution ID: {ex.id}",
                 f"Execution Status: {ex.state.value}"]
        summary: dict[str, Any] = {
            "title": s.title, "description": "\n".join([s.message, ""] + lines if s.message else lines),
            "color": int(s.color[1], 16), "footer": {"text": s.outcome}, "timestamp": iso(ex.started or ex.created),
            "fields": [{"name": name, "value": value, "inline": True} for name, value in s.fields.items()]}
        if s.link:
            summary["url"] = s.link
        payload: dict[str, Any] = {"tts": False, "embeds": [summary, *(self._embed(ctx, e) for e in self.embedList)]}
        for name, key in (("username", "username"), ("avatarUrl", "avatar_url"), ("content", "content")):
            if getattr(self, name) is not None:
                payload[key] = ctx.render_str(getattr(self, name))
        return payload

    def _embed(self, ctx: RunContext, embed: Embed) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, key in (("title", "title"), ("description", "description"), ("websiteUrl", "url")):
            if getattr(embed, name) is not None:
                out[key] = ctx.render_str(getattr(embed, name))
        if embed.thumbnail is not None:
            out["thumbnail"] = {"url": ctx.render_str(embed.thumbnail)}
        if embed.authorName is not None:
            author = {"name": ctx.render_str(embed.authorName)}
            if embed.websiteUrl is not None:
                author["url"] = out["url"]
            if self.avatarUrl is not None:
                author["icon_url"] = ctx.render_str(self.avatarUrl)
            out["author"] = author
        if embed.color is not None:
            red, green, blue = (min(max(part, 0), 255) for part in embed.color)
            out["color"] = (red << 16) + (green << 8) + blue
        if embed.footer is not None:
            out["footer"] = {"text": ctx.render_str(embed.footer)}
        return out


class GoogleChatExecution(_Webhook):
    """A Google Chat text message; `text`, when given, replaces the summary's text (as in Kestra)."""

    type: Literal["io.kestra.plugin.notifications.google.GoogleChatExecution", "GoogleChatExecution"]
    text: str | None = None

    def payload(self, ctx: RunContext, s: Summary) -> dict[str, Any]:
        if self.text is not None:
            return {"text": ctx.render_str(self.text)}
        headline = f"*<{s.link}|{s.title}>*" if s.link else f"*{s.title}*"
        lines = [headline, s.outcome, *([s.message] if s.message else []),
                 *(f"{name}: {value}" for name, value in s.facts)]
        return {"text": "\n".join(lines)}


def _written_here(name: str) -> AfterValidator:
    def refuse(value: Any) -> Any:
        if value is not None:
            raise ValueError(f"MailExecution writes the {name} itself: put your words in customMessage")
        return value

    return AfterValidator(refuse)


class MailExecution(MailSend, _Summarized):
    """MailSend with the summary as its body (HTML and plain text); the subject defaults to the summary's title."""

    type: Literal["io.kestra.plugin.notifications.mail.MailExecution",  # type: ignore[assignment]
                  "io.kestra.plugin.email.MailExecution", "MailExecution"]
    htmlTextContent: Annotated[str | None, _written_here("HTML text")] = None
    plainTextContent: Annotated[str | None, _written_here("plain text")] = None

    def _content(self, ctx: RunContext) -> tuple[str, str, str | None]:
        s = self.summary(ctx)
        rows = [*s.facts, ("Started", iso(s.execution.started or s.execution.created) or ""), ("Duration", s.duration)]
        if s.failed_task is not None:
            rows.append(("Failed task", s.failed_task))
        plain = "\n".join([s.title, s.outcome, *([s.message] if s.message else []), "",
                           *(f"{name}: {value}" for name, value in rows), *([s.link] if s.link else [])])
        table = "".join(f"<tr><th align=\"left\">{html.escape(name)}</th><td>{html.escape(value)}</td></tr>"
                        for name, value in rows)
        title = html.escape(s.title)
        if s.link:
            title = f'<a href="{html.escape(s.link)}">{title}</a>'
        message = f"<p>{html.escape(s.message)}</p>" if s.message else ""
        body = f"<h2>{title}</h2><p>{html.escape(s.outcome)}</p>{message}<table>{table}</table>"
        subject = ctx.render_str(self.subject) if self.subject else s.title
        return subject, plain, f"<!DOCTYPE html><html><body>{body}</body></html>"


TASKS: list[type[RunnableTask]] = [  # the `notification_summaries` family (pyproject.toml)
    SlackExecution, TeamsExecution, DiscordExecution, GoogleChatExecution, MailExecution]
