"""Polling triggers on the embedded runtime: the server's poller sends an evaluation, the in-process worker asks a
real SQLite file, HTTP server or folder, and a firing starts one execution with Kestra's `{{ trigger.* }}`. One
evaluation at a time, a hung one released by its timeout, a stale answer dropped, conditions and stopAfter
honoured, and what each evaluation found shown by `celestra triggers`.

(The fallback of a group with no live worker needs real workers: tests/integration/test_polling_on_workers.py.)
"""

from __future__ import annotations

import sqlite3
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from http_server import HttpServer

from app import runtime
from app.engine import flow_triggers, trigger_stops
from app.errors import FlowValidationError
from app.model.loader import parse_flow
from app.model.records import now
from app.model.states import State
from app.services import polling
from app.services.polling import Poller
from app.services.scheduler import trigger_states
from app.store.tables import flows, trigger_toggles, triggers
from workers import polling as worker_polling

NS = "unit.polling"


@pytest.fixture(autouse=True)
def _only_this_tests_flows(client: Any) -> Iterator[None]:
    def clear() -> None:
        with runtime.store().begin() as conn:
            for table in (flows, trigger_toggles, triggers):
                conn.execute(table.delete())
        for deployed in (flow_triggers.deployed_flows, trigger_stops.deployed_flows, worker_polling.deployed_flows):
            deployed.forget_listing()

    client.start_embedded()  # the in-process worker that evaluates what the poller sends
    clear()
    yield
    clear()


def flow(trigger: str, task: str = '{id: say, type: io.kestra.plugin.core.debug.Return, format: "{{ trigger }}"}',
         flow_id: str | None = None) -> str:
    return textwrap.dedent(f"""\
        id: {flow_id or "polled_" + uuid.uuid4().hex[:6]}
        namespace: {NS}
        tasks:
          - {task}
        triggers:
        """) + textwrap.indent(textwrap.dedent(trigger), "  ")


def wait_for(check: Callable[[], Any], what: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def state_of(flow_id: str, trigger_id: str = "poll") -> dict[str, Any]:
    return next(s for s in trigger_states(NS) if (s["flow_id"], s["trigger_id"]) == (flow_id, trigger_id))


def evaluated(poller: Poller, flow_id: str, trigger_id: str = "poll", timeout: float = 20) -> dict[str, Any]:
    """Tick until the due evaluation was sent and answered (its trigger no longer due); returns the stored state."""
    def answered() -> dict[str, Any] | None:
        poller.tick()
        state = state_of(flow_id, trigger_id)
        return state if state["evaluation_id"] is None and state["next_date"] > now() else None

    found: dict[str, Any] = wait_for(answered, f"an answered evaluation of {flow_id}", timeout)
    return found


def due_now(flow_id: str, trigger_id: str = "poll") -> None:
    """The next evaluation is due at once (instead of waiting the trigger's interval)."""
    with runtime.store().begin() as conn:
        conn.execute(triggers.update().where(triggers.c.flow_id == flow_id, triggers.c.trigger_id == trigger_id)
                     .values(next_date=now() - timedelta(seconds=1)))


def executions_of(client: Any, flow_id: str) -> list[Any]:
    return [ex for ex in client.executions(namespace=NS, limit=200) if ex.flow_id == flow_id]


@pytest.fixture
def orders(tmp_path: Path) -> Path:
    path = tmp_path / "orders.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT, done INTEGER DEFAULT 0)")
        db.executemany("INSERT INTO orders (item) VALUES (?)", [("apple",), ("pear",)])
    return path


def sql_trigger(path: Path, extra: str = "") -> str:
    return textwrap.dedent(f"""\
        - id: poll
          type: io.kestra.plugin.jdbc.sqlite.Trigger
          url: jdbc:sqlite:{path}
          sql: SELECT id, item FROM orders WHERE done = 0 ORDER BY id
          interval: PT1H
        """) + textwrap.indent(textwrap.dedent(extra), "  ")


# -- the flow model --------------------------------------------------------------------------------------------
def test_a_polling_trigger_loads_with_kestra_properties_and_refuses_what_would_never_fire(orders: Path) -> None:
    loaded = parse_flow(flow(sql_trigger(orders, "fetchType: FETCH_ONE\nworkerGroup: {key: onprem}\n")))
    trigger = loaded.triggers[0]
    assert (trigger.interval, trigger.workerGroup.key, trigger.fetchType) == (timedelta(hours=1), "onprem",
                                                                              "FETCH_ONE")
    with pytest.raises(FlowValidationError, match="fetchType NONE returns no rows"):
        parse_flow(flow(sql_trigger(orders, "fetchType: NONE\n")))
    with pytest.raises(FlowValidationError, match="intervall"):
        parse_flow(flow(sql_trigger(orders, "intervall: PT1S\n")))
    with pytest.raises(FlowValidationError, match="interval must be longer than zero"):
        parse_flow(flow(sql_trigger(orders).replace("PT1H", "PT0S")))
    with pytest.raises(FlowValidationError, match="action MOVE needs moveDirectory"):
        parse_flow(flow("- {id: poll, type: io.kestra.plugin.fs.local.Trigger, from: /tmp, action: MOVE}\n"))


# -- SQL -------------------------------------------------------------------------------------------------------
def test_rows_fire_one_execution_with_trigger_rows_and_no_rows_fire_nothing(client: Any, orders: Path) -> None:
    deployed = client.deploy(flow(sql_trigger(orders, "afterSQL: UPDATE orders SET done = 1\n")))
    poller = Poller()
    poller.tick()  # first sight: the trigger's row is made, due at once
    state = evaluated(poller, deployed["id"])
    assert state["last_result"] == "2 rows", state
    assert state["evaluated_on"], state
    [ex] = wait_for(lambda: executions_of(client, deployed["id"]), "the fired execution")
    ended = client.wait(ex.id, timeout=30)
    assert ended.state == State.SUCCESS, ended.to_json()
    assert ended.trigger["size"] == 2 and [r["item"] for r in ended.trigger["rows"]] == ["apple", "pear"]
    assert state["last_execution_id"] == ex.id
    # afterSQL marked them done: the next evaluation finds nothing and starts nothing.
    due_now(deployed["id"])
    assert evaluated(poller, deployed["id"])["last_result"] == "no rows"
    assert len(executions_of(client, deployed["id"])) == 1


def test_a_query_that_fails_is_a_failed_evaluation_not_a_stuck_trigger(client: Any, tmp_path: Path) -> None:
    deployed = client.deploy(flow(sql_trigger(tmp_path / "nothing.db")))
    poller = Poller()
    poller.tick()
    state = evaluated(poller, deployed["id"])
    assert state["last_result"].startswith("FAILED: SQLite query failed: no such table: orders"), state
    assert state["evaluation_id"] is None and state["next_date"] > now() + timedelta(minutes=59)
    assert executions_of(client, deployed["id"]) == []


# -- one at a time, timeouts, stale answers ---------------------------------------------------------------------
def test_an_evaluation_in_flight_is_not_sent_twice_and_is_released_by_its_timeout(client: Any, orders: Path,
                                                                                   monkeypatch: Any) -> None:
    deployed = client.deploy(flow(sql_trigger(orders)))
    poller = Poller()
    poller.tick()
    sent: list[str] = []
    monkeypatch.setattr(polling.dispatch, "send_evaluation", lambda *args: sent.append(args[3]))  # a lost message
    assert poller.tick() == 1 and poller.tick() == 0, "a trigger is evaluated once at a time"
    assert state_of(deployed["id"])["evaluation_id"] == sent[0]
    timeout = runtime.settings().trigger_evaluation_timeout
    later = now() + timedelta(seconds=timeout) + polling.GRACE + timedelta(seconds=1)
    assert poller.tick(later) == 0
    state = state_of(deployed["id"])
    assert state["evaluation_id"] is None and state["last_result"].startswith("TIMED OUT"), state
    # The lost evaluation's answer, should it come after all, is dropped: no execution, the row untouched.
    assert worker_polling.evaluate(NS, deployed["id"], "poll", sent[0], "late@host") == "stale"
    assert executions_of(client, deployed["id"]) == [] and state_of(deployed["id"])["evaluated_on"] is None


def test_a_hung_evaluation_is_stopped_on_the_worker_at_the_timeout(client: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(runtime.settings(), "trigger_evaluation_timeout", 1.0)
    with HttpServer() as server:
        deployed = client.deploy(flow(f"""\
            - id: poll
              type: io.kestra.plugin.core.http.Trigger
              uri: {server.url}/slow?s=30
              interval: PT1H
            """))
        poller = Poller()
        poller.tick()
        started = time.monotonic()
        state = evaluated(poller, deployed["id"], timeout=15)
    assert state["last_result"] == "TIMED OUT: the evaluation was stopped after 1s", state
    assert time.monotonic() - started < 10
    assert executions_of(client, deployed["id"]) == []


# -- HTTP ------------------------------------------------------------------------------------------------------
def test_the_http_trigger_fires_on_its_response_condition(client: Any) -> None:
    with HttpServer() as server:
        default = client.deploy(flow(f"""\
            - {{id: poll, type: io.kestra.plugin.core.http.Trigger, uri: "{server.url}/status/503", interval: PT1H}}
            """))
        on_503 = client.deploy(flow(f"""\
            - id: poll
              type: io.kestra.plugin.core.http.Trigger
              uri: {server.url}/status/503
              interval: PT1H
              responseCondition: "{{{{ response.statusCode == 503 and response.body == 'status 503' }}}}"
            """))
        poller = Poller()
        poller.tick()
        assert evaluated(poller, default["id"])["last_result"] == "HTTP 503: responseCondition false"
        assert evaluated(poller, on_503["id"])["last_result"] == "HTTP 503"
    [ex] = executions_of(client, on_503["id"])
    ended = client.wait(ex.id, timeout=30)
    assert (ended.trigger["code"], ended.trigger["body"]) == (503, "status 503")
    assert ended.trigger["uri"].endswith("/status/503") and "Content-Length" in ended.trigger["headers"]
    assert executions_of(client, default["id"]) == []


# -- files -----------------------------------------------------------------------------------------------------
def test_the_file_trigger_fires_on_new_and_updated_files_and_moves_them(client: Any, tmp_path: Path,
                                                                        monkeypatch: Any) -> None:
    inbox, archive = tmp_path / "in", tmp_path / "archive"
    inbox.mkdir()
    monkeypatch.setattr(runtime.settings(), "local_files_allowed_paths", [tmp_path])
    watching = client.deploy(flow(f"""\
        - {{id: poll, type: io.kestra.plugin.fs.local.Trigger, from: "{inbox}", regExp: ".*\\\\.csv", interval: PT1H}}
        """))
    moving = client.deploy(flow(f"""\
        - {{id: poll, type: io.kestra.plugin.fs.local.Trigger, from: "{inbox}", action: MOVE,
            moveDirectory: "{archive}", regExp: ".*\\\\.txt", interval: PT1H}}
        """))
    poller = Poller()
    poller.tick()
    assert evaluated(poller, watching["id"])["last_result"] == "no new or updated file"
    (inbox / "a.csv").write_text("1\n")
    (inbox / "notes.txt").write_text("hello")
    due_now(watching["id"])
    assert evaluated(poller, watching["id"])["last_result"] == "1 new or updated file"
    due_now(watching["id"])
    assert evaluated(poller, watching["id"])["last_result"] == "no new or updated file", "seen files do not fire"
    (inbox / "a.csv").write_text("1\n2\n")  # updated
    due_now(watching["id"])
    assert evaluated(poller, watching["id"])["last_result"].startswith("1 new or updated file")
    fired = sorted(executions_of(client, watching["id"]), key=lambda ex: ex.created)
    assert [ex.trigger["files"][0]["name"] for ex in fired] == ["a.csv", "a.csv"]
    assert [ex.trigger["files"][0]["size"] for ex in fired] == [2, 4]
    due_now(moving["id"])
    assert evaluated(poller, moving["id"])["last_result"].startswith("1 new or updated file")
    [moved] = executions_of(client, moving["id"])
    assert moved.trigger["files"][0]["path"] == str(archive / "notes.txt")
    assert (archive / "notes.txt").read_text() == "hello" and not (inbox / "notes.txt").exists()


def test_a_file_trigger_outside_the_allowed_folders_fails_saying_so(client: Any, tmp_path: Path,
                                                                    monkeypatch: Any) -> None:
    monkeypatch.setattr(runtime.settings(), "local_files_allowed_paths", [tmp_path / "allowed"])
    deployed = client.deploy(flow("- {id: poll, type: io.kestra.plugin.fs.local.Trigger, from: /etc, "
                                  "interval: PT1H}\n"))
    poller = Poller()
    poller.tick()
    assert "is outside the folders this worker allows" in evaluated(poller, deployed["id"])["last_result"]


# -- conditions and stopAfter ----------------------------------------------------------------------------------
def test_conditions_false_skip_the_evaluation(client: Any, orders: Path) -> None:
    not_today = ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"][
        (now().weekday() + 1) % 7]
    deployed = client.deploy(flow(sql_trigger(orders, f"""\
        conditions:
          - {{type: io.kestra.plugin.core.condition.DayWeek, dayOfWeek: {not_today}}}
        """)))
    poller = Poller()
    poller.tick()
    poller.tick()
    assert state_of(deployed["id"])["last_result"] == "conditions not met: not evaluated"
    assert executions_of(client, deployed["id"]) == []


def test_stop_after_switches_the_trigger_off_once_an_execution_ends_so(client: Any, orders: Path) -> None:
    deployed = client.deploy(flow(sql_trigger(orders, "stopAfter: [FAILED]\n"),
                                  task="{id: boom, type: io.kestra.plugin.core.execution.Fail}"))
    poller = Poller()
    poller.tick()
    evaluated(poller, deployed["id"])
    [ex] = wait_for(lambda: executions_of(client, deployed["id"]), "the fired execution")
    assert client.wait(ex.id, timeout=30).state == State.FAILED
    with runtime.store().reads() as conn:
        toggled = conn.execute(sa.select(trigger_toggles.c.disabled).where(
            trigger_toggles.c.flow_id == deployed["id"])).scalar()
    assert toggled is True
    due_now(deployed["id"])
    assert poller.tick() == 0, "a trigger switched off is not evaluated"


def test_celestra_triggers_shows_the_last_result_and_where_it_ran(client: Any, orders: Path) -> None:
    from typer.testing import CliRunner

    from app.cli import cli

    deployed = client.deploy(flow(sql_trigger(orders)))
    poller = Poller()
    poller.tick()
    state = evaluated(poller, deployed["id"])
    shown = CliRunner().invoke(cli, ["triggers", "--namespace", NS, "--json"])
    assert shown.exit_code == 0, shown.output
    assert '"last_result": "2 rows"' in shown.output and state["evaluated_on"] in shown.output


def test_a_disabled_trigger_or_flow_is_not_evaluated(client: Any, orders: Path) -> None:
    off = client.deploy(flow(sql_trigger(orders, "disabled: true\n")))
    poller = Poller()
    poller.tick()
    assert poller.tick() == 0 and state_of(off["id"])["last_evaluated"] is None
    assert executions_of(client, off["id"]) == []


def test_the_sql_trigger_binds_parameters_and_stores_rows_in_the_execution_files(client: Any, orders: Path) -> None:
    deployed = client.deploy(flow(f"""\
        - id: poll
          type: io.kestra.plugin.jdbc.sqlite.Trigger
          url: jdbc:sqlite:{orders}
          sql: SELECT id, item, '2026-01-01 10:00:00' AS at FROM orders WHERE item = :item
          parameters: {{item: "pear' OR '1'='1"}}
          fetchType: STORE
          fetchSize: 1
          timeZoneId: Europe/Paris
          interval: PT1H
        """, task='{id: read, type: io.kestra.plugin.core.debug.Return, format: "{{ read(trigger.uri) }}"}'))
    poller = Poller()
    poller.tick()
    assert evaluated(poller, deployed["id"])["last_result"] == "no rows", "a parameter is bound, never formatted"
    with sqlite3.connect(orders) as db:
        db.execute("INSERT INTO orders (item) VALUES (?)", ("pear' OR '1'='1",))
    due_now(deployed["id"])
    assert evaluated(poller, deployed["id"])["last_result"] == "1 row"
    [ex] = executions_of(client, deployed["id"])
    ended = client.wait(ex.id, timeout=30)
    assert ended.state == State.SUCCESS and ended.trigger["size"] == 1
    assert f"/executions/{ex.id}/trigger/poll/" in ended.trigger["uri"], "stored with the execution it started"
    assert "pear' OR '1'='1" in ended.task_runs[0].outputs["value"]


def test_the_duckdb_trigger_fires_on_a_duckdb_file(client: Any, tmp_path: Path) -> None:
    import duckdb  # the dev extra installs it: a missing driver fails, never skips
    path = tmp_path / "events.duckdb"
    with duckdb.connect(str(path)) as db:
        db.execute("CREATE TABLE events AS SELECT 42 AS answer")
    deployed = client.deploy(flow(f"""\
        - {{id: poll, type: io.kestra.plugin.jdbc.duckdb.Trigger, url: "jdbc:duckdb:{path}",
            sql: "SELECT answer FROM events", fetchType: FETCH_ONE, interval: PT1H}}
        """))
    poller = Poller()
    poller.tick()
    assert evaluated(poller, deployed["id"])["last_result"] == "1 row"
    [ex] = executions_of(client, deployed["id"])
    assert ex.trigger["row"] == {"answer": 42}


def test_the_http_trigger_sends_its_request_as_the_request_task_does(client: Any) -> None:
    with HttpServer() as server:
        posted = client.deploy(flow(f"""\
            - id: poll
              type: io.kestra.plugin.core.http.Trigger
              uri: {server.url}/echo
              method: POST
              headers: {{X-Team: "{{{{ flow.namespace }}}}"}}
              body: '{{"hello": "world"}}'
              contentType: application/json
              options: {{auth: {{type: BASIC, username: me, password: pw}}, allowFailed: false}}
              responseCondition: "{{{{ response.body | jq('.body') | first == '{{\\"hello\\": \\"world\\"}}' }}}}"
              interval: PT1H
            """))
        form = client.deploy(flow(f"""\
            - id: poll
              type: io.kestra.plugin.core.http.Trigger
              uri: {server.url}/echo
              method: POST
              contentType: application/x-www-form-urlencoded
              formData: {{name: celestra}}
              responseCondition: "{{{{ (response.body | jq('.form.name') | first) == 'celestra' }}}}"
              interval: PT1H
            """))
        poller = Poller()
        poller.tick()
        assert evaluated(poller, posted["id"])["last_result"] == "HTTP 200"
        assert evaluated(poller, form["id"])["last_result"] == "HTTP 200"
        method, _, headers = next(r for r in server.requests if r[2].get("X-Team"))
    assert method == "POST" and headers["X-Team"] == NS and headers["Authorization"].startswith("Basic ")
