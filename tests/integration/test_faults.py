"""Engine v2's guarantees under faults, on private Redis and PostgreSQL servers the tests kill (faults_support.py).

Every execution must end SUCCESS within the liveness timeout plus a bounded delay, and no attempt of a task run
whose worker stayed alive may run twice (each such run has exactly one attempt). Also: large fan-outs and many
concurrent Parallels on 2 workers x 2 processes neither lose, duplicate nor stall a step.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faults_support import FaultCluster, fault_cluster
from groups_support import CELESTRA, HOST, REPO, wait_until

pytestmark = pytest.mark.integration

SHELL_FLOW = """\
id: three_steps
namespace: faults
tasks:
  - id: one
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["sleep 0.3", "echo one"]
  - id: two
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["sleep 0.3", "echo two"]
  - id: three
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["sleep 0.3", "echo three"]
"""


QUICK_SHELL_FLOW = SHELL_FLOW.replace("three_steps", "three_quick_steps").replace('"sleep 0.3", ', "")


def fan_out(size: int) -> str:
    values = ", ".join(str(i) for i in range(size))
    return (f"id: fan_out_{size}\nnamespace: faults\ntasks:\n  - id: each\n"
            f"    type: io.kestra.plugin.core.flow.ForEach\n    concurrencyLimit: 0\n    values: [{values}]\n"
            "    tasks:\n      - id: noop\n        type: io.kestra.plugin.core.debug.Return\n"
            "        format: \"{{ taskrun.value }}\"\n")


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultCluster]:
    with fault_cluster(tmp_path_factory.mktemp("faults")) as cluster:
        yield cluster


def submit(cluster: FaultCluster, source: str, count: int) -> list[str]:
    return [cluster.client.run(source, wait=False).id for _ in range(count)]


def assert_each_run_once(cluster: FaultCluster, execution_ids: list[str], runs_each: int) -> None:
    """SUCCESS, with exactly `runs_each` task runs, each SUCCESS after a single attempt."""
    for execution_id in execution_ids:
        ex = cluster.client.get(execution_id)
        assert ex.state.value == "SUCCESS", ex.to_json()
        assert len(ex.task_runs) == runs_each, (execution_id, len(ex.task_runs))
        positions = {(r.parent_id, r.task_id, r.value) for r in ex.task_runs}
        assert len(positions) == runs_each
        for run in ex.task_runs:
            assert run.state.value == "SUCCESS", run.to_json()
            assert len(run.attempts) == 1, f"task run {run.task_id}[{run.value}] ran {len(run.attempts)} times"


def test_a_fan_out_of_2000_ends_with_exactly_2001_task_runs(faults: FaultCluster) -> None:
    [execution_id] = submit(faults, fan_out(2000), 1)
    faults.wait_ended([execution_id], 240)
    assert_each_run_once(faults, [execution_id], 2001)
    ex = faults.client.get(execution_id)
    assert sorted(r.outputs["value"] for r in ex.task_runs if r.parent_id) == sorted(str(i) for i in range(2000))


def test_twenty_parallels_of_fifty_never_lose_duplicate_or_stall_a_step(faults: FaultCluster) -> None:
    tasks = "\n".join(f"      - id: p{i:02d}\n        type: io.kestra.plugin.core.debug.Return\n        format: x"
                      for i in range(50))
    source = (f"id: parallel_50\nnamespace: faults\ntasks:\n  - id: all\n"
              f"    type: io.kestra.plugin.core.flow.Parallel\n    tasks:\n{tasks}\n"
              "  - id: after\n    type: io.kestra.plugin.core.debug.Return\n    format: done\n")
    ids = submit(faults, source, 20)
    faults.wait_ended(ids, 240)
    assert_each_run_once(faults, ids, 52)


def probe(cluster: FaultCluster, *args: str) -> subprocess.CompletedProcess[str]:
    """`celestra probe ...` as a container would run it; exit 0 when it holds."""
    return subprocess.run([*CELESTRA, "probe", *args], env=cluster.env, capture_output=True, text=True, timeout=30,
                          check=False)


def test_postgres_stopped_20_seconds_under_load(faults: FaultCluster) -> None:
    ids = submit(faults, QUICK_SHELL_FLOW, 200)  # tasks are running, others are queued
    nodes = (["server"], ["worker", "--node", f"w1@{HOST}"], ["worker", "--worker-group", "w2"])
    for node in nodes:
        assert probe(faults, *node, "--ready").returncode == 0, probe(faults, *node, "--ready").stderr
    faults.postgres.stop()
    stopped = time.monotonic()
    try:
        # The probes during the outage: every process alive (nothing to restart), none ready.
        for node in nodes:
            wait_until(lambda node=node: probe(faults, *node, "--ready").returncode == 1 or None, 15,
                       f"{node} to say it is not ready")
            assert "not ready" in probe(faults, *node, "--ready").stderr
            assert probe(faults, *node).returncode == 0
        time.sleep(max(0.0, 20 - (time.monotonic() - stopped)))
    finally:
        faults.postgres.start()
    # Liveness timeout (a worker judged dead only on heartbeats it could write) plus a bounded delay.
    faults.wait_ended(ids, 120)
    for node in nodes:
        assert probe(faults, *node, "--ready").returncode == 0, probe(faults, *node, "--ready").stderr
    assert_each_run_once(faults, ids, 3)
    assert faults.logged("the database is unreachable")  # the outage was met, and ridden out
    for name in ("w1", "w2"):
        assert faults.services[name].alive


def test_redis_killed_and_restarted_empty_mid_flow(faults: FaultCluster) -> None:
    ids = submit(faults, SHELL_FLOW, 100)
    time.sleep(1)
    faults.redis.kill()
    time.sleep(1)
    faults.redis.start()  # empty: every queued message is gone
    faults.wait_ended(ids, 120)
    assert_each_run_once(faults, ids, 3)
    assert faults.logged("had no message on the broker")  # the server sent what the broker lost


FETCH_AND_HANG = """\
import sys, time
from app.celery_app import get_celery
app = get_celery()
with app.connection_for_read() as connection:
    def received(body, message):
        print("fetched", flush=True)
        time.sleep(3600)
    with connection.Consumer([app.amqp.queues[sys.argv[1]]], callbacks=[received], accept=["json"]):
        connection.drain_events(timeout=60)
"""


def test_a_worker_killed_between_fetch_and_claim(faults: FaultCluster, tmp_path: Path) -> None:
    """It took the message off the queue and died before claiming the run: on Redis, the message would come back
    only after the one-hour visibility timeout. The server sends it again."""
    source = (SHELL_FLOW.replace("id: three_steps", "id: fetched_then_killed")
              .replace("commands:", "workerGroup: {key: lonely}\n    commands:", 1))
    hang = subprocess.Popen([sys.executable, "-c", FETCH_AND_HANG, "lonely"], cwd=REPO, env=faults.env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        [execution_id] = submit(faults, source, 1)
        assert hang.stdout is not None
        wait_until(lambda: "fetched" in (hang.stdout.readline() or ""), 30, "the consumer to fetch the message")
    finally:
        hang.kill()
        hang.wait(10)
    faults.start_worker("lonely", queue="lonely")
    try:
        faults.wait_ended([execution_id], 60)
        assert_each_run_once(faults, [execution_id], 3)
    finally:
        faults.services.pop("lonely").stop()


def test_sigkill_storm_on_a_1000_way_fan_out(faults: FaultCluster) -> None:
    """Pool processes and whole workers SIGKILLed again and again while a fan-out of 1,000 runs; each replacement
    worker comes back under the same name. The execution ends with exactly 1,001 task runs."""
    [execution_id] = submit(faults, fan_out(1000), 1)
    rng = random.Random(7)
    started = {name: 0.0 for name in ("w1", "w2")}
    deadline = time.monotonic() + 12
    kills = 0
    while time.monotonic() < deadline and faults.states([execution_id]).get(execution_id) == "RUNNING":
        name = rng.choice(["w1", "w2"])
        log = faults.services[name].log
        if time.monotonic() - started[name] < 1 or " ready." not in log.read_text(errors="replace"):
            time.sleep(0.2)  # a pool process killed while Celery starts its pool stops the whole worker
            continue
        if kills % 4 == 3:  # the whole worker, then its replacement
            faults.kill(name)
            faults.start_worker(name)
            started[name] = time.monotonic() + 1  # and counted from when it is ready
        else:
            children = faults.pool_children(name)
            if children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(rng.choice(children), signal.SIGKILL)
        kills += 1
        time.sleep(0.3)  # the fan-out takes a few seconds: the storm must fit in them
    assert kills >= 5
    faults.wait_ended([execution_id], 180)
    ex = faults.client.get(execution_id)
    assert ex.state.value == "SUCCESS", ex.to_json()
    assert len(ex.task_runs) == 1001
    assert {r.state.value for r in ex.task_runs} == {"SUCCESS"}
    assert sorted(r.outputs["value"] for r in ex.task_runs if r.parent_id) == sorted(str(i) for i in range(1000))
    for name in ("w1", "w2"):
        assert faults.services[name].alive


def test_a_pool_process_killed_while_running_its_task(faults: FaultCluster) -> None:
    """The worker stays alive (it still beats), so nothing would resend the run: Celery gives the message back, and
    the next delivery takes the run over from the dead process, recording the lost attempt."""
    source = ("id: pool_process_killed\nnamespace: faults\ntasks:\n  - id: slow\n"
              "    type: io.kestra.plugin.scripts.shell.Commands\n    commands: [\"sleep 2\", \"echo slept\"]\n")
    [execution_id] = submit(faults, source, 1)

    def running_pid() -> int | None:
        runs = faults.client.get(execution_id).task_runs
        return runs[0].worker_pid if runs and runs[0].state.value == "RUNNING" else None

    pid = wait_until(running_pid, 30, "the task to run")
    os.kill(pid, signal.SIGKILL)
    faults.wait_ended([execution_id], 60)
    ex = faults.client.get(execution_id)
    assert ex.state.value == "SUCCESS", ex.to_json()
    [run] = ex.task_runs
    assert [a.state.value for a in run.attempts] == ["KILLED", "SUCCESS"]
    assert run.worker_pid != pid
    assert any("ended abruptly" in row["message"] for row in faults.client.logs(execution_id))


def test_a_pool_process_killed_while_running_a_chained_run(faults: FaultCluster) -> None:
    """The second task was claimed for the process that ended the first, by that step (app/engine/chains.py): no
    message of it exists for Celery to give back. The worker's heartbeat sees the process gone and sends it again."""
    source = ("id: chained_process_killed\nnamespace: faults\ntasks:\n  - id: first\n"
              "    type: io.kestra.plugin.core.debug.Return\n    format: x\n  - id: slow\n"
              "    type: io.kestra.plugin.scripts.shell.Commands\n    commands: [\"sleep 2\", \"echo slept\"]\n")
    [execution_id] = submit(faults, source, 1)

    def running_slow() -> Any:
        runs = [r for r in faults.client.get(execution_id).task_runs if r.task_id == "slow"]
        return runs[0] if runs and runs[0].state.value == "RUNNING" else None

    slow = wait_until(running_slow, 30, "the second task to run")
    assert slow.sent_at is None  # chained: never sent
    os.kill(slow.worker_pid, signal.SIGKILL)
    faults.wait_ended([execution_id], 60)
    ex = faults.client.get(execution_id)
    assert ex.state.value == "SUCCESS", ex.to_json()
    run = next(r for r in ex.task_runs if r.task_id == "slow")
    assert [a.state.value for a in run.attempts] == ["KILLED", "SUCCESS"]
    assert run.worker_pid != slow.worker_pid and run.sent_at is not None
    assert any("ended abruptly" in row["message"] for row in faults.client.logs(execution_id))


def test_a_claim_whose_answer_an_outage_hid_is_still_its_own(faults: FaultCluster,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL committed the claim, then the connection dropped before the answer arrived: the retried claim
    must recognise it (its token), or the run would stay RUNNING on a live worker forever."""
    import sqlalchemy as sa

    from app import runtime
    from app.store.database import Store
    from workers.execute import run_task_run

    source = ("id: claim_answer_lost\nnamespace: faults\ntasks:\n  - id: a\n"
              "    type: io.kestra.plugin.core.debug.Return\n    format: x\n    workerGroup: {key: nobody}\n")
    ex = faults.client.run(source, wait=False)  # no worker serves `nobody`: this test's process runs it
    [run] = faults.client.get(ex.id).task_runs
    real_claim = Store.claim_with_execution
    answers: list[bool] = []

    def answer_lost(self: Store, *args: object, **kwargs: object) -> object:
        claimed = real_claim(self, *args, **kwargs)  # type: ignore[arg-type]
        answers.append(claimed is not None)
        if len(answers) == 1:
            raise sa.exc.OperationalError("UPDATE task_runs", {}, Exception("server closed the connection"))
        return claimed

    monkeypatch.setattr(Store, "claim_with_execution", answer_lost)
    run_task_run(ex.id, run.id, f"inproc@{os.getpid()}", None)
    assert answers == [True, False]  # committed the first time; the retry found the run taken (by itself)
    ended = faults.client.wait(ex.id, timeout=30)
    assert ended.state.value == "SUCCESS", ended.to_json()
    assert len(ended.task_runs[0].attempts) == 1
    assert runtime.store().running_on(f"inproc@{os.getpid()}") == []


def test_a_kill_of_thousands_of_waiting_runs_wins_over_the_claims(faults: FaultCluster) -> None:
    """Workers claim the runs of a 3,000-way fan-out while it is killed: the kill ends every waiting run in one
    statement, so it cannot lose to claims run after run, and the execution ends KILLED."""
    [execution_id] = submit(faults, fan_out(3000), 1)
    wait_until(lambda: sum(r.state.value == "SUCCESS" for r in faults.client.get(execution_id).task_runs) > 50,
               60, "the fan-out to be under way", poll=0.2)
    faults.client.cancel(execution_id)
    faults.wait_ended([execution_id], 60)
    ex = faults.client.get(execution_id)
    assert ex.state.value == "KILLED", ex.to_json()
    states = {r.state.value for r in ex.task_runs}
    assert states <= {"SUCCESS", "KILLED"}, states
    assert sum(r.state.value == "KILLED" for r in ex.task_runs) > 100
