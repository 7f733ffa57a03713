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
from pathlib import Path
from typing import Any

import pytest

from app.states import State
from groups_support import (
    HOST,
    SECRET_NAME,
    SECRET_VALUE,
    CELERY,
    GroupsCluster,
    fresh_rabbitmq_vhost,
    fresh_redis_database,
    groups_cluster,
    unavailable,
    wait_until,
)

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
