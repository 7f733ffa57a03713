"""The execution-summary notifications (workers/plugins/execution_summaries.py) as real flows: what they POST to
the real HTTP server of tests/unit/http_server.py and what MailExecution sends through a real SMTP server, about
the current execution, about the one whose end started a Flow trigger, and about one still running."""

from __future__ import annotations

import email
import email.policy
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from http_server import HttpServer
from smtp_server import smtp_server

from app import runtime
from app.engine import flow_triggers
from app.errors import FlowValidationError
from app.model.states import State
from app.store.tables import flows

NS = "notify.summaries"
SLACK = "io.kestra.plugin.notifications.slack.SlackExecution"
PUBLIC = "https://celestra.example.com"


@pytest.fixture(scope="module")
def server() -> Iterator[HttpServer]:
    with HttpServer() as running:
        yield running


@pytest.fixture(autouse=True)
def _public_url(client: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(runtime.settings(), "public_url", PUBLIC + "/")
    yield
    with runtime.store().begin() as conn:  # a deployed watcher would react to later tests' executions
        conn.execute(flows.delete())
    flow_triggers.deployed_flows.forget_listing()


def flow(*tasks: dict[str, Any], namespace: str = NS, flow_id: str = "work", **extra: Any) -> str:
    return yaml.safe_dump({"id": flow_id, "namespace": namespace, "tasks": list(tasks), **extra}, sort_keys=False)


def posted(server: HttpServer) -> list[dict[str, Any]]:
    return [json.loads(body) for path, body in server.bodies if path == "/hook"]


def test_slack_execution_summarizes_the_failed_execution_that_started_its_flow(client: Any,
                                                                               server: HttpServer) -> None:
    server.bodies.clear()
    upstream = flow({"id": "step", "type": "io.kestra.plugin.core.debug.Return", "format": "ok"},
                    {"id": "boom", "type": "io.kestra.plugin.core.execution.Fail", "errorMessage": "planned"},
                    flow_id=f"nightly_{uuid.uuid4().hex[:6]}", namespace=f"{NS}.prod")
    watcher = flow({"id": "alert", "type": SLACK, "url": server.url + "/hook",
                    "executionId": "{{ trigger.executionId }}", "channel": "#alerts", "username": "Celestra",
                    "iconEmoji": ":rotating_light:", "iconUrl": "https://example.com/i.png",
                    "customMessage": "Nightly load of {{ trigger.flowId }} needs a look",
                    "customFields": {"Owner": "data-team", "Attempts": "{{ 1 + 1 }}"}},
                   flow_id="failure_alert",
                   triggers=[{"id": "on_failure", "type": "io.kestra.plugin.core.trigger.Flow", "conditions": [
                       {"type": "io.kestra.plugin.core.condition.ExecutionStatus", "in": ["FAILED", "WARNING"]},
                       {"type": "io.kestra.plugin.core.condition.ExecutionNamespace", "namespace": f"{NS}.prod",
                        "prefix": True}]}])
    client.deploy(watcher)
    failed = client.run(upstream)
    assert failed.state == State.FAILED
    deadline = time.monotonic() + 30
    while not posted(server):
        assert time.monotonic() < deadline, "the watcher never posted"
        time.sleep(0.05)
    [alert] = [client.wait(ex.id, timeout=30) for ex in client.executions(namespace=NS, flow_id="failure_alert")]
    assert alert.state == State.SUCCESS, alert.to_json()
    [payload] = posted(server)
    link = f"{PUBLIC}/ui/main/executions/{NS}.prod/{failed.flow_id}/{failed.id}"
    title = f"[{NS}.prod] {failed.flow_id} ➛ FAILED"
    assert payload["text"].startswith(f"*<{link}|{title}>*\n> Failed on task `boom` after 0:00:0")
    assert payload["blocks"][0] == {"type": "section", "text": {
        "type": "mrkdwn", "text": f"Nightly load of {failed.flow_id} needs a look"}}
    assert payload["blocks"][1]["accessory"]["url"] == link
    [attachment] = payload["attachments"]
    assert attachment["color"] == "danger"
    assert attachment["ts"] == int((failed.started or failed.created).timestamp())
    assert {f["title"]: f["value"] for f in attachment["fields"]} == {
        "Namespace": f"{NS}.prod", "Job": failed.flow_id, "Execution": failed.id, "Status": "FAILED",
        "Owner": "data-team", "Attempts": "2"}
    assert (payload["channel"], payload["username"], payload["icon_emoji"], payload["icon_url"]) == (
        "#alerts", "Celestra", ":rotating_light:", "https://example.com/i.png")


def test_each_channel_summarizes_the_current_execution(client: Any, server: HttpServer,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime.settings(), "public_url", None)  # no link then
    server.bodies.clear()
    hook = {"url": server.url + "/hook", "customMessage": "from {{ flow.id }}", "customFields": {"Rows": 42}}
    ex = client.run(flow(
        {"id": "first", "type": "io.kestra.plugin.core.debug.Return", "format": "x"},
        {"id": "slack", "type": "io.kestra.plugin.slack.SlackExecution", "messageText": "short", **hook},
        {"id": "teams", "type": "io.kestra.plugin.notifications.teams.TeamsExecution", "themeColor": "FF0000",
         "activityTitle": "Run of {{ flow.id }}", "activitySubtitle": "sub", **hook},
        {"id": "discord", "type": "io.kestra.plugin.notifications.discord.DiscordExecution", "username": "bot",
         "avatarUrl": "https://example.com/a.png", "content": "hello",
         "embedList": [{"title": "More", "websiteUrl": "https://example.com", "description": "d",
                        "thumbnail": "https://example.com/t.png", "authorName": "ada", "color": [255, 0, 16],
                        "footer": "f"}], **hook},
        {"id": "chat", "type": "io.kestra.plugin.notifications.google.GoogleChatExecution", **hook},
        {"id": "chat_text", "type": "io.kestra.plugin.notifications.google.GoogleChatExecution",
         "text": "only {{ flow.id }}", "url": server.url + "/hook"}), timeout=60)
    assert ex.state == State.SUCCESS, ex.to_json()
    slack, teams, discord, chat, chat_text = posted(server)
    title = f"[{NS}] work ➛ RUNNING"
    assert slack["text"] == "short" and "accessory" not in slack["blocks"][1]
    assert slack["blocks"][1]["text"]["text"].startswith(f"*{title}*\n> Running after 0:00:0")
    assert teams["@type"] == "MessageCard" and teams["themeColor"] == "FF0000" and teams["title"] == title
    [section] = teams["sections"]
    assert (section["activityTitle"], section["activitySubtitle"], section["text"]) == ("Run of work", "sub",
                                                                                        "from work")
    assert {f["name"]: f["value"] for f in section["facts"]} == {
        "Namespace": NS, "Job": "work", "Execution": ex.id, "Status": "RUNNING", "Rows": "42"}
    assert "potentialAction" not in teams
    assert (discord["username"], discord["avatar_url"], discord["content"], discord["tts"]) == (
        "bot", "https://example.com/a.png", "hello", False)
    summary, more = discord["embeds"]
    assert summary["title"] == title and summary["description"] == (
        f"from work\n\nNamespace: {NS}\nFlow ID: work\nExecution ID: {ex.id}\nExecution Status: RUNNING")
    assert summary["fields"] == [{"name": "Rows", "value": "42", "inline": True}]
    assert summary["footer"]["text"].startswith("Running after ")
    assert more == {"title": "More", "description": "d", "url": "https://example.com",
                    "thumbnail": {"url": "https://example.com/t.png"},
                    "author": {"name": "ada", "url": "https://example.com", "icon_url": "https://example.com/a.png"},
                    "color": (255 << 16) + 16, "footer": {"text": "f"}}
    assert chat["text"].split("\n")[:3] == [f"*{title}*", chat["text"].split("\n")[1], "from work"]
    assert f"Execution: {ex.id}" in chat["text"] and "Rows: 42" in chat["text"]
    assert chat_text == {"text": "only work"}


def test_a_summary_of_a_running_execution_waits_for_its_end(client: Any, server: HttpServer) -> None:
    server.bodies.clear()
    slow = client.run(flow({"id": "nap", "type": "io.kestra.plugin.core.flow.Sleep", "duration": "PT2S"},
                           flow_id="slow"), wait=False)
    ex = client.run(flow({"id": "tell", "type": SLACK, "url": server.url + "/hook", "executionId": slow.id}),
                    timeout=60)
    assert ex.state == State.SUCCESS, ex.to_json()
    [payload] = posted(server)
    assert f"[{NS}] slow ➛ SUCCESS" in payload["text"] and "Succeeded after 0:00:02." in payload["text"]
    assert payload["attachments"][0]["color"] == "good"


def test_a_summary_reads_only_executions_it_may(client: Any, server: HttpServer) -> None:
    other = client.run(flow({"id": "x", "type": "io.kestra.plugin.core.debug.Return", "format": "x"},
                            namespace="another.team"))
    for execution_id in (other.id, "noSuchExecution"):
        ex = client.run(flow({"id": "tell", "type": SLACK, "url": server.url + "/hook",
                              "executionId": execution_id}), timeout=60)
        assert ex.state == State.FAILED
        assert f"Unable to find execution '{execution_id}'" in str(ex.task_runs[0].error)
    ex = client.run(flow({"id": "tell", "type": SLACK, "url": server.url + "/hook", "customFields": "[1]"}))
    assert "customFields must be a map" in str(ex.task_runs[0].error)


def test_mail_execution_sends_the_summary_as_html_and_text(client: Any) -> None:
    with smtp_server() as smtp:
        ex = client.run(flow(
            {"id": "first", "type": "io.kestra.plugin.core.debug.Return", "format": "x"},
            {"id": "mail", "type": "io.kestra.plugin.email.MailExecution", "host": "127.0.0.1", "port": smtp.port,
             "transportStrategy": "SMTP", "from": "celestra@example.com", "to": "ops@example.com",
             "customMessage": "<b>look</b>", "customFields": {"Team": "data"}}), timeout=60)
    assert ex.state == State.SUCCESS, ex.to_json()
    message = email.message_from_bytes(smtp.messages[0].original_content, policy=email.policy.default)
    title = f"[{NS}] work ➛ RUNNING"
    assert message["Subject"] == title
    link = f"{PUBLIC}/ui/main/executions/{NS}/work/{ex.id}"
    html = message.get_body(("html",)).get_content()
    assert f'<a href="{link}">[{NS}] work ➛ RUNNING</a>' in html and "&lt;b&gt;look&lt;/b&gt;" in html
    assert "<th align=\"left\">Team</th><td>data</td>" in html
    plain = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert plain.startswith(f"{title}\nRunning after ") and f"Execution: {ex.id}" in plain and link in plain


def test_mail_execution_writes_its_own_body_and_slack_takes_one_message(client: Any) -> None:
    mail = {"id": "mail", "type": "io.kestra.plugin.notifications.mail.MailExecution", "host": "h",
            "from": "a@example.com", "to": "b@example.com", "htmlTextContent": "<p>mine</p>"}
    with pytest.raises(FlowValidationError, match="MailExecution writes the HTML text itself"):
        client.run(flow(mail))
    del mail["htmlTextContent"]
    with pytest.raises(FlowValidationError, match="MailExecution writes the plain text itself"):
        client.run(flow({**mail, "plainTextContent": "mine"}))
    hook = {"id": "hook", "type": "io.kestra.plugin.slack.SlackIncomingWebhook", "url": "http://127.0.0.1:1/"}
    with pytest.raises(FlowValidationError, match="give payload or messageText, not both"):
        client.run(flow({**hook, "payload": "{}", "messageText": "hi"}))


def test_slack_message_text_is_slacks_text(client: Any, server: HttpServer) -> None:
    server.bodies.clear()
    ex = client.run(flow({"id": "hook", "type": "io.kestra.plugin.slack.notifications.SlackIncomingWebhook",
                          "url": server.url + "/hook", "messageText": "Hello from *{{ flow.id }}* & <you>"}))
    assert ex.state == State.SUCCESS, ex.to_json()
    assert posted(server) == [{"text": "Hello from *work* & <you>"}]
