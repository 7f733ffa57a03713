"""Polling triggers on real processes: `celestra server` decides when each is due and a Celery worker of the
trigger's group evaluates it against the machine's PostgreSQL and MariaDB (or a local HTTP server). Where each
evaluation ran is read from the trigger's stored state (`evaluated_on`, the Celery node name), as `celestra
triggers` shows it. A group with no live worker follows the trigger's fallback; an evaluation that hangs is stopped
by its timeout, and one whose worker is killed is released by the server.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
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
NS = "celestra.it.polling"
MARIADB = "mysql+pymysql://root@127.0.0.1:3306/"
EVALUATION_TIMEOUT = 3.0


@pytest.fixture(scope="module")
def groups(postgres_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GroupsCluster]:
    with fresh_redis_database() as broker, groups_cluster(
            broker, postgres_server.create_database(), tmp_path_factory.mktemp("polling"),
            env_extra={"CELESTRA_TRIGGER_EVALUATION_TIMEOUT": str(EVALUATION_TIMEOUT)}) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def orders_db(postgres_server: Any) -> Iterator[tuple[str, sa.Engine]]:
    """A PostgreSQL database of its own with an `orders` table; (jdbc url without user, engine)."""
    url = sa.engine.make_url(postgres_server.create_database("celestra_poll"))
    engine = sa.create_engine(url.set(drivername="postgresql+psycopg"))
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE orders (id serial PRIMARY KEY, item text, done boolean DEFAULT false)")
    yield f"jdbc:postgresql://{url.host}:{url.port or 5432}/{url.database}", engine
    engine.dispose()


def deploy(groups: GroupsCluster, trigger: str, task: str | None = None) -> str:
    flow_id = f"polled_{uuid.uuid4().hex[:8]}"
    task = task or '{id: say, type: io.kestra.plugin.core.debug.Return, format: "{{ trigger }}"}'
    path = groups.write_flow(flow_id, f"id: {flow_id}\nnamespace: {NS}\ntasks:\n  - {task}\ntriggers:\n{trigger}")
    done = groups.celestra("flow", "deploy", path)
    assert done.returncode == 0, done.stdout + done.stderr
    return flow_id


def trigger_state(groups: GroupsCluster, flow_id: str, trigger_id: str = "poll") -> dict[str, Any] | None:
    shown = groups.celestra("triggers", "--namespace", NS, "--json", timeout=60)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    return next((s for s in json.loads(shown.stdout) if (s["flow_id"], s["trigger_id"]) == (flow_id, trigger_id)),
                None)


def result_of(groups: GroupsCluster, flow_id: str, wanted: str, trigger_id: str = "poll",
              timeout: float = 60) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        groups.check_alive()
        state = trigger_state(groups, flow_id, trigger_id)
        return state if state and (state["last_result"] or "").startswith(wanted) else None

    state: dict[str, Any] = wait_until(found, timeout, f"trigger {flow_id}.{trigger_id}: {wanted}", poll=0.3,
                                       on_timeout=lambda: f"{trigger_state(groups, flow_id, trigger_id)}\n"
                                                          f"{groups.describe()}")
    return state


def executions_of(groups: GroupsCluster, flow_id: str) -> list[Any]:
    return [ex for ex in groups.client.executions(namespace=NS, limit=100) if ex.flow_id == flow_id]


def test_a_postgres_trigger_is_evaluated_on_its_group_with_its_secret_resolved_there(
        groups: GroupsCluster, orders_db: tuple[str, sa.Engine]) -> None:
    url, engine = orders_db
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO orders (item) VALUES ('apple'), ('pear')")
    flow_id = deploy(groups, f"""\
  - id: poll
    type: io.kestra.plugin.jdbc.postgresql.Trigger
    url: {url}
    username: postgres
    password: "{{{{ secret('{SECRET_NAME}') }}}}"
    sql: SELECT id, item FROM orders WHERE NOT done ORDER BY id
    afterSQL: UPDATE orders SET done = true
    interval: PT1S
    workerGroup: {{key: gpu}}
""")
    [ex] = wait_until(lambda: executions_of(groups, flow_id), 30, "the fired execution")
    ended = groups.client.wait(ex.id, timeout=60)
    assert ended.state == State.SUCCESS, ended.to_json()
    assert [row["item"] for row in ended.trigger["rows"]] == ["apple", "pear"] and ended.trigger["size"] == 2
    # afterSQL marked them: later evaluations (each second) find nothing and start nothing.
    state = result_of(groups, flow_id, "no rows")
    assert state["evaluated_on"] == f"gpu@{HOST}" and state["last_execution_id"] == ex.id, state
    assert len(executions_of(groups, flow_id)) == 1
    shown = groups.celestra("triggers", "--namespace", NS)
    assert flow_id in shown.stdout and f"gpu@{HOST}" in shown.stdout, shown.stdout
    stored = json.dumps(trigger_state(groups, flow_id), default=str)
    assert SECRET_VALUE not in stored and SECRET_VALUE not in json.dumps(ended.to_json(), default=str)


def test_mariadb_and_mysql_triggers_fire_on_the_machines_mariadb(groups: GroupsCluster) -> None:
    name = f"celestra_poll_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(MARIADB)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
        conn.exec_driver_sql(f"CREATE TABLE {name}.events (id int PRIMARY KEY, kind varchar(20))")
        conn.exec_driver_sql(f"INSERT INTO {name}.events VALUES (1, 'signup')")
    try:
        flow_id = deploy(groups, "".join(f"""\
  - id: {kind}
    type: io.kestra.plugin.jdbc.{kind}.Trigger
    url: jdbc:{kind}://127.0.0.1:3306/{name}
    username: root
    sql: SELECT id, kind FROM events
    fetchType: FETCH_ONE
    interval: PT1H
""" for kind in ("mariadb", "mysql")))
        for kind in ("mariadb", "mysql"):
            assert result_of(groups, flow_id, "1 row", trigger_id=kind)["evaluated_on"] == f"default@{HOST}"
        fired = wait_until(lambda: (lambda found: found if len(found) == 2 else None)(executions_of(groups, flow_id)),
                           30, "both executions")
        assert [ex.trigger["row"] for ex in fired] == [{"id": 1, "kind": "signup"}] * 2
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE {name}")
        admin.dispose()


class _Slow(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        time.sleep(60)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def slow_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_a_group_with_no_live_worker_follows_the_triggers_fallback(groups: GroupsCluster) -> None:
    flow_id = deploy(groups, "".join(f"""\
  - id: {fallback.lower()}
    type: io.kestra.plugin.jdbc.sqlite.Trigger
    url: "jdbc:sqlite::memory:"
    sql: SELECT 1 AS one
    interval: PT1H
    workerGroup: {{key: {group}, fallback: {fallback}}}
""" for group, fallback in (("late", "WAIT"), ("idle", "FAIL"), ("idle", "CANCEL"))))
    assert "no worker of group 'idle' is alive (fallback FAIL)" in result_of(
        groups, flow_id, "FAILED:", trigger_id="fail")["last_result"]
    assert "(fallback CANCEL)" in result_of(groups, flow_id, "CANCELLED:", trigger_id="cancel")["last_result"]
    waiting = result_of(groups, flow_id, "WAITING: no worker of group 'late' is alive", trigger_id="wait")
    assert waiting["evaluation_id"] is None and executions_of(groups, flow_id) == []
    groups.start_worker("late")
    try:
        state = result_of(groups, flow_id, "1 row", trigger_id="wait")
        assert state["evaluated_on"] == f"late@{HOST}"
        [ex] = wait_until(lambda: executions_of(groups, flow_id), 30, "the execution of the waiting trigger")
        assert ex.trigger["rows"] == [{"one": 1}]
    finally:
        groups.stop("late")


def test_a_hung_evaluation_is_stopped_and_a_killed_workers_is_released(groups: GroupsCluster,
                                                                        slow_server: str) -> None:
    hung = deploy(groups, f"""\
  - {{id: poll, type: io.kestra.plugin.core.http.Trigger, uri: "{slow_server}", interval: PT1H,
      workerGroup: {{key: gpu}}}}
""")
    started = time.monotonic()
    state = result_of(groups, hung, "TIMED OUT")
    assert state["last_result"] == f"TIMED OUT: the evaluation was stopped after {EVALUATION_TIMEOUT:g}s", state
    assert state["evaluated_on"] == f"gpu@{HOST}" and time.monotonic() - started < 30
    # A worker killed in the middle of an evaluation never answers: the server releases the trigger.
    groups.start_worker("late")
    try:
        groups.wait_live(groups.node("late"))
        lost = deploy(groups, f"""\
  - {{id: poll, type: io.kestra.plugin.core.http.Trigger, uri: "{slow_server}", interval: PT1H,
      workerGroup: {{key: late}}}}
""")
        wait_until(lambda: (trigger_state(groups, lost) or {}).get("evaluation_id"), 30, "the evaluation in flight")
        groups.kill("late")  # SIGKILL, the worker and its pool at once
        state = result_of(groups, lost, "TIMED OUT: no answer within", timeout=60)
        assert state["evaluation_id"] is None and state["next_date"] is not None
    finally:
        groups.roles.pop("late", None)
    assert executions_of(groups, hung) == [] and executions_of(groups, lost) == []
