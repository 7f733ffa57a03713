"""Celestra distributed: `celestra server` + a prefork Celery worker on Redis, executions in PostgreSQL.

Every test talks to the processes started by the `cluster` fixture, either through the `celestra` command
line (a subprocess with the cluster's CELESTRA_* environment) or through the test process's `Client`.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from app.model.records import Execution
from app.model.states import State
from app.store.database import Store
from app.store.storage import storage_from_url

if TYPE_CHECKING:
    from conftest import Cluster

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "flows" / "hello.yaml"
HOSTNAME = socket.gethostname()
WORKER = f"w1@{HOSTNAME}"  # task runs record the Celery node name of the worker that ran them
FAN_OUT = 50
FAN_OUT_RUNS = 20

SLEEP_FLOW = """\
id: sleepy
namespace: celestra.it.cancel
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT30S
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: should never run
"""

FAIL_FLOW = """\
id: failing
namespace: celestra.it.failure
tasks:
  - id: boom
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: planned failure
  - id: never
    type: io.kestra.plugin.core.log.Log
    message: unreachable
errors:
  - id: handler
    type: io.kestra.plugin.core.log.Log
    message: "handled: {{ errorLogs()[0].message }}"
"""

RETRY_FLOW = """\
id: retrying
namespace: celestra.it.retry
tasks:
  - id: flaky
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: "always fails (attempt {{ taskrun.attemptsCount }})"
    retry:
      type: constant
      interval: PT0.2S
      maxAttempt: 3
"""

RETRY_THEN_SUCCEED_FLOW = """\
id: recovering
namespace: celestra.it.retry
tasks:
  - id: flaky
    type: io.kestra.plugin.core.execution.Fail
    condition: "{{ taskrun.attemptsCount < 2 }}"
    errorMessage: "not yet (attempt {{ taskrun.attemptsCount }})"
    retry:
      type: constant
      interval: PT0.2S
      maxAttempt: 3
  - id: next
    type: io.kestra.plugin.core.debug.Return
    format: recovered
"""

DEPLOYED_FLOW = """\
id: greeter
namespace: celestra.it.deploy
inputs:
  - id: customer
    type: STRING
tasks:
  - id: greet
    type: io.kestra.plugin.core.debug.Return
    format: "{{ greeting }}, {{ inputs.customer }}"
outputs:
  - id: text
    type: STRING
    value: "{{ outputs.greet.value }}"
"""

REQUIRED_INPUT_FLOW = """\
id: needs_input
namespace: celestra.it.inputs
inputs:
  - id: customer
    type: STRING
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "hi {{ inputs.customer }}"
"""

# Each invalid flow, the line:column the error must point at and a word naming the faulty field.
INVALID_FLOWS = {
    "unknown_property": ("""\
id: typo
namespace: celestra.it.invalid
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    mesage: a typo in a property name
""", "6:5", "tasks[0].mesage"),
    "wrong_type": ("""\
id: wrong_type
namespace: celestra.it.invalid
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: hi
    retry:
      type: constant
      maxAttempt: many
""", "9:7", "tasks[0].retry.maxAttempt"),
    "unknown_type": ("""\
id: unknown_type
namespace: celestra.it.invalid
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Logg
    message: hi
""", "4:5", "io.kestra.plugin.core.log.Logg"),
    "yaml_syntax": ("""\
id: bad_yaml
namespace: celestra.it.invalid
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
   message: badly indented
""", "6:4", "invalid YAML"),
}


def fan_out_flow(width: int) -> str:
    children = "".join(
        f"      - id: r{i:02d}\n        type: io.kestra.plugin.core.debug.Return\n        format: \"{i}\"\n"
        for i in range(width)
    )
    return ("id: fan_out\nnamespace: celestra.it.parallel\ntasks:\n  - id: fan\n"
            "    type: io.kestra.plugin.core.flow.Parallel\n    tasks:\n" + children)


def flat(text: str) -> str:
    """One line: rich may still wrap long messages on stderr."""
    return " ".join(text.split())


def parse_json_output(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """`--json` promises exactly one JSON object on stdout, nothing else."""
    assert result.stdout.count("\n") == 1, f"expected one JSON line\n{describe(result)}"
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


def describe(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def runs_by_task(ex: Execution) -> dict[str, Any]:
    return {run.task_id: run for run in ex.task_runs}


def wait_for_running_task(cluster: Cluster, execution_id: str, task_id: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ex = cluster.client.get(execution_id)
        if any(run.task_id == task_id and run.state == State.RUNNING for run in ex.task_runs):
            return
        time.sleep(0.05)
    state = cluster.client.get(execution_id).to_json()
    pytest.fail(f"task {task_id} of {execution_id} never started: {state}")


# -- hello, distributed --------------------------------------------------------------------------------------
def assert_hello_json(data: dict[str, Any]) -> None:
    assert data["state"] == "SUCCESS", data
    assert data["outputs"] == {"message": "ADA was greeted 2 times"}
    assert data["inputs"] == {"name": "Ada", "times": 2}
    assert [run["taskId"] for run in data["taskRuns"]] == ["greet", "message", "done"]
    for run in data["taskRuns"]:
        assert run["state"] == "SUCCESS", run
        assert run["worker"] == WORKER, run
        assert len(run["attempts"]) == 1, run


def test_hello_via_cli_runs_on_the_cluster(cluster: Cluster) -> None:
    result = cluster.celestra("run", "flows/hello.yaml", "--json", "-i", "name=Ada")
    assert result.returncode == 0, describe(result)
    data = parse_json_output(result)
    assert_hello_json(data)
    # The execution lives in the cluster's PostgreSQL, not in an embedded SQLite database.
    assert cluster.client.get(data["id"]).state == State.SUCCESS
    assert not (cluster.root / "home" / "celestra.db").exists()


def test_hello_via_client(cluster: Cluster) -> None:
    ex = cluster.client.run(HELLO, inputs={"name": "Ada"}, wait=True, timeout=60)
    assert_hello_json(ex.to_json())
    assert cluster.client.get(ex.id).outputs == {"message": "ADA was greeted 2 times"}


# -- invalid flows and inputs --------------------------------------------------------------------------------
@pytest.mark.parametrize("case", sorted(INVALID_FLOWS))
def test_invalid_flow_exits_2_naming_line_and_field(cluster: Cluster, case: str) -> None:
    source, position, field = INVALID_FLOWS[case]
    path = cluster.write_flow(f"invalid_{case}", source)
    result = cluster.celestra("run", path, "--json")
    assert result.returncode == 2, describe(result)
    assert result.stdout == ""
    message = flat(result.stderr)
    assert f"{path.name}:{position}" in message, message
    assert field in message, message


def test_missing_required_input_exits_2(cluster: Cluster) -> None:
    path = cluster.write_flow("needs_input", REQUIRED_INPUT_FLOW)
    result = cluster.celestra("run", path, "--json")
    assert result.returncode == 2, describe(result)
    assert "customer" in flat(result.stderr)
    assert result.stdout == ""
    # Inputs are checked before anything is stored or sent.
    assert cluster.client.executions("celestra.it.inputs", "needs_input") == []


def test_invalid_input_value_exits_2(cluster: Cluster) -> None:
    result = cluster.celestra("run", "flows/hello.yaml", "--json", "-i", "times=abc")
    assert result.returncode == 2, describe(result)
    assert "times" in flat(result.stderr)


# -- deploy and execute against PostgreSQL -------------------------------------------------------------------
def test_deploy_then_execute(cluster: Cluster) -> None:
    path = cluster.write_flow("greeter", DEPLOYED_FLOW.replace("{{ greeting }}", "Hello"))
    first = cluster.celestra("flow", "deploy", path)
    assert first.returncode == 0, describe(first)
    assert "celestra.it.deploy.greeter revision 1" in first.stdout
    again = cluster.celestra("flow", "deploy", path)
    assert "revision 1" in again.stdout, "an unchanged source must not make a new revision"
    path.write_text(DEPLOYED_FLOW.replace("{{ greeting }}", "Welcome"))
    changed = cluster.celestra("flow", "deploy", path)
    assert "celestra.it.deploy.greeter revision 2" in changed.stdout, describe(changed)

    store = Store(cluster.settings.database_url)
    try:
        assert store.get_flow("celestra.it.deploy", "greeter") == (2, path.read_text())
    finally:
        store.engine.dispose()

    result = cluster.celestra("execute", "celestra.it.deploy", "greeter", "-i", "customer=Bob", "--json")
    assert result.returncode == 0, describe(result)
    data = parse_json_output(result)
    assert data["state"] == "SUCCESS", data
    assert data["flowRevision"] == 2
    assert data["outputs"] == {"text": "Welcome, Bob"}
    assert data["taskRuns"][0]["worker"] == WORKER

    missing = cluster.celestra("execute", "celestra.it.deploy", "nope", "--json")
    assert missing.returncode == 2, describe(missing)
    assert "not deployed" in flat(missing.stderr)


# -- concurrency safety --------------------------------------------------------------------------------------
@pytest.mark.timeout(240)
def test_parallel_fan_out_is_exact_under_concurrency(cluster: Cluster) -> None:
    """50 no-op children of a Parallel on 4 worker processes, 20 executions at once: none lost or doubled."""
    source = fan_out_flow(FAN_OUT)
    expected_tasks = {"fan", *(f"r{i:02d}" for i in range(FAN_OUT))}
    started = time.monotonic()
    ids = [cluster.client.run(source, wait=False).id for _ in range(FAN_OUT_RUNS)]
    deadline = started + 120
    for execution_id in ids:
        ex = cluster.client.wait(execution_id, timeout=max(deadline - time.monotonic(), 1))
        assert ex.state == State.SUCCESS, ex.to_json()
        assert len(ex.task_runs) == FAN_OUT + 1, Counter(run.task_id for run in ex.task_runs)
        per_task = Counter(run.task_id for run in ex.task_runs)
        assert set(per_task) == expected_tasks
        assert max(per_task.values()) == 1, [task for task, n in per_task.items() if n > 1]
        assert len({run.id for run in ex.task_runs}) == FAN_OUT + 1
        fan = runs_by_task(ex)["fan"]
        for run in ex.task_runs:
            assert run.state == State.SUCCESS, run
            if run.task_id != "fan":
                assert run.parent_id == fan.id
                assert run.outputs == {"value": str(int(run.task_id[1:]))}
                assert len(run.attempts) == 1, f"{run.task_id} ran {len(run.attempts)} times"
                assert run.worker == WORKER
                assert run.ended is not None and fan.ended is not None and run.ended <= fan.ended
    print(f"{FAN_OUT_RUNS} x Parallel({FAN_OUT}) took {time.monotonic() - started:.1f}s")


# -- cancel --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("via", ["client", "cli"])
def test_cancel_kills_a_long_sleep(cluster: Cluster, via: str) -> None:
    ex = cluster.client.run(SLEEP_FLOW, wait=False)
    wait_for_running_task(cluster, ex.id, "nap")
    asked = time.monotonic()
    if via == "client":
        cluster.client.cancel(ex.id)
    else:
        result = cluster.celestra("cancel", ex.id)
        assert result.returncode == 0, describe(result)
    killed = cluster.client.wait(ex.id, timeout=15)
    took = time.monotonic() - asked
    assert killed.state == State.KILLED, killed.to_json()
    assert took < 8, f"KILLED only after {took:.1f}s"
    nap = runs_by_task(killed)["nap"]
    assert nap.state == State.KILLED
    assert nap.ended is not None and nap.started is not None
    assert (nap.ended - nap.started).total_seconds() < 15, "the Sleep was not interrupted"
    time.sleep(1)  # nothing may be dispatched late
    after = cluster.client.get(ex.id)
    assert after.state == State.KILLED
    assert [run.task_id for run in after.task_runs] == ["nap"]
    assert not any("should never run" in row["message"] for row in cluster.client.logs(ex.id))


# -- failure, errors branch, retries -------------------------------------------------------------------------
def test_failed_flow_exits_1_and_runs_errors_branch(cluster: Cluster) -> None:
    path = cluster.write_flow("failing", FAIL_FLOW)
    result = cluster.celestra("run", path, "--json")
    assert result.returncode == 1, describe(result)
    data = parse_json_output(result)
    assert data["state"] == "FAILED", data
    runs = {run["taskId"]: run for run in data["taskRuns"]}
    assert set(runs) == {"boom", "handler"}, "the task after the failure must not run"
    assert runs["boom"]["state"] == "FAILED"
    assert runs["boom"]["error"] == "planned failure"
    assert runs["handler"]["state"] == "SUCCESS"
    messages = [row["message"] for row in cluster.client.logs(data["id"])]
    assert "handled: planned failure" in messages, messages


def test_retry_records_every_attempt_then_fails(cluster: Cluster) -> None:
    ex = cluster.client.run(RETRY_FLOW, wait=True, timeout=30)
    assert ex.state == State.FAILED, ex.to_json()
    assert len(ex.task_runs) == 1
    run = ex.task_runs[0]
    assert run.state == State.FAILED
    assert [attempt.state for attempt in run.attempts] == [State.FAILED] * 3
    assert run.error == "always fails (attempt 2)"
    for previous, following in zip(run.attempts, run.attempts[1:], strict=False):
        assert previous.end is not None and following.start is not None
        assert (following.start - previous.end).total_seconds() >= 0.19, "retry interval not respected"
    errors = [row["message"] for row in cluster.client.logs(ex.id) if row["level"] == "ERROR"]
    assert errors == [f"always fails (attempt {n})" for n in range(3)]


def test_retry_then_success_continues_the_flow(cluster: Cluster) -> None:
    ex = cluster.client.run(RETRY_THEN_SUCCEED_FLOW, wait=True, timeout=30)
    assert ex.state == State.SUCCESS, ex.to_json()
    runs = runs_by_task(ex)
    attempts = [attempt.state for attempt in runs["flaky"].attempts]
    assert attempts == [State.FAILED, State.FAILED, State.SUCCESS]
    assert runs["next"].outputs == {"value": "recovered"}


# -- logs ----------------------------------------------------------------------------------------------------
def test_logs_command_prints_log_messages(cluster: Cluster) -> None:
    ex = cluster.client.run(HELLO, inputs={"name": "Ada"}, wait=True, timeout=60)
    assert ex.state == State.SUCCESS
    result = cluster.celestra("logs", ex.id)
    assert result.returncode == 0, describe(result)
    lines = result.stdout.splitlines()
    greet = next(i for i, line in enumerate(lines) if "Hello, Ada!" in line)
    done = next(i for i, line in enumerate(lines) if "ADA was greeted 2 times" in line)
    assert greet < done
    assert "greet" in lines[greet] and "INFO" in lines[greet]


def test_run_without_json_streams_logs_and_summary(cluster: Cluster) -> None:
    result = cluster.celestra("run", "flows/hello.yaml", "-i", "name=Ada")
    assert result.returncode == 0, describe(result)
    text = flat(result.stdout)
    assert text.index("Hello, Ada!") < text.index("ADA was greeted 2 times")
    assert "ended SUCCESS" in text
    assert WORKER in text, "the summary names the worker of each task run"


def test_logs_command_prints_messages_with_brackets_verbatim(cluster: Cluster) -> None:
    message = "copied [red]x[/red] to [/tmp/out] and [1, 2]"
    source = (
        "id: brackets\nnamespace: celestra.it.logs\ntasks:\n  - id: say\n"
        f"    type: io.kestra.plugin.core.log.Log\n    message: {json.dumps(message)}\n"
    )
    ex = cluster.client.run(source, wait=True, timeout=60)
    assert ex.state == State.SUCCESS
    result = cluster.celestra("logs", ex.id)
    assert result.returncode == 0, describe(result)
    assert message in result.stdout


# -- restart -------------------------------------------------------------------------------------------------------
RESTARTABLE = """\
id: restart_on_cluster
namespace: celestra.it.restart
tasks:
  - id: fan
    type: io.kestra.plugin.core.flow.ForEach
    values: ["a", "b", "c"]
    concurrencyLimit: 0
    tasks:
      - id: gate
        type: io.kestra.plugin.core.execution.Fail
        condition: "{{ taskrun.value == 'b' and kv('go') == null }}"
  - id: last
    type: io.kestra.plugin.core.debug.Return
    format: "{{ taskrun.id }}"
errors:
  - id: handler
    type: io.kestra.plugin.core.log.Log
    message: handled
"""


def test_restart_on_the_cluster_runs_only_the_failed_iteration_again(cluster: Cluster) -> None:
    """The workers' processes hold copies of the execution from before its restart, which deleted the error
    handler's run: they must read it whole again, or the handler would look done."""
    store = Store(cluster.settings.database_url)
    store.kv_delete("celestra.it.restart", "go")
    failed = cluster.client.run(RESTARTABLE, wait=True, timeout=60)
    assert failed.state == State.FAILED, failed.to_json()
    assert "handler" in runs_by_task(failed)
    store.kv_put("celestra.it.restart", "go", True)
    result = cluster.celestra("restart", failed.id)
    assert result.returncode == 0, describe(result)
    ex = cluster.client.wait(failed.id, timeout=60)
    assert ex.state == State.SUCCESS, ex.to_json()
    gates = {run.value: [a.state for a in run.attempts] for run in ex.task_runs if run.task_id == "gate"}
    assert gates == {"a": [State.SUCCESS], "b": [State.FAILED, State.SUCCESS], "c": [State.SUCCESS]}
    assert sorted(run.task_id for run in ex.task_runs) == ["fan", "gate", "gate", "gate", "last"]


LOOP_UNTIL = """\
id: polling
namespace: celestra.it.loops
tasks:
  - id: poll
    type: io.kestra.plugin.core.flow.LoopUntil
    condition: "{{ outputs.check.value == '3' }}"
    checkFrequency:
      interval: PT0.2S
      maxIterations: 10
    tasks:
      - id: fan
        type: io.kestra.plugin.core.flow.ForEach
        values: ["a", "b"]
        concurrencyLimit: 0
        tasks:
          - id: probe
            type: io.kestra.plugin.core.debug.Return
            format: "{{ taskrun.value }}{{ outputs.poll.iterationCount }}"
      - id: check
        type: io.kestra.plugin.core.debug.Return
        format: "{{ outputs.poll.iterationCount }}"
"""


def test_loop_until_runs_each_iteration_on_the_workers(cluster: Cluster) -> None:
    """Each iteration's runs are new rows at the same positions (PostgreSQL's unique position includes the
    loop round); the ForEach inside starts afresh every time."""
    ids = [cluster.client.run(LOOP_UNTIL, wait=False).id for _ in range(3)]
    for execution_id in ids:
        ex = cluster.client.wait(execution_id, timeout=60)
        assert ex.state == State.SUCCESS, ex.to_json()
        assert [r.outputs["value"] for r in ex.task_runs if r.task_id == "check"] == ["1", "2", "3"]
        probes = Counter(r.outputs["value"] for r in ex.task_runs if r.task_id == "probe")
        assert probes == Counter(f"{v}{i}" for v in "ab" for i in (1, 2, 3))
        assert {r.worker for r in ex.task_runs if r.task_id == "probe"} == {WORKER}


RETRIED_FLOW = """\
id: retried
namespace: celestra.it.retried
retry:
  behavior: CREATE_NEW_EXECUTION
  type: constant
  interval: PT0.2S
  maxAttempt: 3
tasks:
  - id: fail
    type: io.kestra.plugin.core.execution.Fail
"""


def test_a_retry_as_a_new_execution_runs_on_the_cluster(cluster: Cluster) -> None:
    """The new execution is started by a message the worker that ended the old one RETRIED sends."""
    last = cluster.client.run(RETRIED_FLOW, wait=True, timeout=60)
    assert last.state == State.FAILED and last.retry_attempt == 3, last.to_json()
    store = Store(cluster.settings.database_url)
    tries = [e for e in store.list_executions(namespace="celestra.it.retried", limit=50)
             if e.id == last.original_id or e.original_id == last.original_id]
    assert sorted((e.retry_attempt, e.state.value) for e in tries) == [(1, "RETRIED"), (2, "RETRIED"), (3, "FAILED")]


SLA_FLOW = """\
id: sla_cancel
namespace: celestra.it.sla
sla:
  - id: maxDuration
    type: MAX_DURATION
    duration: PT2S
    behavior: CANCEL
    labels:
      sla: miss
tasks:
  - id: sleepyhead
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - sleep 60
"""


def test_a_max_duration_sla_stops_the_script_on_the_worker(cluster: Cluster) -> None:
    """The server's timer ends the execution CANCELLED; the worker running the script sees it and stops it."""
    started = time.monotonic()
    ex = cluster.client.run(SLA_FLOW, wait=True, timeout=60)
    assert ex.state == State.CANCELLED and ex.labels.get("sla") == "miss", ex.to_json()
    assert time.monotonic() - started < 30
    deadline = time.monotonic() + 30
    while subprocess.run(["pgrep", "-f", "sleep 60"], capture_output=True).returncode == 0:
        assert time.monotonic() < deadline, "the script still runs on the worker"
        time.sleep(0.2)


FOR_EACH_ITEM_CHILD = """\
id: count_batch
namespace: celestra.it.items
inputs:
  - id: items
    type: STRING
tasks:
  - id: count
    type: io.kestra.plugin.core.debug.Return
    format: "{{ read(inputs.items) | trim | split('\\n') | length }}"
outputs:
  - id: lines
    type: INT
    value: "{{ outputs.count.value }}"
"""
FOR_EACH_ITEM = """\
id: batches
namespace: celestra.it.items
inputs:
  - id: file
    type: FILE
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEachItem
    items: "{{ inputs.file }}"
    batch:
      rows: 50
    namespace: celestra.it.items
    flowId: count_batch
    inputs:
      items: "{{ taskrun.items }}"
"""


def test_for_each_item_batches_run_as_subflows_on_the_cluster(cluster: Cluster, tmp_path: Path) -> None:
    """1,000 lines in 20 batches: each subflow's end is counted once by the parent, however many processes
    tell it (the ending worker, the server's recovery scan)."""
    cluster.client.deploy(FOR_EACH_ITEM_CHILD)
    items = tmp_path / "items.txt"
    items.write_text("".join(f"{i}\n" for i in range(1000)))
    ex = cluster.client.run(FOR_EACH_ITEM, {"file": str(items)}, wait=True, timeout=120)
    assert ex.state == State.SUCCESS, ex.to_json()
    [batches] = [r for r in ex.task_runs if r.task_id == "each_items"]
    assert batches.outputs == {"numberOfBatches": 20, "iterations": {"CREATED": 0, "RUNNING": 0, "SUCCESS": 20}}
    [merge] = [r for r in ex.task_runs if r.task_id == "each_merge"]
    assert merge.worker == WORKER
    storage = storage_from_url(cluster.settings.storage_url, Path(cluster.settings.resolved_storage_url))
    assert storage.get(merge.outputs["subflowOutputs"]).decode().splitlines() == ['{"lines":50}'] * 20
