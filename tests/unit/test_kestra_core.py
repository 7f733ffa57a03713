"""Kestra core properties that change what runs, each with Kestra's semantics (issue: every accepted property does
what Kestra does, or the flow is refused)."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from app.errors import FlowValidationError
from app.model.states import State

RETURN = "io.kestra.plugin.core.debug.Return"
FAIL = "io.kestra.plugin.core.execution.Fail"


def flow(text: str) -> str:
    return textwrap.dedent(text).strip() + "\n"


def states(ex: Any) -> dict[str, State]:
    return {run.task_id: run.state for run in ex.task_runs}


# -- runIf ---------------------------------------------------------------------------------------------------------
RUN_IF = flow(f"""
    id: run_if
    namespace: core
    inputs:
      - id: go
        type: BOOLEAN
        defaults: false
    tasks:
      - id: maybe
        type: {RETURN}
        format: ran
        runIf: "{{{{ inputs.go }}}}"
      - id: maybe_flowable
        type: io.kestra.plugin.core.flow.Sequential
        runIf: "{{{{ inputs.go }}}}"
        tasks:
          - id: inside
            type: {RETURN}
            format: inside
      - id: never
        type: {FAIL}
        runIf: false
      - id: after
        type: {RETURN}
        format: "{{{{ outputs.maybe.value ?? 'skipped' }}}}"
    """)


def test_a_false_run_if_skips_the_task_and_the_flow_goes_on(client: Any) -> None:
    ex = client.run(RUN_IF, wait=True, timeout=30)
    assert ex.state == State.SUCCESS, ex.to_json()
    assert states(ex) == {"maybe": State.SKIPPED, "maybe_flowable": State.SKIPPED, "never": State.SKIPPED,
                          "after": State.SUCCESS}
    after = next(r for r in ex.task_runs if r.task_id == "after")
    assert after.outputs["value"] == "skipped"
    assert all(not r.attempts for r in ex.task_runs if r.state == State.SKIPPED)  # nothing ran


def test_a_true_run_if_runs_the_task(client: Any) -> None:
    ex = client.run(RUN_IF, {"go": True}, wait=True, timeout=30)
    assert ex.state == State.SUCCESS, ex.to_json()
    assert states(ex) == {"maybe": State.SUCCESS, "maybe_flowable": State.SUCCESS, "inside": State.SUCCESS,
                          "never": State.SKIPPED, "after": State.SUCCESS}
    assert next(r for r in ex.task_runs if r.task_id == "after").outputs["value"] == "ran"


def test_a_run_if_that_cannot_render_fails_the_task_saying_why(client: Any) -> None:
    ex = client.run(flow(f"""
        id: run_if_broken
        namespace: core
        tasks:
          - id: broken
            type: {RETURN}
            format: x
            runIf: "{{{{ inputs.missing }}}}"
        """), wait=True, timeout=30)
    assert ex.state == State.FAILED
    [run] = ex.task_runs
    assert run.state == State.FAILED and run.error is not None and run.error.startswith("runIf:")
    assert "missing" in run.error


# -- allowFailure and allowWarning on flowables and subflows -----------------------------------------------------
FAILING_CHILD = flow(f"""
    id: failing_child
    namespace: core
    tasks:
      - id: boom
        type: {FAIL}
        errorMessage: child broke
    """)


def test_a_subflow_allowed_to_fail_ends_warning_and_the_flow_goes_on(client: Any) -> None:
    client.deploy(FAILING_CHILD)
    ex = client.run(flow(f"""
        id: tolerant_parent
        namespace: core
        tasks:
          - id: call
            type: io.kestra.plugin.core.flow.Subflow
            namespace: core
            flowId: failing_child
            allowFailure: true
          - id: after
            type: {RETURN}
            format: went on
        """), wait=True, timeout=30)
    assert ex.state == State.WARNING, ex.to_json()
    assert states(ex) == {"call": State.WARNING, "after": State.SUCCESS}
    assert client.get(next(r for r in ex.task_runs if r.task_id == "call").outputs["executionId"]).state == \
        State.FAILED


def test_a_missing_subflow_allowed_to_fail_ends_warning(client: Any) -> None:
    ex = client.run(flow(f"""
        id: tolerant_missing
        namespace: core
        tasks:
          - id: call
            type: io.kestra.plugin.core.flow.Subflow
            namespace: core
            flowId: no_such_flow
            allowFailure: true
          - id: after
            type: {RETURN}
            format: went on
        """), wait=True, timeout=30)
    assert ex.state == State.WARNING, ex.to_json()
    assert states(ex) == {"call": State.WARNING, "after": State.SUCCESS}


def test_allow_warning_turns_a_flowable_warning_into_success(client: Any) -> None:
    ex = client.run(flow(f"""
        id: warning_allowed
        namespace: core
        tasks:
          - id: group
            type: io.kestra.plugin.core.flow.Sequential
            allowWarning: true
            tasks:
              - id: tolerated
                type: {FAIL}
                allowFailure: true
        """), wait=True, timeout=30)
    assert ex.state == State.SUCCESS, ex.to_json()
    assert states(ex) == {"group": State.SUCCESS, "tolerated": State.WARNING}


# -- Pause: behavior when its pauseDuration elapses, timeout, a resume before it -----------------------------------
def pause_flow(flow_id: str, pause: str) -> str:
    return flow(f"""
        id: {flow_id}
        namespace: core
        tasks:
          - id: pause
            type: io.kestra.plugin.core.flow.Pause
            {pause}
          - id: after
            type: {RETURN}
            format: went on
        errors:
          - id: on_error
            type: {RETURN}
            format: handled
        """)


@pytest.mark.parametrize(("behavior", "execution", "pause", "ran"), [
    ("RESUME", State.SUCCESS, State.SUCCESS, {"after"}),
    ("WARN", State.WARNING, State.WARNING, {"after"}),
    ("FAIL", State.FAILED, State.FAILED, {"on_error"}),
    ("CANCEL", State.CANCELLED, State.CANCELLED, set()),
])
def test_a_pause_that_reaches_its_duration_ends_as_its_behavior_says(
        client: Any, behavior: str, execution: State, pause: State, ran: set[str]) -> None:
    ex = client.run(pause_flow(f"pause_{behavior.lower()}", f"pauseDuration: PT0.2S\n            behavior: {behavior}"),
                    wait=True, timeout=30)
    assert ex.state == execution, ex.to_json()
    assert states(ex)["pause"] == pause
    assert set(states(ex)) - {"pause"} == ran
    [run] = [r for r in ex.task_runs if r.task_id == "pause"]
    assert run.attempts[-1].state == pause and run.ended is not None


def test_a_pause_with_a_timeout_and_no_duration_fails_when_it_passes(client: Any) -> None:
    ex = client.run(pause_flow("pause_timeout", "timeout: PT0.2S"), wait=True, timeout=30)
    assert ex.state == State.FAILED, ex.to_json()
    assert states(ex) == {"pause": State.FAILED, "on_error": State.SUCCESS}
    assert "timeout" in (next(r for r in ex.task_runs if r.task_id == "pause").error or "")


def test_a_pause_resumed_before_its_duration_succeeds_whatever_its_behavior(client: Any) -> None:
    import time

    ex = client.run(pause_flow("pause_resumed", "pauseDuration: PT60S\n            behavior: FAIL"), wait=False)
    deadline = time.monotonic() + 30
    while client.get(ex.id).state != State.PAUSED:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert client.resume(ex.id) is True
    ended = client.wait(ex.id, timeout=30)
    assert ended.state == State.SUCCESS, ended.to_json()
    assert states(ended) == {"pause": State.SUCCESS, "after": State.SUCCESS}


def test_on_resume_inputs_are_validated_and_become_the_pause_outputs(client: Any) -> None:
    import time

    from app.model.inputs import InputError

    ex = client.run(flow(f"""
        id: approval
        namespace: core
        tasks:
          - id: wait_for_approval
            type: io.kestra.plugin.core.flow.Pause
            onResume:
              - id: approved
                type: BOOLEAN
                defaults: true
              - id: reason
                type: STRING
          - id: log
            type: {RETURN}
            format: "{{{{ outputs.wait_for_approval.onResume.approved }}}}: {{{{
              outputs.wait_for_approval.onResume.reason }}}}"
        """), wait=False)
    deadline = time.monotonic() + 30
    while client.get(ex.id).state != State.PAUSED:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    with pytest.raises(InputError, match="reason"):
        client.resume(ex.id, {})
    assert client.get(ex.id).state == State.PAUSED  # a wrong resume changes nothing
    assert client.resume(ex.id, {"reason": "well deserved"}) is True
    ended = client.wait(ex.id, timeout=30)
    assert ended.state == State.SUCCESS, ended.to_json()
    runs = {r.task_id: r for r in ended.task_runs}
    assert runs["wait_for_approval"].outputs == {"onResume": {"approved": True, "reason": "well deserved"}}
    assert runs["log"].outputs["value"] == "true: well deserved"


def test_a_secret_on_resume_input_is_refused(client: Any) -> None:
    with pytest.raises(FlowValidationError, match="SECRET inputs in onResume are not supported yet"):
        client.validate(pause_flow("secret_resume",
                                   "onResume:\n              - id: token\n                type: SECRET"))


# -- WorkingDirectory files ----------------------------------------------------------------------------------------
def test_a_working_directory_starts_with_its_input_and_namespace_files_and_keeps_its_output_files(
        client: Any, tmp_path: Any) -> None:
    folder = tmp_path / "ns"
    (folder / "conf").mkdir(parents=True)
    (folder / "conf" / "settings.ini").write_text("mode=fast\n")
    (folder / "skip.txt").write_text("not copied\n")
    client.upload_namespace_files("core.files", folder)
    ex = client.run(flow("""
        id: wd_files
        namespace: core.files
        inputs:
          - id: who
            type: STRING
            defaults: world
        tasks:
          - id: wd
            type: io.kestra.plugin.core.flow.WorkingDirectory
            namespaceFiles:
              enabled: true
              include: ["conf/*"]
            inputFiles:
              hello.txt: "hello {{ inputs.who }}"
            outputFiles: ["*.out"]
            tasks:
              - id: use
                type: io.kestra.plugin.scripts.shell.Commands
                commands:
                  - cat hello.txt conf/settings.ini > result.out
                  - test ! -e skip.txt
        """), wait=True, timeout=60)
    assert ex.state == State.SUCCESS, ex.to_json()
    wd = next(r for r in ex.task_runs if r.task_id == "wd")
    assert set(wd.outputs["outputFiles"]) == {"result.out"}
    assert client.download(wd.outputs["outputFiles"]["result.out"]) == b"hello worldmode=fast\n"


def test_script_tasks_in_a_working_directory_share_its_folder(client: Any) -> None:
    ex = client.run(flow("""
        id: wd_shared
        namespace: core
        tasks:
          - id: wd
            type: io.kestra.plugin.core.flow.WorkingDirectory
            tasks:
              - id: clone
                type: io.kestra.plugin.scripts.shell.Commands
                commands: ["mkdir repo", "echo 'print(6 * 7)' > repo/main.py"]
              - id: use
                type: io.kestra.plugin.scripts.python.Commands
                commands: ["python repo/main.py"]
        """), wait=True, timeout=60)
    assert ex.state == State.SUCCESS, ex.to_json()
    logs = [row["message"] for row in client.logs(ex.id) if row["task_id"] == "use"]
    assert "42" in logs


# -- what Celestra does not do yet is refused, never accepted and ignored --------------------------------------------
@pytest.mark.parametrize(("snippet", "message"), [
    ("deleted: true\n", "deleted: true is not supported yet"),
])
def test_flow_properties_not_supported_yet_are_refused(client: Any, snippet: str, message: str) -> None:
    with pytest.raises(FlowValidationError, match=message):
        client.validate(f"id: refused\nnamespace: core\ntasks:\n  - id: t\n    type: {RETURN}\n    format: x\n"
                        + snippet)


@pytest.mark.parametrize(("task", "message"), [
    (f"type: {RETURN}\n    format: x\n    logToFile: true", "logToFile is not supported yet"),
    ("type: io.kestra.plugin.core.flow.Subflow\n    namespace: core\n    flowId: child\n"
     "    scheduleDate: \"2030-01-01T00:00:00Z\"", "Subflow scheduleDate is not supported yet"),
])
def test_task_properties_not_supported_yet_are_refused_at_their_line(client: Any, task: str, message: str) -> None:
    with pytest.raises(FlowValidationError, match=message) as refused:
        client.validate(f"id: refused\nnamespace: core\ntasks:\n  - id: t\n    {task}\n")
    assert str(refused.value).startswith("<yaml>:")  # file, line and column


def test_properties_at_their_defaults_are_accepted(client: Any) -> None:
    client.validate(f"id: defaults\nnamespace: core\nconcurrency: null\nsla: []\nafterExecution: []\n"
                    f"deleted: false\ntasks:\n  - id: t\n    type: {RETURN}\n    format: x\n    logToFile: false\n")


# -- messages: what is wrong, where, and what was probably meant -----------------------------------------------------
@pytest.mark.parametrize(("snippet", "message"), [
    ("inputs:\n  - id: flag\n    type: BOOLEEN\n",
     "inputs[0] (input 'flag'): unknown input type 'BOOLEEN'; did you mean 'BOOLEAN'?"),
    ("tasks:\n  - id: t\n    type: io.kestra.plugin.core.debug.Retrun\n    format: x\n",
     "unknown task type 'io.kestra.plugin.core.debug.Retrun'; did you mean 'io.kestra.plugin.core.debug.Return'?"),
    (f"tasks:\n  - id: t\n    type: {RETURN}\n    format: x\n    timeout: 5 minutes\n",
     "tasks[0].timeout (task 't'): '5 minutes' is not a duration: use an ISO-8601 duration such as PT5M"),
    (f"tasks:\n  - id: first\n    type: {RETURN}\n    format: x\n  - id: t\n    type: {RETURN}\n"
     "    format: '{{ outputs.frist.value }}'\n",
     "tasks[1].format (task 't'): outputs.frist: no task 'frist' in this flow; did you mean 'first'?"),
])
def test_a_mistake_is_named_with_what_was_probably_meant(client: Any, snippet: str, message: str) -> None:
    source = f"id: mistakes\nnamespace: core\n{snippet}"
    if "tasks:" not in snippet:
        source += f"tasks:\n  - id: t\n    type: {RETURN}\n    format: x\n"
    with pytest.raises(FlowValidationError) as refused:
        client.validate(source)
    assert message in str(refused.value)


def test_guarded_and_subflow_outputs_references_are_not_mistakes(client: Any) -> None:
    client.validate(flow(f"""
        id: guarded
        namespace: core
        tasks:
          - id: first
            type: {RETURN}
            format: "{{{{ outputs.maybe ?? 'none' }}}} {{{{ outputs['first'] is defined }}}}"
          - id: call
            type: io.kestra.plugin.core.flow.Subflow
            namespace: core
            flowId: child
            outputs:
              got: "{{{{ outputs.inside_the_child.value }}}}"
        """))


def test_a_pause_nested_in_a_sequence_cancels_the_execution_too(client: Any) -> None:
    ex = client.run(flow(f"""
        id: nested_cancel
        namespace: core
        tasks:
          - id: group
            type: io.kestra.plugin.core.flow.Sequential
            tasks:
              - id: pause
                type: io.kestra.plugin.core.flow.Pause
                pauseDuration: PT0.2S
                behavior: CANCEL
              - id: never
                type: {RETURN}
                format: x
        """), wait=True, timeout=30)
    assert ex.state == State.CANCELLED, ex.to_json()
    assert states(ex) == {"group": State.KILLED, "pause": State.CANCELLED}


def test_a_working_directory_child_honours_run_if_and_allow_warning(client: Any) -> None:
    ex = client.run(flow(f"""
        id: wd_semantics
        namespace: core
        tasks:
          - id: wd
            type: io.kestra.plugin.core.flow.WorkingDirectory
            tasks:
              - id: skipped
                type: {FAIL}
                runIf: "{{{{ 1 == 2 }}}}"
              - id: tolerated
                type: {FAIL}
                allowFailure: true
                allowWarning: true
        """), wait=True, timeout=30)
    assert ex.state == State.SUCCESS, ex.to_json()
    assert states(ex) == {"wd": State.SUCCESS, "skipped": State.SKIPPED, "tolerated": State.SUCCESS}


def test_valid_flows_the_checks_must_not_refuse(client: Any) -> None:
    pause = "type: io.kestra.plugin.core.flow.Pause\n    onResume:\n      - id: approved\n        type: BOOLEAN"
    client.validate(f"id: ok\nnamespace: core\ntasks:\n  - id: p1\n    {pause}\n  - id: p2\n    {pause}\n"
                    "  - id: t\n    type: io.kestra.plugin.core.log.Log\n"
                    "    message: \"{% raw %}{{ outputs.x }}{% endraw %} {% if outputs.maybe is defined %}"
                    "{{ outputs.maybe.value }}{% endif %}\"\n")


def test_the_flow_of_a_running_execution_is_read_as_it_was_accepted() -> None:
    from app.model.loader import parse_flow

    source = f"id: old\nnamespace: core\ntasks:\n  - id: late\n    type: {RETURN}\n    logToFile: true\n" \
             f"  - id: t\n    type: {RETURN}\n" \
             "    format: '{{ outputs.gone.value }}'\n"
    with pytest.raises(FlowValidationError, match="logToFile is not supported yet"):
        parse_flow(source)  # a new execution of it is refused
    assert parse_flow(source, running=True).id == "old"  # one that exists goes on
