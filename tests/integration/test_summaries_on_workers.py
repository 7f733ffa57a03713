"""An execution-summary notification on real processes: a flow fails on the `gpu` group, `celestra server` starts
the deployed watcher through its Flow trigger, and the watcher's SlackExecution runs on the `onprem` worker, which
reads the failed execution from PostgreSQL and posts the summary to an HTTP server of this test, at a URL holding
a secret resolved on that worker."""

from __future__ import annotations

import http.server
import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from groups_support import (
    HOST,
    SECRET_NAME,
    SECRET_VALUE,
    GroupsCluster,
    fresh_redis_database,
    groups_cluster,
    wait_until,
)

from app.model.states import State

pytestmark = pytest.mark.integration
NS = "celestra.it.summaries"


@pytest.fixture(scope="module")
def groups(postgres_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GroupsCluster]:
    with fresh_redis_database() as broker, groups_cluster(
            broker, postgres_server.create_database(), tmp_path_factory.mktemp("summaries"),
            env_extra={"CELESTRA_PUBLIC_URL": "https://celestra.example.com"}) as cluster:
        yield cluster


@pytest.fixture
def hook() -> Iterator[tuple[str, list[tuple[str, Any]]]]:
    received: list[tuple[str, Any]] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, json.loads(body)))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def test_a_flow_trigger_posts_the_summary_of_a_failed_execution_from_its_group(
        groups: GroupsCluster, hook: tuple[str, list[tuple[str, Any]]]) -> None:
    url, received = hook
    watcher = f"alert_{uuid.uuid4().hex[:6]}"
    path = groups.write_flow(watcher, f"""\
id: {watcher}
namespace: {NS}.ops
tasks:
  - id: alert
    type: io.kestra.plugin.notifications.slack.SlackExecution
    url: "{url}/hook/{{{{ secret('{SECRET_NAME}') }}}}"
    executionId: "{{{{ trigger.executionId }}}}"
    customFields: {{Team: data}}
    workerGroup: {{key: onprem}}
triggers:
  - id: on_failure
    type: io.kestra.plugin.core.trigger.Flow
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionStatus
        in: [FAILED]
      - type: io.kestra.plugin.core.condition.ExecutionNamespace
        namespace: {NS}.prod
""")
    done = groups.celestra("flow", "deploy", path)
    assert done.returncode == 0, done.stdout + done.stderr
    failed = groups.run(f"""\
id: nightly
namespace: {NS}.prod
tasks:
  - id: load
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: planned
    workerGroup: {{key: gpu}}
""")
    assert failed.state == State.FAILED and failed.task_runs[0].worker == f"gpu@{HOST}"
    [(where, payload)] = wait_until(lambda: received or None, 60, "the summary", poll=0.1)
    assert where == f"/hook/{SECRET_VALUE}"
    link = f"https://celestra.example.com/ui/main/executions/{NS}.prod/nightly/{failed.id}"
    assert payload["text"].startswith(f"*<{link}|[{NS}.prod] nightly ➛ FAILED>*\n> Failed on task `load` after ")
    fields = {f["title"]: f["value"] for f in payload["attachments"][0]["fields"]}
    assert (fields["Execution"], fields["Status"], fields["Team"]) == (failed.id, "FAILED", "data")
    [alert] = [ex for ex in groups.client.executions(namespace=f"{NS}.ops") if ex.flow_id == watcher]
    ended = groups.client.wait(alert.id, timeout=60)
    assert ended.state == State.SUCCESS and ended.task_runs[0].worker == f"onprem@{HOST}", ended.to_json()
    assert SECRET_VALUE not in json.dumps(ended.to_json(), default=str)
