"""Triggers on the distributed cluster: `celestra server` fires a deployed flow's schedule on its own, schedulers
racing on PostgreSQL fire a date once, and a flow trigger starts a watcher when its upstream ends on a worker."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from app.model.states import State
from app.services.scheduler import Scheduler

if TYPE_CHECKING:
    from conftest import Cluster

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _runtime_on_the_cluster(cluster: Cluster) -> None:
    """The runtime is process-wide and other modules point it elsewhere: back at the cluster for these tests."""
    from app.client import Client

    cluster.client = Client(settings=cluster.settings)


def flow_source(flow_id: str, namespace: str, trigger: str) -> str:
    return f"""id: {flow_id}
namespace: {namespace}
tasks:
  - id: when
    type: io.kestra.plugin.core.debug.Return
    format: "fired for {{{{ trigger.date }}}}"
triggers:
{trigger}"""


def test_the_server_fires_a_deployed_schedule_by_itself(cluster: Cluster) -> None:
    namespace, flow_id = "celestra.it.schedule", f"every_two_seconds_{uuid.uuid4().hex[:6]}"
    trigger = """  - id: often
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "*/2 * * * * *"
    withSeconds: true
"""
    path = cluster.write_flow(flow_id, flow_source(flow_id, namespace, trigger))
    deployed = cluster.celestra("flow", "deploy", path)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    try:
        deadline = time.monotonic() + 30
        found: list = []
        while time.monotonic() < deadline and len(found) < 2:
            cluster.check_alive()
            found = [ex for ex in cluster.client.executions(namespace=namespace) if ex.flow_id == flow_id]
            time.sleep(0.2)
        assert len(found) >= 2, "the server fired fewer than 2 dates in 30 s"
        ended = sorted((cluster.client.wait(ex.id, timeout=30) for ex in found), key=lambda ex: ex.trigger["date"])
        dates = [datetime.fromisoformat(ex.trigger["date"]) for ex in ended]
        assert all(ex.state == State.SUCCESS for ex in ended)
        assert all(d.second % 2 == 0 and d.microsecond == 0 for d in dates)
        assert dates[1] - dates[0] == timedelta(seconds=2)
        assert ended[0].task_runs[0].outputs["value"] == f"fired for {ended[0].trigger['date']}"
    finally:  # the cluster lives for the whole session: stop the schedule
        path.write_text(flow_source(flow_id, namespace, trigger + "    disabled: true\n"))
        assert cluster.celestra("flow", "deploy", path).returncode == 0


def test_schedulers_racing_on_postgres_fire_each_date_once(cluster: Cluster) -> None:
    namespace, flow_id = "celestra.it.schedule", f"new_year_{uuid.uuid4().hex[:6]}"
    trigger = """  - id: new_year
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 0 1 1 *"
"""  # next fire date 2027-01-01 and later: the server's own ticks (real time) never reach it
    cluster.client.deploy(flow_source(flow_id, namespace, trigger))
    Scheduler().tick()  # first sight: stores the next date
    for year in (2027, 2028, 2029):
        moment = datetime(year, 1, 1, tzinfo=UTC)
        counts: list[int] = []
        threads = [threading.Thread(target=lambda m=moment, c=counts: c.append(Scheduler().tick(m)))
                   for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(counts) == [0, 0, 0, 1], f"{year}: {counts}"
    found = [ex for ex in cluster.client.executions(namespace=namespace) if ex.flow_id == flow_id]
    ended = [cluster.client.wait(ex.id, timeout=30) for ex in found]
    assert sorted(ex.trigger["date"] for ex in ended) == [f"{y}-01-01T00:00:00+00:00" for y in (2027, 2028, 2029)]
    assert all(ex.state == State.SUCCESS for ex in ended)


def test_a_flow_trigger_starts_the_watcher_when_the_upstream_ends_on_a_worker(cluster: Cluster) -> None:
    namespace, suffix = "celestra.it.flowtrigger", uuid.uuid4().hex[:6]
    upstream = cluster.write_flow(f"upstream_{suffix}", f"""id: upstream_{suffix}
namespace: {namespace}
tasks:
  - id: make
    type: io.kestra.plugin.core.debug.Return
    format: "made on {{{{ taskrun.id }}}}"
""")
    watcher = cluster.write_flow(f"watcher_{suffix}", f"""id: watcher_{suffix}
namespace: {namespace}
inputs:
  - id: made
    type: STRING
tasks:
  - id: got
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ inputs.made }}}} ({{{{ trigger.executionId }}}})"
triggers:
  - id: after_upstream
    type: io.kestra.plugin.core.trigger.Flow
    inputs:
      made: "{{{{ outputs.make.value }}}}"
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionFlow
        namespace: {namespace}
        flowId: upstream_{suffix}
""")
    assert cluster.celestra("flow", "deploy", upstream, watcher).returncode == 0
    time.sleep(1.1)  # a worker sees a new deploy within a second (it lists deployed flows at most once a second)
    ran = cluster.celestra("execute", namespace, f"upstream_{suffix}", "--json")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    deadline = time.monotonic() + 30
    found: list[Any] = []
    while not found and time.monotonic() < deadline:
        cluster.check_alive()
        found = [ex for ex in cluster.client.executions(namespace=namespace) if ex.flow_id == f"watcher_{suffix}"]
        time.sleep(0.1)
    assert len(found) == 1, "the watcher did not start within 30 s"
    child = cluster.client.wait(found[0].id, timeout=30)
    assert child.state == State.SUCCESS
    assert child.task_runs[0].outputs["value"].startswith("made on ")
    assert child.trigger is not None
    assert child.task_runs[0].outputs["value"].endswith(f"({child.trigger['executionId']})")
