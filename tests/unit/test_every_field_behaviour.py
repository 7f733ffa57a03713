"""The Kestra behaviour of properties no other test exercised, each run as a real flow on the embedded runtime (the
table of tests/unit/field_table.py names these tests)."""

from __future__ import annotations

import textwrap
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml
from test_every_field import minimal_task, task_classes

from app import runtime
from app.engine import flow_triggers
from app.model.loader import load_flow
from app.model.records import Execution, TaskRun
from app.model.states import State
from app.model.triggers import ScheduleOnDates
from app.store.tables import flows

NS = "unit.every_field"
RETURN = "io.kestra.plugin.core.debug.Return"
FAIL = "io.kestra.plugin.core.execution.Fail"
SLEEP = "io.kestra.plugin.core.flow.Sleep"
FLOW = "io.kestra.plugin.core.flow."


def flow(text: str) -> str:
    return textwrap.dedent(text).strip() + "\n"


def run(client: Any, source: str | dict[str, Any], **kwargs: Any) -> Execution:
    text = yaml.safe_dump(source, sort_keys=False) if isinstance(source, dict) else flow(source)
    return client.run(text, wait=True, timeout=60, **kwargs)


def runs(ex: Execution, task_id: str) -> list[TaskRun]:
    return [r for r in ex.task_runs if r.task_id == task_id]


def one(ex: Execution, task_id: str) -> TaskRun:
    [found] = runs(ex, task_id)  # exactly one
    return found


def logs(client: Any, ex: Execution, task_id: str) -> list[tuple[str, str]]:
    return [(row["level"], row["message"]) for row in client.logs(ex.id) if row["task_id"] == task_id]


def overlap(spans: list[tuple[datetime, datetime]]) -> int:  # the most spans open at once
    return max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans)


# -- what every task type has ------------------------------------------------------------------------------------
def test_every_task_type_disabled_is_never_run(client: Any) -> None:
    tasks = [{**minimal_task(cls, f"off_{i}"), "disabled": True} for i, cls in enumerate(task_classes())]
    ex = run(client, {"id": "all_disabled", "namespace": NS, "tasks": [*tasks, {"id": "on", "type": RETURN}]})
    assert ex.state == State.SUCCESS, ex.to_json()
    assert [r.task_id for r in ex.task_runs] == ["on"]


def test_every_task_type_with_a_false_run_if_ends_skipped_without_running(client: Any) -> None:
    tasks = [{**minimal_task(cls, f"skip_{i}"), "runIf": "{{ 1 == 2 }}"} for i, cls in enumerate(task_classes())]
    ex = run(client, {"id": "all_skipped", "namespace": NS, "tasks": tasks})
    assert ex.state == State.SUCCESS, ex.to_json()
    assert {r.task_id: r.state for r in ex.task_runs} == {t["id"]: State.SKIPPED for t in tasks}
    assert all(not r.attempts for r in ex.task_runs)


def flowables(child: dict[str, Any], **properties: Any) -> list[dict[str, Any]]:
    """Every flowable with children (and WorkingDirectory), each around its own copy of `child`."""
    def c(name: str) -> list[dict[str, Any]]:
        return [{**child, "id": f"{name}_child"}]

    return [{"id": name, "type": FLOW + kind, **body, **properties} for name, kind, body in [
        ("seq", "Sequential", {"tasks": c("seq")}), ("af", "AllowFailure", {"tasks": c("af")}),
        ("par", "Parallel", {"tasks": c("par")}), ("if", "If", {"condition": "{{ true }}", "then": c("if")}),
        ("sw", "Switch", {"value": "{{ 'a' }}", "cases": {"a": c("sw")}}),
        ("fe", "ForEach", {"values": ["v"], "tasks": c("fe")}),
        ("es", "EachSequential", {"value": ["v"], "tasks": c("es")}),
        ("ep", "EachParallel", {"value": ["v"], "tasks": c("ep")}), ("dag", "Dag", {"tasks": [{"task": c("dag")[0]}]}),
        ("wd", "WorkingDirectory", {"tasks": c("wd")}),
        ("lu", "LoopUntil", {"condition": "{{ true }}", "tasks": c("lu")})]]


def test_every_flowable_runs_its_errors_then_finally_and_may_be_allowed_to_fail(client: Any) -> None:
    tasks = [{**task, "allowFailure": True, "errors": [{"id": f"{task['id']}_errors", "type": RETURN, "format": "e"}],
              "finally": [{"id": f"{task['id']}_finally", "type": RETURN, "format": "f"}]}
             for task in flowables({"type": FAIL})]
    ex = run(client, {"id": "flowable_errors", "namespace": NS, "tasks": tasks})
    assert ex.state == State.WARNING, ex.to_json()
    for task in tasks:
        name = task["id"]
        assert one(ex, name).state == State.WARNING, name
        assert one(ex, f"{name}_child").state == State.FAILED, name
        assert one(ex, f"{name}_errors").state == State.SUCCESS, name
        assert one(ex, f"{name}_finally").state == State.SUCCESS, name
        assert one(ex, f"{name}_finally").started >= one(ex, f"{name}_errors").ended, name


def test_every_flowable_allowed_to_warn_ends_success(client: Any) -> None:
    tasks = flowables({"type": FAIL, "allowFailure": True}, allowWarning=True)
    ex = run(client, {"id": "flowable_warnings", "namespace": NS, "tasks": tasks})
    assert ex.state == State.SUCCESS, ex.to_json()
    for task in tasks:
        assert (one(ex, task["id"]).state, one(ex, f"{task['id']}_child").state) == (State.SUCCESS, State.WARNING)


def test_a_flowable_retry_runs_its_failed_children_again(client: Any) -> None:
    child = {"type": FAIL, "condition": "{{ taskrun.attemptsCount < 1 }}"}
    tasks = flowables(child, retry={"type": "constant", "interval": "PT0.01S", "maxAttempt": 2})
    ex = run(client, {"id": "flowable_retry", "namespace": NS, "tasks": tasks})
    assert ex.state == State.SUCCESS, ex.to_json()
    for task in tasks:
        assert len(one(ex, task["id"]).attempts) == 2, task["id"]
        assert [a.state for a in one(ex, f"{task['id']}_child").attempts] == [State.FAILED, State.SUCCESS]


# -- logs ----------------------------------------------------------------------------------------------------------
def test_log_levels_and_the_task_log_level_that_filters_them(client: Any) -> None:
    ex = run(client, f"""
        id: log_levels
        namespace: {NS}
        tasks:
          - {{id: warn, type: io.kestra.plugin.core.log.Log, level: WARN, message: [one, "{{{{ 1 + 1 }}}}"]}}
          - {{id: echo, type: io.kestra.plugin.core.debug.Echo, level: ERROR, format: "echo {{{{ flow.id }}}}"}}
          - {{id: filtered, type: io.kestra.plugin.core.log.Log, logLevel: WARN, message: dropped}}
          - {{id: kept, type: io.kestra.plugin.core.log.Log, logLevel: WARN, level: ERROR, message: kept}}
        """)
    assert ex.state == State.SUCCESS, ex.to_json()
    assert logs(client, ex, "warn") == [("WARN", "one"), ("WARN", "2")]
    assert logs(client, ex, "echo") == [("ERROR", "echo log_levels")]
    assert logs(client, ex, "filtered") == []
    assert logs(client, ex, "kept") == [("ERROR", "kept")]


# -- retry ---------------------------------------------------------------------------------------------------------
def test_warning_on_retry_max_attempts_the_flow_retry_and_allow_warning(client: Any) -> None:
    flaky = {"type": FAIL, "condition": "{{ taskrun.attemptsCount < 1 }}"}
    ex = run(client, {"id": "retry_options", "namespace": NS, "retry": {
        "type": "constant", "interval": "PT0.01S", "maxAttempt": 2}, "tasks": [
        {"id": "warned", **flaky, "retry": {"type": "constant", "interval": "PT0.01S", "maxAttempts": 3,
                                            "warningOnRetry": True}},
        {"id": "three", "type": FAIL, "allowFailure": True, "retry": {"type": "constant", "interval": "PT0.01S",
                                                                      "maxAttempts": 3}},
        {"id": "by_flow", **flaky},
        {"id": "tolerated", "type": FAIL, "allowFailure": True, "allowWarning": True,
         "retry": {"type": "constant"}}]})  # a retry without maxAttempt or maxDuration: none
    assert ex.state == State.WARNING, ex.to_json()
    assert one(ex, "tolerated").state == State.SUCCESS  # FAILED, allowed to fail: WARNING, allowed to warn: SUCCESS
    assert (one(ex, "warned").state, len(one(ex, "warned").attempts)) == (State.WARNING, 2)
    assert len(one(ex, "three").attempts) == 3
    assert [a.state for a in one(ex, "by_flow").attempts] == [State.FAILED, State.SUCCESS]  # the flow's retry


def test_max_duration_bounds_the_retries_and_random_waits_between_its_bounds(client: Any) -> None:
    ex = run(client, {"id": "retry_durations", "namespace": NS, "tasks": [
        {"id": "bounded", "type": FAIL, "allowFailure": True,
         "retry": {"type": "constant", "interval": "PT0.3S", "maxDuration": "PT1S"}},
        {"id": "random", "type": FAIL, "allowFailure": True,
         "retry": {"type": "random", "minInterval": "PT0.2S", "maxInterval": "PT0.4S", "maxAttempt": 3}}]})
    bounded, rand = one(ex, "bounded"), one(ex, "random")
    assert 2 <= len(bounded.attempts) <= 4  # retried without maxAttempt, until a next one would pass maxDuration
    assert bounded.attempts[-1].start - bounded.attempts[0].start < timedelta(seconds=1.5)
    gaps = [(b.start - a.end).total_seconds() for a, b in zip(rand.attempts, rand.attempts[1:], strict=False)]
    assert len(rand.attempts) == 3 and all(0.2 - 0.005 <= gap < 0.4 + 0.4 for gap in gaps), gaps  # 0.4: latency


# -- flow properties -----------------------------------------------------------------------------------------------
def test_flow_variables_labels_as_a_list_and_descriptions(client: Any) -> None:
    source = flow(f"""
        id: variables_labels
        namespace: {NS}
        description: what this flow is for
        labels:
          - key: team
            value: data
        variables:
          greeting: hello
          nested: {{who: [Ada]}}
        inputs:
          - {{id: n, type: INT, defaults: 1, description: how many}}
        tasks:
          - id: use
            type: {RETURN}
            description: says hello
            format: "{{{{ vars.greeting }}}} {{{{ vars.nested.who[0] }}}}"
        outputs:
          - {{id: said, type: STRING, value: "{{{{ outputs.use.value }}}}", description: what was said}}
        triggers:
          - {{id: a, type: io.kestra.plugin.core.trigger.Schedule, cron: "@daily", description: nightly}}
          - {{id: b, type: io.kestra.plugin.core.trigger.ScheduleOnDates, dates: ["2030-01-01T00:00:00Z"],
             description: once}}
          - {{id: c, type: io.kestra.plugin.core.trigger.Flow, description: after others, conditions: [
               {{type: io.kestra.plugin.core.condition.ExecutionFlow, namespace: {NS}, flowId: never_runs}}]}}
        """)
    loaded = load_flow(source)  # descriptions are documentation: kept as written, and change nothing of a run
    assert (loaded.description, loaded.tasks[0].description, loaded.inputs[0].description,
            loaded.outputs[0].description) == ("what this flow is for", "says hello", "how many", "what was said")
    assert [t.description for t in loaded.triggers] == ["nightly", "once", "after others"]
    ex = run(client, source)
    assert ex.state == State.SUCCESS, ex.to_json()
    assert one(ex, "use").outputs == {"value": "hello Ada"} and ex.outputs == {"said": "hello Ada"}
    assert ex.labels == {"team": "data"}


# -- Subflow -------------------------------------------------------------------------------------------------------
def child_flow(flow_id: str, body: str) -> str:
    return flow(f"""
        id: {flow_id}
        namespace: {NS}
        labels: {{own: child}}
        inputs:
          - {{id: fail, type: BOOLEAN, defaults: false}}
          - {{id: warn, type: BOOLEAN, defaults: false}}
        tasks:
          - {{id: body, type: {FAIL}, condition: "{{{{ inputs.fail }}}}", errorMessage: "{body}"}}
          - {{id: shaky, type: {FAIL}, condition: "{{{{ inputs.warn }}}}", allowFailure: true}}
          - {{id: said, type: {RETURN}, format: "{body}"}}
        outputs:
          - {{id: said, type: STRING, value: "{{{{ outputs.said.value }}}}"}}
        """)


def test_subflow_wait_transmit_failed_labels_revision_and_retry(client: Any) -> None:
    name = f"child_{uuid.uuid4().hex[:6]}"
    assert client.deploy(child_flow(name, "first"))["revision"] == 1
    assert client.deploy(child_flow(name, "second"))["revision"] == 2
    call = {"type": FLOW + "Subflow", "namespace": NS, "flowId": name}
    ex = run(client, {"id": "subflow_options", "namespace": NS, "labels": {"parent": "p"}, "tasks": [
        {"id": "v1", **call, "revision": 1},
        {"id": "latest", **call, "inheritLabels": True, "labels": {"extra": "{{ flow.id }}"}},
        {"id": "tolerated", **call, "inputs": {"fail": True}, "transmitFailed": False},
        {"id": "retried", **call, "inputs": {"fail": True}, "allowFailure": True,
         "retry": {"type": "constant", "interval": "PT0.01S", "maxAttempt": 2}},
        {"id": "warned", **call, "inputs": {"warn": True}, "allowWarning": True},
        {"id": "fire_and_forget", **call, "wait": False}]})
    assert ex.state == State.WARNING, ex.to_json()
    assert one(ex, "v1").outputs["outputs"] == {"said": "first"}
    assert one(ex, "latest").outputs["outputs"] == {"said": "second"}
    assert client.get(one(ex, "latest").outputs["executionId"]).labels == {
        "own": "child", "parent": "p", "extra": "subflow_options"}
    assert client.get(one(ex, "v1").outputs["executionId"]).labels == {"own": "child"}
    assert one(ex, "tolerated").state == State.SUCCESS  # the child failed; transmitFailed: false hides it
    assert client.get(one(ex, "tolerated").outputs["executionId"]).state == State.FAILED
    assert one(ex, "warned").state == State.SUCCESS  # the child ended WARNING
    assert [a.state for a in one(ex, "retried").attempts] == [State.FAILED, State.WARNING]
    deadline = time.monotonic() + 10  # the last child may start a moment after its parent ended (wait: false)
    while len(children := [e for e in client.executions(namespace=NS, flow_id=name)
                           if e.parent_execution_id == ex.id]) < 7 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(children) == 7  # the retried one started two
    forgotten = one(ex, "fire_and_forget")  # ended at once, before its child did
    assert forgotten.state == State.SUCCESS and "outputs" not in forgotten.outputs
    [child] = [e for e in children if e.parent_task_run_id == forgotten.id]
    assert client.wait(child.id, timeout=30).state == State.SUCCESS


# -- kv ------------------------------------------------------------------------------------------------------------
def test_kv_namespace_overwrite_ttl_and_delete(client: Any) -> None:
    other = f"{NS}.kv_{uuid.uuid4().hex[:6]}"
    ex = run(client, f"""
        id: kv_options
        namespace: {NS}
        tasks:
          - {{id: put, type: io.kestra.plugin.core.kv.Set, namespace: {other}, key: k, value: one}}
          - {{id: short, type: io.kestra.plugin.core.kv.Set, namespace: {other}, key: brief, value: x, ttl: PT0.05S}}
          - {{id: again, type: io.kestra.plugin.core.kv.Set, namespace: {other}, key: k, value: two, overwrite: false,
             allowFailure: true}}
          - {{id: get, type: io.kestra.plugin.core.kv.Get, namespace: {other}, key: k}}
          - {{id: nap, type: {SLEEP}, duration: PT0.1S}}
          - {{id: expired, type: io.kestra.plugin.core.kv.Get, namespace: {other}, key: brief}}
          - {{id: delete, type: io.kestra.plugin.core.kv.Delete, namespace: {other}, key: k}}
          - {{id: gone, type: io.kestra.plugin.core.kv.Delete, namespace: {other}, key: k}}
          - {{id: strict, type: io.kestra.plugin.core.kv.Delete, namespace: {other}, key: k, errorOnMissing: true}}
        """)
    assert ex.state == State.FAILED, ex.to_json()
    assert one(ex, "again").state == State.WARNING and "already exists" in (one(ex, "again").error or "")
    assert one(ex, "get").outputs == {"value": "one"}  # not overwritten
    assert one(ex, "expired").outputs == {"value": None}
    assert (one(ex, "delete").outputs, one(ex, "gone").outputs) == ({"deleted": True}, {"deleted": False})
    assert one(ex, "strict").state == State.FAILED and "does not exist" in (one(ex, "strict").error or "")
    assert runtime.store().kv_get(NS, "k") is None  # all of it in the other namespace


# -- loops and Dag concurrency -------------------------------------------------------------------------------------
def test_each_sequential_each_parallel_and_dag_concurrency(client: Any) -> None:
    nap, dag_ids = {"type": SLEEP, "duration": "PT0.2S"}, ("dag_0", "dag_1", "dag_2")
    ex = run(client, {"id": "fan_outs", "namespace": NS, "tasks": [
        {"id": "es", "type": FLOW + "EachSequential", "value": '["a", "b", "c"]', "tasks": [{"id": "es_nap", **nap}]},
        {"id": "ep", "type": FLOW + "EachParallel", "value": ["a", "b", "c", "d"], "concurrent": 2,
         "tasks": [{"id": "ep_nap", **nap}]},
        {"id": "ep_all", "type": FLOW + "EachParallel", "value": ["a", "b", "c"], "tasks": [{"id": "all_nap", **nap}]},
        {"id": "dag", "type": FLOW + "Dag", "concurrent": 1, "tasks": [
            {"task": {"id": t, **nap}} for t in dag_ids]}]})
    assert ex.state == State.SUCCESS, ex.to_json()
    spans = {t: [(r.started, r.ended) for r in runs(ex, t)] for t in ("es_nap", "ep_nap", "all_nap", *dag_ids)}
    assert all(e - s >= timedelta(seconds=0.2) for s, e in spans["es_nap"])  # each Sleep lasts its duration
    assert sorted(r.value for r in runs(ex, "es_nap")) == ["a", "b", "c"] and overlap(spans["es_nap"]) == 1
    assert len(runs(ex, "ep_nap")) == 4 and overlap(spans["ep_nap"]) <= 2
    assert overlap(spans["all_nap"]) >= 2  # concurrent 0: every value at once
    assert overlap([span for t in dag_ids for span in spans[t]]) == 1


# -- scripts -------------------------------------------------------------------------------------------------------
def test_script_types_interpreter_and_fail_fast_off(client: Any) -> None:
    out = '::{"outputs": {"who": "%s"}}::'
    ex = run(client, {"id": "script_types", "namespace": NS, "tasks": [
        {"id": "node_cmd", "type": "io.kestra.plugin.scripts.node.Commands",
         "commands": [f"node -e 'console.log(process.argv[1])' '{out % 'node'}'"]},
        {"id": "node_script", "type": "io.kestra.plugin.scripts.node.Script",
         "script": f"console.log('{out % 'node script'}')"},
        {"id": "sh_script", "type": "io.kestra.plugin.scripts.shell.Script", "script": f"echo '{out % 'sh'}'"},
        {"id": "py_cmd", "type": "io.kestra.plugin.scripts.python.Commands",
         "commands": ["python3 -c 'import json; print(\"::\" + json.dumps({\"outputs\": {\"who\": \"py\"}}) + "
                      "\"::\")'"]},
        {"id": "bash", "type": "io.kestra.plugin.scripts.shell.Commands", "interpreter": ["/bin/bash", "-c"],
         "commands": [f"[[ -n $BASH_VERSION ]] && echo '{out % 'bash'}'"]},
        {"id": "go_on", "type": "io.kestra.plugin.scripts.shell.Commands", "failFast": False,
         "commands": ["false", "echo after-false"]}]})
    assert ex.state == State.SUCCESS, ex.to_json()
    assert [one(ex, t).outputs["vars"]["who"] for t in ("node_cmd", "node_script", "sh_script", "py_cmd", "bash")] \
        == ["node", "node script", "sh", "py", "bash"]
    assert ("INFO", "after-false") in logs(client, ex, "go_on")


# -- triggers ------------------------------------------------------------------------------------------------------
def test_flow_trigger_states_conditions_and_disabled_triggers_and_flows(client: Any) -> None:
    ns = f"{NS}.trig{uuid.uuid4().hex[:6]}"
    watch, cond = {"type": "io.kestra.plugin.core.trigger.Flow"}, "io.kestra.plugin.core.condition.Execution"
    triggers = {
        "on_warning": {**watch, "states": ["WARNING"], "conditions": [{"type": cond + "Namespace", "namespace": ns}]},
        "not_failed": {**watch, "conditions": [{"type": cond + "Status", "notIn": ["FAILED"]},
                                               {"type": cond + "Namespace", "namespace": ns, "prefix": True}]},
        "suffix": {**watch, "conditions": [{"type": cond + "Namespace", "namespace": ns[-8:], "comparison": "SUFFIX"}]},
        "off": {**watch, "disabled": True, "conditions": [{"type": cond + "Namespace", "namespace": ns}]}}
    for name, trigger in [*triggers.items(), ("flow_off", triggers["suffix"])]:  # in a disabled flow
        client.deploy(yaml.safe_dump({"id": name, "namespace": ns, "disabled": name == "flow_off", "tasks": [
            {"id": "t", "type": RETURN}], "triggers": [{"id": "watch", **trigger}]}))
    flow_triggers.deployed_flows.forget_listing()
    try:
        def fired(namespace: str, state: State) -> set[str]:
            ended = Execution(id="x", namespace=namespace, flow_id="upstream", flow_revision=1, flow_source=None,
                              inputs={}, state=state)
            return {d.flow_id for d, _ in flow_triggers.watchers(ended) if d.namespace == ns}

        assert fired(ns, State.WARNING) == {"on_warning", "not_failed", "suffix"}
        assert fired(ns, State.SUCCESS) == {"not_failed", "suffix"}
        assert fired(ns, State.FAILED) == {"suffix"}
        assert fired(ns + ".sub", State.SUCCESS) == {"not_failed"}  # prefix: the namespace or one below it
    finally:
        with runtime.store().begin() as conn:
            conn.execute(flows.delete().where(flows.c.namespace == ns))
        flow_triggers.deployed_flows.forget_listing()


def test_schedule_on_dates_reads_dates_without_an_offset_in_its_time_zone() -> None:
    trigger = ScheduleOnDates(id="d", type="io.kestra.plugin.core.trigger.ScheduleOnDates", timezone="Europe/Paris",
                              dates=["2026-07-01T10:00:00"])
    assert trigger.next_after(datetime(2026, 7, 1, tzinfo=UTC)) == datetime(2026, 7, 1, 8, tzinfo=UTC)
