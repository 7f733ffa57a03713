"""The executor step on its own: a flow and the task runs that exist go in, decisions come out.

No Celery, no database, no clock: each test builds an execution in memory, runs `Step`, plays the workers' part by
ending the dispatched runs, and steps again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from app.engine.routing import Route
from app.engine.step import Step, StepResult
from app.engine.variables import outputs_tree
from app.model.flow import Flow, Task
from app.model.loader import load_flow
from app.model.records import Execution, TaskRun
from app.model.states import State

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
RETURN = "io.kestra.plugin.core.debug.Return"


def flow(text: str) -> Flow:
    return load_flow("id: f\nnamespace: company.team\n" + text)


def execution(inputs: dict[str, Any] | None = None) -> Execution:
    return Execution(id="ex1", namespace="company.team", flow_id="f", flow_revision=1, flow_source=None,
                     inputs=inputs or {})


def step(f: Flow, ex: Execution, *, now: datetime = NOW, route: Any = None, alive: Any = None) -> StepResult:
    def context(run: TaskRun | None, task: Task | None) -> dict[str, Any]:
        return {"inputs": ex.inputs, "outputs": outputs_tree(ex.task_runs), "vars": f.variables,
                "taskrun": {"value": run.value} if run else {}}

    return Step(f, ex, now, context, route, alive).run()


def finish(run: TaskRun, state: State = State.SUCCESS, **outputs: Any) -> None:
    """What a worker's finish_attempt records."""
    run.state, run.ended, run.outputs = state, NOW, outputs


def ids(runs: list[TaskRun]) -> list[str]:
    return [run.task_id for run in runs]


SEQUENTIAL = f"""
inputs:
  - id: name
    type: STRING
tasks:
  - id: a
    type: {RETURN}
    format: "{{{{ inputs.name }}}}"
  - id: b
    type: {RETURN}
    format: "{{{{ outputs.a.value }}}}!"
outputs:
  - id: shout
    type: STRING
    value: "{{{{ outputs.b.value }}}}"
"""


def test_a_sequential_flow_starts_one_task_at_a_time_and_ends_with_its_outputs() -> None:
    f, ex = flow(SEQUENTIAL), execution({"name": "Ada"})
    first = step(f, ex)
    assert ex.state == State.RUNNING and ex.started == NOW
    assert ids(first.created) == ids(first.dispatch) == ["a"]
    finish(first.dispatch[0], value="Ada")
    second = step(f, ex)
    assert ids(second.dispatch) == ["b"] and ex.state == State.RUNNING
    finish(second.dispatch[0], value="Ada!")
    last = step(f, ex)
    assert last.ended and not last.dispatch
    assert ex.state == State.SUCCESS and ex.outputs == {"shout": "Ada!"}


def test_a_replayed_step_creates_and_sends_nothing_twice() -> None:
    f, ex = flow(SEQUENTIAL), execution({"name": "Ada"})
    assert ids(step(f, ex).created) == ["a"]
    again = step(f, ex)
    assert again.created == [] and again.dispatch == []
    assert len(ex.task_runs) == 1


def test_parallel_starts_up_to_its_concurrency_limit() -> None:
    f = flow(f"""
tasks:
  - id: fan
    type: io.kestra.plugin.core.flow.Parallel
    concurrent: 2
    tasks:
      - {{id: p1, type: {RETURN}, format: x}}
      - {{id: p2, type: {RETURN}, format: x}}
      - {{id: p3, type: {RETURN}, format: x}}
""")
    ex = execution()
    first = step(f, ex)
    assert ids(first.created) == ["fan", "p1", "p2"] and ids(first.dispatch) == ["p1", "p2"]
    finish(first.dispatch[0])
    second = step(f, ex)
    assert ids(second.dispatch) == ["p3"]
    for run in ex.task_runs:
        if run.task_id != "fan":
            finish(run)
    step(f, ex)
    assert ex.state == State.SUCCESS
    assert next(r for r in ex.task_runs if r.task_id == "fan").state == State.SUCCESS


def test_for_each_creates_one_run_per_value_carrying_the_value() -> None:
    f = flow(f"""
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["x", "y", 3]
    concurrencyLimit: 0
    tasks:
      - {{id: item, type: {RETURN}, format: "{{{{ taskrun.value }}}}"}}
""")
    ex = execution()
    result = step(f, ex)
    assert [(run.task_id, run.value) for run in result.dispatch] == [("item", "x"), ("item", "y"), ("item", "3")]
    assert {run.iteration for run in result.dispatch} == {0, 1, 2}


def test_a_failure_runs_errors_then_finally_and_fails_the_execution() -> None:
    f = flow(f"""
tasks:
  - {{id: work, type: {RETURN}, format: x}}
  - {{id: never, type: {RETURN}, format: x}}
errors:
  - {{id: alert, type: {RETURN}, format: x}}
finally:
  - {{id: cleanup, type: {RETURN}, format: x}}
""")
    ex = execution()
    finish(step(f, ex).dispatch[0], State.FAILED)
    handler = step(f, ex)
    assert ids(handler.dispatch) == ["alert"]
    finish(handler.dispatch[0])
    cleanup = step(f, ex)
    assert ids(cleanup.dispatch) == ["cleanup"]
    finish(cleanup.dispatch[0])
    step(f, ex)
    assert ex.state == State.FAILED
    assert "never" not in ids(ex.task_runs)


def test_if_takes_the_branch_its_condition_renders_to() -> None:
    f = flow(f"""
inputs:
  - {{id: go, type: BOOLEAN}}
tasks:
  - id: choose
    type: io.kestra.plugin.core.flow.If
    condition: "{{{{ inputs.go }}}}"
    then:
      - {{id: on_true, type: {RETURN}, format: x}}
    else:
      - {{id: on_false, type: {RETURN}, format: x}}
""")
    assert ids(step(f, execution({"go": True})).dispatch) == ["on_true"]
    assert ids(step(f, execution({"go": False})).dispatch) == ["on_false"]


def test_a_template_error_in_a_flowable_fails_it_with_the_reason() -> None:
    f = flow("""
tasks:
  - id: choose
    type: io.kestra.plugin.core.flow.If
    condition: "{{ vars.nope }}"
    then:
      - {id: on_true, type: io.kestra.plugin.core.debug.Return, format: x}
""")
    ex = execution()
    result = step(f, ex)
    assert ex.state == State.FAILED
    [(run, level, message)] = result.logs
    assert run.task_id == "choose" and level == "ERROR" and "nope" in message


def test_the_route_sends_a_run_to_its_group_and_the_fallback_applies_when_none_is_alive() -> None:
    f = flow(f"tasks:\n  - {{id: a, type: {RETURN}, format: x}}\n")
    to_gpu = step(f, execution(), route=lambda task, run: Route("gpu"), alive=lambda group: True)
    assert [run.worker_group for run in to_gpu.dispatch] == ["gpu"]

    ex = execution()
    failed = step(f, ex, route=lambda task, run: Route("gpu", "FAIL"), alive=lambda group: False)
    assert failed.dispatch == [] and ex.state == State.FAILED
    assert "gpu" in ex.task_runs[0].error

    ex = execution()
    step(f, ex, route=lambda task, run: Route("gpu", "CANCEL"), alive=lambda group: False)
    assert ex.task_runs[0].state == State.KILLED and ex.state in (State.KILLING, State.KILLED)

    ex = execution()
    waiting = step(f, ex, route=lambda task, run: Route("gpu", "WAIT"), alive=lambda group: False)
    assert ids(waiting.dispatch) == ["a"] and ex.state == State.RUNNING  # sent; it starts when a worker comes up


def test_a_retry_whose_delay_passed_is_sent_again() -> None:
    f = flow(f"tasks:\n  - {{id: a, type: {RETURN}, format: x}}\n")
    ex = execution()
    [run] = step(f, ex).dispatch
    run.state, run.next_at = State.RETRYING, NOW + timedelta(seconds=5)
    assert step(f, ex, now=NOW + timedelta(seconds=1)).dispatch == []
    again = step(f, ex, now=NOW + timedelta(seconds=5))
    assert again.dispatch == [run] and run.state == State.CREATED


def test_killing_ends_what_has_not_started_and_then_the_execution() -> None:
    f = flow(f"""
tasks:
  - id: fan
    type: io.kestra.plugin.core.flow.Parallel
    concurrent: 1
    tasks:
      - {{id: p1, type: {RETURN}, format: x}}
      - {{id: p2, type: {RETURN}, format: x}}
""")
    ex = execution()
    [running] = step(f, ex).dispatch
    running.state = State.RUNNING
    ex.state = State.KILLING
    step(f, ex)
    assert ex.state == State.KILLING  # p1 is still running on a worker
    finish(running, State.KILLED)
    step(f, ex)
    assert ex.state == State.KILLED and "p2" not in ids(ex.task_runs)


def test_flow_outputs_that_cannot_render_fail_the_execution_naming_them() -> None:
    f = flow(f"""
tasks:
  - {{id: a, type: {RETURN}, format: x}}
outputs:
  - {{id: o, type: INT, value: "not a number"}}
""")
    ex = execution()
    finish(step(f, ex).dispatch[0], value="x")
    step(f, ex)
    assert ex.state == State.FAILED and "Output 'o'" in (ex.error or "")

