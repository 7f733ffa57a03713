"""A worker running a Docker task is SIGKILLed: its container keeps running on the engine; the run is resent to a
new worker of the group, which follows that same container (no duplicate, each line logged once) and removes it at
the end."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from groups_support import GroupsCluster, fresh_redis_database, groups_cluster, wait_until

from app.model.states import State

pytestmark = pytest.mark.integration
IMAGE = "celestra/python:3.11"

FLOW = f"""
id: docker_survives
namespace: celestra.it.docker
tasks:
  - id: job
    type: io.kestra.plugin.scripts.python.Commands
    containerImage: {IMAGE}
    workerGroup:
      key: gpu
    taskRunner:
      type: io.kestra.plugin.scripts.runner.docker.Docker
      pullPolicy: NEVER
    commands:
      - python -c "import time; print('started', flush=True); time.sleep(8); print('finished', flush=True)"
"""


@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    docker = pytest.importorskip("docker")
    try:
        client = docker.from_env()
        client.ping()
        client.images.get(IMAGE)
    except Exception as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Docker engine or {IMAGE} unavailable in CI: {exc}")
        pytest.skip(f"no Docker engine with {IMAGE}: {exc}")
    yield client
    client.close()


@pytest.fixture(scope="module")
def cluster(engine: Any, postgres_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GroupsCluster]:
    with fresh_redis_database() as broker, \
            groups_cluster(broker, postgres_server.create_database(), tmp_path_factory.mktemp("docker")) as groups:
        yield groups


def test_sigkilled_worker_leaves_no_duplicate_and_no_container(engine: Any, cluster: GroupsCluster) -> None:
    ex = cluster.client.run(FLOW, wait=False)
    label = {"label": f"celestra.execution={ex.id}"}
    wait_until(lambda: "started" in cluster.log_messages(ex.id), 60, "the container to print", poll=0.2,
               on_timeout=cluster.describe)
    first = engine.containers.list(all=True, filters=label)
    assert len(first) == 1
    cluster.kill("gpu")  # the worker dies; the container does not

    wait_until(lambda: any("stopped beating" in m for m in cluster.log_messages(ex.id, "WARN")), 20,
               "the server to notice the dead worker", on_timeout=cluster.describe)
    cluster.start_worker("gpu")
    ended = cluster.client.wait(ex.id, timeout=90)
    assert ended.state == State.SUCCESS, ended.to_json()
    run = ended.task_runs[0]
    assert [a.state for a in run.attempts] == [State.KILLED, State.SUCCESS], run.to_json()
    assert run.external_id == first[0].id, "the new worker followed the container, it did not start another"
    assert cluster.log_messages(ex.id, "INFO").count("finished") == 1
    # The new worker read the container's output from its start: what the dead one had stored is not logged twice.
    assert cluster.log_messages(ex.id, "INFO").count("started") == 1
    deadline = time.monotonic() + 10
    while engine.containers.list(all=True, filters=label) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert engine.containers.list(all=True, filters=label) == [], "docker ps -a still shows the task's container"
    assert engine.volumes.list(filters=label) == []
