"""Worker groups on real processes: `celestra server` and one Celery worker per group (default, gpu, onprem).

The cluster (tests/integration/groups_support.py) runs on its own Redis database and PostgreSQL database, with the
groups declared in a configuration file every process reads and fast liveness (heartbeat 0.5 s, dead after 3 s).
Which worker ran a task run is read from the task run itself: `worker` is the Celery node name (`gpu@<host>`),
`workerGroup` the group key. The routing test runs again on RabbitMQ, on a vhost of its own.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from groups_support import (
    CELESTRA,
    HOST,
    SECRET_NAME,
    SECRET_VALUE,
    WORKER_TIMEOUT,
    GroupsCluster,
    fresh_rabbitmq_vhost,
    fresh_redis_database,
    groups_cluster,
    unavailable,
    wait_until,
)

from app.model.states import State

pytestmark = pytest.mark.integration

RETURN = "io.kestra.plugin.core.debug.Return"
LOG = "io.kestra.plugin.core.log.Log"
SLEEP = "io.kestra.plugin.core.flow.Sleep"

ROUTING_FLOW = f"""\
id: routing
namespace: celestra.it.groups
inputs:
  - id: group
    type: STRING
    defaults: onprem
tasks:
  - id: on_default
    type: {RETURN}
    format: default
  - id: on_gpu
    type: {RETURN}
    format: gpu
    workerGroup:
      key: gpu
  - id: on_onprem
    type: {LOG}
    message: on the on-premise box
    workerGroup:
      key: onprem
  - id: templated
    type: {RETURN}
    format: "{{{{ inputs.group }}}}"
    workerGroup:
      key: "{{{{ inputs.group }}}}"
"""

# company.team's default is gpu (fallback FAIL) in the cluster's configuration; company.team.analytics inherits it.
NAMESPACE_FLOW = f"""\
id: ns_default
namespace: company.team.analytics
tasks:
  - id: inherits
    type: {RETURN}
    format: inherited
  - id: explicit
    type: {RETURN}
    format: explicit
    workerGroup:
      key: onprem
"""

FLOW_LEVEL_FLOW = f"""\
id: flow_level
namespace: company.team
workerGroup:
  key: onprem
tasks:
  - id: from_flow
    type: {RETURN}
    format: flow level beats the namespace default
  - id: own_key
    type: {RETURN}
    format: task level beats both
    workerGroup:
      key: gpu
"""


def group_flow(flow_id: str, group_yaml: str, *, task: str | None = None, namespace: str = "celestra.it.groups",
               extra: str = "") -> str:
    """A one-task flow whose task targets a worker group (`group_yaml`: the lines under `workerGroup:`)."""
    body = task or f"    type: {LOG}\n    message: ran\n"
    return (f"id: {flow_id}\nnamespace: {namespace}\ntasks:\n  - id: only\n{body}{extra}"
            f"    workerGroup:\n{group_yaml}")


def runs_by_task(ex: Any) -> dict[str, Any]:
    return {run.task_id: run for run in ex.task_runs}


def node(name: str) -> str:
    return f"{name}@{HOST}"


def assert_ran_on(run: Any, group: str | None, worker: str) -> None:
    assert run.state == State.SUCCESS, run.to_json()
    assert run.worker_group == group, run.to_json()
    assert run.worker == node(worker), run.to_json()


def describe(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def flat(text: str) -> str:
    return " ".join(text.split())


# -- fixtures ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def groups(postgres_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GroupsCluster]:
    with fresh_redis_database() as broker, \
            groups_cluster(broker, postgres_server.create_database(), tmp_path_factory.mktemp("groups")) as cluster:
        yield cluster


@pytest.fixture
def rabbit_groups(postgres_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GroupsCluster]:
    """The same cluster on RabbitMQ; the test process's runtime switches to it for one test, then back."""
    with fresh_rabbitmq_vhost() as broker, \
            groups_cluster(broker, postgres_server.create_database(), tmp_path_factory.mktemp("rabbit")) as cluster:
        yield cluster


@pytest.fixture
def redis_raw(groups: GroupsCluster) -> Iterator[Any]:
    import redis

    client = redis.Redis.from_url(groups.settings.broker_url)
    yield client
    client.close()


# -- routing -------------------------------------------------------------------------------------------------
def check_routing(cluster: GroupsCluster) -> None:
    ex = cluster.run(ROUTING_FLOW, inputs={"group": "gpu"})
    assert ex.state == State.SUCCESS, ex.to_json()
    runs = runs_by_task(ex)
    assert_ran_on(runs["on_default"], None, "default")
    assert_ran_on(runs["on_gpu"], "gpu", "gpu")
    assert_ran_on(runs["on_onprem"], "onprem", "onprem")
    assert_ran_on(runs["templated"], "gpu", "gpu")
    assert runs["templated"].outputs == {"value": "gpu"}


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_each_task_runs_on_a_worker_of_its_group(request: pytest.FixtureRequest, broker: str) -> None:
    cluster: GroupsCluster = request.getfixturevalue("groups" if broker == "redis" else "rabbit_groups")
    check_routing(cluster)


def test_templated_key_and_identity_through_the_cli(groups: GroupsCluster) -> None:
    path = groups.write_flow("routing", ROUTING_FLOW)
    result = groups.celestra("run", path, "--json", "-i", "group=onprem")
    assert result.returncode == 0, describe(result)
    data = json.loads(result.stdout)
    runs = {run["taskId"]: run for run in data["taskRuns"]}
    assert {task: (run["workerGroup"], run["worker"]) for task, run in runs.items()} == {
        "on_default": (None, node("default")),
        "on_gpu": ("gpu", node("gpu")),
        "on_onprem": ("onprem", node("onprem")),
        "templated": ("onprem", node("onprem")),
    }


def test_namespace_default_is_inherited_and_overridden(groups: GroupsCluster) -> None:
    ex = groups.run(NAMESPACE_FLOW)
    assert ex.state == State.SUCCESS, ex.to_json()
    runs = runs_by_task(ex)
    assert_ran_on(runs["inherits"], "gpu", "gpu")  # company.team's default, inherited by company.team.analytics
    assert_ran_on(runs["explicit"], "onprem", "onprem")

    ex = groups.run(FLOW_LEVEL_FLOW)
    assert ex.state == State.SUCCESS, ex.to_json()
    runs = runs_by_task(ex)
    assert_ran_on(runs["from_flow"], "onprem", "onprem")
    assert_ran_on(runs["own_key"], "gpu", "gpu")


@pytest.mark.parametrize("command", ["validate", "run", "flow deploy"])
def test_undeclared_static_key_is_rejected_with_exit_2(groups: GroupsCluster, command: str) -> None:
    path = groups.write_flow("undeclared", group_flow("undeclared", "      key: gpuu\n").replace(
        "  - id: only", "  - id: typo_task"))
    result = groups.celestra(*command.split(), path)
    assert result.returncode == 2, describe(result)
    message = flat(result.stderr)
    assert "typo_task" in message and "gpuu" in message, describe(result)
    assert not groups.client.executions(flow_id="undeclared"), "a rejected flow must not start an execution"


def test_templated_key_rendering_an_undeclared_group_fails_the_task_run(groups: GroupsCluster) -> None:
    source = ROUTING_FLOW.replace("id: routing", "id: bad_render")
    ex = groups.run(source, inputs={"group": "nowhere"})
    assert ex.state == State.FAILED, ex.to_json()
    run = runs_by_task(ex)["templated"]
    assert run.state == State.FAILED and run.worker is None, run.to_json()
    assert "nowhere" in run.error and "Unknown worker group" in run.error, run.error


# -- liveness as users see it --------------------------------------------------------------------------------
def test_workers_json_lists_groups_with_live_workers_and_queue_depth(groups: GroupsCluster) -> None:
    waiting = groups.client.run(group_flow("queued", "      key: idle\n"), wait=False)  # WAIT: stays queued
    try:
        result = groups.celestra("workers", "--json")
        assert result.returncode == 0, describe(result)
        listed = {group["key"]: group for group in json.loads(result.stdout)}
        assert {"gpu", "onprem", "late", "idle", groups.settings.default_queue} <= set(listed), listed
        gpu = listed["gpu"]
        assert gpu["declared"] and gpu["description"] == "GPU box", gpu
        assert [w["id"] for w in gpu["workers"]] == [node("gpu")], gpu
        worker = gpu["workers"][0]
        assert worker["hostname"] == HOST and worker["groups"] == ["gpu"] and worker["pid"] > 0, worker
        assert worker["started"] <= worker["heartbeat"], worker
        # An empty queue: 0 on RabbitMQ; on Redis the passive declare finds no key for an empty list (see report).
        assert gpu["queued"] in (0, None), gpu
        assert [w["id"] for w in listed["onprem"]["workers"]] == [node("onprem")], listed["onprem"]
        assert listed["idle"]["workers"] == [] and listed["idle"]["declared"], listed["idle"]
        assert (listed["idle"]["queued"] or 0) >= 1, listed["idle"]  # the waiting run's message
        assert [w["id"] for w in listed[groups.settings.default_queue]["workers"]] == [node("default")]

        api = {group["key"]: group for group in groups.client.worker_groups()}
        assert set(api) == set(listed)
        assert {k: sorted(w["id"] for w in g["workers"]) for k, g in api.items()} == \
            {k: sorted(w["id"] for w in g["workers"]) for k, g in listed.items()}
    finally:
        groups.client.cancel(waiting.id)
    assert groups.client.wait(waiting.id, timeout=30).state == State.KILLED


# -- fallbacks -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("group_yaml", "namespace"), [
    ("      key: idle\n      fallback: FAIL\n", "celestra.it.groups"),
    ("      key: idle\n", "company.team"),  # no fallback on the task: the namespace default's (FAIL) applies
], ids=["task-fallback", "namespace-fallback"])
def test_fallback_fail_fails_the_task_run_naming_the_group(groups: GroupsCluster, group_yaml: str,
                                                           namespace: str) -> None:
    ex = groups.run(group_flow("fail_fast", group_yaml, namespace=namespace), timeout=30)
    assert ex.state == State.FAILED, ex.to_json()
    run = runs_by_task(ex)["only"]
    assert run.state == State.FAILED and run.worker is None and run.worker_group == "idle", run.to_json()
    assert "'idle'" in run.error and "FAIL" in run.error, run.error
    assert any("'idle'" in message for message in groups.log_messages(ex.id, "ERROR"))


def test_fallback_cancel_kills_the_execution_without_error(groups: GroupsCluster) -> None:
    ex = groups.run(group_flow("cancel_fast", "      key: idle\n      fallback: CANCEL\n"), timeout=30)
    assert ex.state == State.KILLED, ex.to_json()
    run = runs_by_task(ex)["only"]
    assert run.state == State.KILLED and run.error is None and run.worker is None, run.to_json()
    assert ex.error is None, ex.to_json()
    assert groups.log_messages(ex.id, "ERROR") == []
    assert any("'idle'" in message and "CANCEL" in message for message in groups.log_messages(ex.id, "WARN"))


def test_fallback_wait_starts_the_run_when_a_worker_of_the_group_comes_up(groups: GroupsCluster) -> None:
    source = group_flow("waits", "      key: late\n", task=f"    type: {RETURN}\n    format: finally\n")
    ex = groups.client.run(source, wait=False)
    time.sleep(1.5)  # no worker of `late`: the run waits, CREATED, in the group's queue
    run = runs_by_task(groups.client.get(ex.id))["only"]
    assert run.state == State.CREATED and run.worker is None and run.worker_group == "late", run.to_json()
    assert groups.client.get(ex.id).state == State.RUNNING

    groups.start_worker("late", friendly=True, concurrency=1)
    try:
        ended = groups.client.wait(ex.id, timeout=60)
        assert ended.state == State.SUCCESS, ended.to_json()
        assert_ran_on(runs_by_task(ended)["only"], "late", "late")
        assert runs_by_task(ended)["only"].outputs == {"value": "finally"}
    finally:
        groups.stop("late")


def test_fallback_wait_past_the_task_timeout_fails_saying_no_worker_came_up(groups: GroupsCluster) -> None:
    source = group_flow("waits_too_long", "      key: idle\n", extra="    timeout: PT2S\n")
    started = time.monotonic()
    ex = groups.run(source, timeout=30)
    waited = time.monotonic() - started
    assert ex.state == State.FAILED, ex.to_json()
    run = runs_by_task(ex)["only"]
    assert run.state == State.FAILED and run.worker is None, run.to_json()
    assert "No worker of group 'idle' came up" in run.error, run.error
    assert 2 <= waited < 10, f"failed after {waited:.1f}s, the task's timeout is 2s"


# -- secrets and isolation -----------------------------------------------------------------------------------
def queued_messages(redis_raw: Any, queue: str) -> list[dict[str, Any]]:
    """Kombu's Redis transport keeps a queue as a list of JSON envelopes whose body is base64-encoded JSON."""
    messages = []
    for raw in redis_raw.lrange(queue, 0, -1):
        envelope = json.loads(raw)
        body = envelope["body"]
        if envelope["properties"].get("body_encoding") == "base64":
            body = base64.b64decode(body).decode()
        messages.append({"raw": raw.decode(), "headers": envelope["headers"], "body": json.loads(body)})
    return messages


def test_secret_never_travels_in_the_broker_message(groups: GroupsCluster, redis_raw: Any) -> None:
    secret_task = f"    type: {LOG}\n    message: \"token={{{{ secret('{SECRET_NAME}') }}}}\"\n"
    ex = groups.client.run(group_flow("secretive", "      key: idle\n", task=secret_task), wait=False)
    try:
        run = runs_by_task(groups.client.get(ex.id))["only"]
        mine = [m for m in queued_messages(redis_raw, "idle") if m["body"][0][:2] == [ex.id, run.id]]
        assert len(mine) == 1, queued_messages(redis_raw, "idle")
        message = mine[0]
        assert message["headers"]["task"] == "celestra.run_task"
        assert message["body"][1] == {"namespace": "celestra.it.groups", "flow": "secretive", "task": "only",
                                      "group": "idle"}
        encoded = base64.b64encode(SECRET_VALUE.encode()).decode()
        for text in (message["raw"], json.dumps(message["body"]), json.dumps(message["headers"])):
            assert SECRET_VALUE not in text and encoded not in text
    finally:
        groups.client.cancel(ex.id)

    # The same task on a live group: resolved on the worker, masked in the logs.
    ex = groups.run(group_flow("secretive", "      key: gpu\n", task=secret_task))
    assert ex.state == State.SUCCESS, ex.to_json()
    messages = groups.log_messages(ex.id)
    assert "token=********" in messages, messages
    assert not any(SECRET_VALUE in m for m in messages), messages


def test_a_worker_refuses_a_message_of_a_group_it_does_not_serve(groups: GroupsCluster, redis_raw: Any) -> None:
    from app.celery_app import RUN_TASK, get_celery

    # A real CREATED task run (its own message waits in `idle`), then a forged message for it, group gpu,
    # published onto the onprem queue.
    ex = groups.client.run(group_flow("misrouted", "      key: idle\n"), wait=False)
    run = runs_by_task(groups.client.get(ex.id))["only"]
    onprem = groups.roles["onprem"]
    try:
        get_celery().send_task(RUN_TASK, args=[ex.id, run.id], queue="onprem",
                               kwargs={"namespace": ex.namespace, "flow": ex.flow_id, "task": "only", "group": "gpu"})
        wait_until(lambda: f"refusing task run {run.id}" in onprem.log.read_text(errors="replace"), 15,
                   "the onprem worker to log that it refuses the message", on_timeout=groups.describe)
        time.sleep(1)
        after = runs_by_task(groups.client.get(ex.id))["only"]
        # Forwarded to `gpu`, whose worker does not claim it either: the stored group (`idle`) is the authority.
        assert after.state == State.CREATED and after.worker is None and after.attempts == [], after.to_json()
        assert redis_raw.llen("onprem") == 0, "the refused message must not loop on the onprem queue"
    finally:
        groups.client.cancel(ex.id)
    assert groups.client.wait(ex.id, timeout=30).state == State.KILLED


# -- Flower --------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get_json(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def test_flower_shows_groups_as_queues_and_tasks_by_name(groups: GroupsCluster) -> None:
    try:
        import flower  # noqa: F401
    except ImportError as exc:
        unavailable("Flower (pip install celestra[flower])", exc)
    port = free_port()
    # `celestra flower` is `celery -A app flower` with Celestra's settings; extra options go to Flower. --no-auth
    # opens the pages and the REST API (tests/integration/test_flower.py covers the authenticated default).
    service = groups.start("flower", [*CELESTRA, "flower", "--no-auth", f"--port={port}", "--address=127.0.0.1"],
                           groups.env)
    base = f"http://127.0.0.1:{port}"
    try:
        def gpu_worker() -> dict[str, Any] | None:
            assert service.alive, service.tail()
            workers = get_json(f"{base}/api/workers?refresh=1") or {}
            return workers.get(node("gpu")) if workers.get(node("gpu"), {}).get("active_queues") else None

        gpu = wait_until(gpu_worker, 45, "Flower to list the gpu worker with its queues", poll=0.5,
                         on_timeout=groups.describe)
        assert "gpu" in [queue["name"] for queue in gpu["active_queues"]], gpu["active_queues"]

        # Flower switches task events on in the workers it watches; tasks sent after that appear in /api/tasks.
        def seen_task() -> dict[str, Any] | None:
            ex = groups.run(group_flow("watched", "      key: gpu\n"))
            assert ex.state == State.SUCCESS, ex.to_json()
            tasks = get_json(f"{base}/api/tasks?limit=200") or {}
            # Named by its flow and task (Celery's shadow name), not only celestra.run_task.
            return next((t for t in tasks.values()
                         if t.get("name") == "celestra.run_task[celestra.it.groups.watched:only]"), None)

        deadline = time.monotonic() + 30
        task = None
        while task is None and time.monotonic() < deadline:
            task = seen_task()
            time.sleep(0.5)
        assert task is not None, "Flower never received task events from the workers: /api/tasks is empty"
        kwargs = str(task["kwargs"])
        for expected in ("'namespace': 'celestra.it.groups'", "'flow': 'watched'", "'task': 'only'",
                         "'group': 'gpu'"):
            assert expected in kwargs, task
        assert task.get("worker") in (None, node("gpu")), task
    finally:
        groups.stop("flower")


# -- crash recovery ------------------------------------------------------------------------------------------
KILL_FLOW = f"""\
id: survives
namespace: celestra.it.groups
tasks:
  - id: nap
    type: {SLEEP}
    duration: PT10S
    workerGroup:
      key: gpu
  - id: after
    type: {RETURN}
    format: "after the crash"
    workerGroup:
      key: gpu
"""


def wait_running(groups: GroupsCluster, execution_id: str, task_id: str, worker: str) -> Any:
    def running() -> Any:
        run = runs_by_task(groups.client.get(execution_id)).get(task_id)
        return run if run is not None and run.state == State.RUNNING and run.worker == worker else None

    return wait_until(running, 30, f"{task_id} RUNNING on {worker}",
                      on_timeout=lambda: json.dumps(groups.client.get(execution_id).to_json(), default=str))


def test_sigkilled_group_worker_task_is_resent_to_a_new_worker(groups: GroupsCluster) -> None:
    ex = groups.client.run(KILL_FLOW, wait=False)
    wait_running(groups, ex.id, "nap", node("gpu"))
    time.sleep(0.5)
    groups.kill("gpu")  # mid-sleep: the main process and its pool children, no chance to say goodbye

    # The server notices the silence (no heartbeat for 3 s), records the lost attempt and sends the run again.
    wait_until(lambda: any("stopped beating" in m for m in groups.log_messages(ex.id, "WARN")), 20,
               "a WARN log saying the worker stopped beating", on_timeout=groups.describe)
    groups.start_worker("gpu")
    ended = groups.client.wait(ex.id, timeout=60)
    assert ended.state == State.SUCCESS, ended.to_json()
    runs = runs_by_task(ended)
    nap = runs["nap"]
    assert [a.state for a in nap.attempts] == [State.KILLED, State.SUCCESS], nap.to_json()
    assert_ran_on(nap, "gpu", "gpu")
    assert_ran_on(runs["after"], "gpu", "gpu")
    assert runs["after"].outputs == {"value": "after the crash"}
    assert len(ended.task_runs) == 2 and len(runs["after"].attempts) == 1, ended.to_json()
    warnings = groups.log_messages(ex.id, "WARN")
    assert any(node("gpu") in m and "stopped beating" in m for m in warnings), warnings


def test_worker_restarted_at_once_under_the_same_name_gets_the_lost_run_back(groups: GroupsCluster) -> None:
    """What a supervisor does (systemd Restart=always; a Kubernetes container restart keeps the pod's hostname):
    the crashed worker is back, under the same node name, before the liveness timeout has passed."""
    ex = groups.client.run(KILL_FLOW.replace("id: survives", "id: survives_restart"), wait=False)
    wait_running(groups, ex.id, "nap", node("gpu"))
    groups.kill("gpu")
    replacement = groups.start_worker("gpu")
    try:
        def replacement_beats() -> bool:
            worker = groups.live_nodes().get(node("gpu"))
            return worker is not None and worker.pid == replacement.process.pid

        wait_until(replacement_beats, 30, "the replacement gpu worker's heartbeat", on_timeout=groups.describe)
        # Whichever comes first (the replacement's start, or the server noticing the silence), the run is resent.

        def resent() -> bool:
            nap = runs_by_task(groups.client.get(ex.id))["nap"]
            return State.KILLED in [a.state for a in nap.attempts]

        # Resent within the liveness timeout, like test_sigkilled_group_worker_task_is_resent_to_a_new_worker.
        wait_until(resent, 3 * WORKER_TIMEOUT, "the lost attempt to be recorded and the run sent again",
                   on_timeout=lambda: json.dumps(groups.client.get(ex.id).to_json(), default=str))
        ended = groups.client.wait(ex.id, timeout=45)
        assert ended.state == State.SUCCESS, ended.to_json()
    finally:
        groups.client.cancel(ex.id)
