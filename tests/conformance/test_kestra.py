"""Kestra's own test flows (../shared/conformance/kestra) run embedded, checked against what Kestra's tests assert.

A case is in scope when every task type it uses is implemented. Scenarios that need more than one call are driven
here too: a second execution past a concurrency limit, a kill while running, retries that create new executions
(`_scenario`), a second run using the first's cache (`_second_run`), and the restarts and replays Kestra's tests
make of a corpus flow (`RESTARTS`).
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from app import runtime
from app.model.records import Execution, TaskRun
from app.model.registry import TYPE_NAMES
from app.store.masking import MASK

# Beside the repository (../shared), or where CELESTRA_KESTRA_CORPUS says; a clone elsewhere on this machine (as CI
# makes) finds it at /work/shared. Missing, the cases are skipped locally and the run fails in CI.
_PLACES = [Path(os.environ["CELESTRA_KESTRA_CORPUS"])] if os.environ.get("CELESTRA_KESTRA_CORPUS") else [
    Path(__file__).resolve().parents[2].parent / "shared" / "conformance" / "kestra",
    Path("/work/shared/conformance/kestra")]
CORPUS = next((place for place in _PLACES if (place / "manifest.json").exists()), _PLACES[0])
MANIFEST = json.loads((CORPUS / "manifest.json").read_text()) if (CORPUS / "manifest.json").exists() else []


def test_the_corpus_is_there() -> None:
    """An empty corpus would turn every case into a silent skip."""
    if not MANIFEST:
        message = f"Kestra's conformance corpus is not at {' nor '.join(map(str, _PLACES))}"
        if os.environ.get("CI"):
            pytest.fail(message + " (set CELESTRA_KESTRA_CORPUS)")
        pytest.skip(message)
    assert len(MANIFEST) >= 50
UNSUPPORTED_FEATURES: set[str] = set()


def _out_of_scope(entry: dict[str, Any], expected: dict[str, Any]) -> str | None:
    # Triggers are declared, stored and not fired by a single run: they do not take a flow out of scope.
    missing = [t for t in entry["types_used"] if t not in TYPE_NAMES and ".trigger." not in t]
    if missing:
        return f"types not implemented: {missing}"
    if UNSUPPORTED_FEATURES & set(entry.get("features_used", {})):
        return f"features {sorted(UNSUPPORTED_FEATURES & set(entry['features_used']))}"
    return None


def _cases() -> list[Any]:
    cases = []
    for entry in MANIFEST:
        variants = [(entry.get("inputs", {}), entry["expected"], entry.get("setup"), "main")]
        for index, extra in enumerate(entry.get("additional_cases", [])):
            variants.append((extra.get("inputs", {}), extra["expected"], extra.get("setup", entry.get("setup")),
                             f"case{index + 1}"))
        for inputs, expected, setup, name in variants:
            reason = _out_of_scope(entry, expected)
            marks = [pytest.mark.skip(reason=f"out of scope: {reason}")] if reason else []
            cases.append(pytest.param(entry, inputs, expected, setup, id=f"{entry['file']}-{name}", marks=marks))
    return cases


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from app.client import Client
    from app.settings import Settings

    home = tmp_path_factory.mktemp("conformance")
    settings = Settings(home=home, env_vars_prefix="KESTRA_",
                        globals={"string": "string", "int": 1, "bool": True, "nested": {"int": 2}})
    os.environ.update({
        "KESTRA_TEST1": "true",
        "KESTRA_TEST2": "Pass by env",
        "SECRET_MY_SECRET": base64.b64encode(b'{"secretKey":"secretValue"}').decode(),
        "SECRET_NEW_LINE": _wrapped_base64("passwordveryveryveyrlong" * 5),
        "SECRET_PASSWORD": base64.b64encode(b"secretString").decode(),  # each in SECRET_VALUES below
    })
    yield Client(settings=settings)


def _wrapped_base64(text: str) -> str:
    encoded = base64.b64encode(text.encode()).decode()
    return "\n".join(encoded[i : i + 20] for i in range(0, len(encoded), 20))


def _prepare(client: Any, entry: dict[str, Any], setup: Any, inputs: dict[str, Any], tmp_path: Path) -> dict:
    for dep in entry.get("depends_on", []):
        client.deploy(CORPUS / "flows" / Path(dep).name)
    store = runtime.store()
    if isinstance(setup, dict) and isinstance(setup.get("kv"), dict):
        kv = setup["kv"]
        store.kv_put(kv["namespace"], kv["key"], kv["value"])
    elif isinstance(setup, dict) and setup.get("kv") == "key my-key absent":
        store.kv_delete("io.kestra.tests", "my-key")
    resolved: dict[str, Any] = {}
    for key, value in inputs.items():
        if isinstance(value, dict) and "$repeat" in value:
            value = value["$repeat"]["char"] * value["$repeat"]["count"]
        elif isinstance(value, dict) and "$file_from_repo" in value:
            file = tmp_path / Path(value["$file_from_repo"]).name
            file.write_text("kestra:\n  test: true\n")
            value = str(file)
        resolved[key] = value
    return resolved


def _as_kestra_test_runs_it(entry: dict[str, Any], given: dict[str, Any]) -> str:
    """The flow's YAML; inputs a Kestra test leaves out are made optional, as its test runner does not validate
    them (Celestra itself rejects a missing required input)."""
    import yaml

    text = (CORPUS / "flows" / entry["file"]).read_text()
    data = yaml.safe_load(text)
    declared = data.get("inputs") or []
    missing = [d for d in declared if (d.get("id") or d.get("name")) not in given and "defaults" not in d
               and d.get("required", True)]
    if not missing:
        return text
    for d in missing:
        d["required"] = False
    return yaml.safe_dump(data, sort_keys=False)


def _scenario(client: Any, source: str, inputs: dict[str, Any], expected: dict[str, Any]) -> Execution:
    """The execution to check: run to its end, or driven as the Kestra test drives it."""
    if "requires_action" not in expected and "concurrency_scenario" not in expected:
        return client.run(source, inputs, wait=True, timeout=60)
    first = client.run(source, inputs, wait=False)
    deadline = time.monotonic() + 30
    while client.state(first.id).value != "RUNNING":
        assert time.monotonic() < deadline, f"never RUNNING: {client.state(first.id)}"
        time.sleep(0.02)
    if "requires_action" in expected:  # the one action in the corpus: kill it while RUNNING
        client.cancel(first.id)
    else:
        scenario = expected["concurrency_scenario"]
        second = client.run(source, inputs, wait=True, timeout=60)
        assert second.state.value == scenario["second_execution_started_while_first_running"], second.error
        assert client.wait(first.id, timeout=60).state.value == scenario["first_execution_final"]
    return client.wait(first.id, timeout=60)


def _output(run: TaskRun, key: str) -> Any:
    value: Any = run.outputs
    for part in key.split("."):
        value = value[part] if isinstance(value, dict) else getattr(value, part)
    return value


# Where Celestra differs from Kestra on purpose: a task output holding a secret's whole value is stored masked
# (README, "Worker groups": secrets are masked before anything is stored), where Kestra keeps it in clear text.
SECRET_VALUES = {"passwordveryveryveyrlong" * 5, '{"secretKey":"secretValue"}', "secretString"}


def _check(op: str, actual: Any, expected: Any, ex: Execution, child: Execution | None = None) -> None:
    if isinstance(expected, str) and expected.startswith("$child_execution.") and child is not None:
        expected = getattr(child, expected.split(".", 1)[1])
        expected = expected.value if hasattr(expected, "value") else expected
    if isinstance(expected, str) and expected in SECRET_VALUES:
        expected = MASK
    if op == "equals":
        assert actual == expected, f"{actual!r} != {expected!r}"
    elif op == "contains":
        assert str(expected) in str(actual), f"{expected!r} not in {actual!r}"
    elif op == "startswith":
        assert str(actual).startswith(str(expected)), f"{actual!r} does not start with {expected!r}"
    elif op == "contains_entries":
        assert {k: actual.get(k) for k in expected} == expected
    elif op == "datetime_within_seconds_of_now":
        moment = datetime.fromisoformat(str(actual).replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        assert abs((datetime.now(UTC) - moment).total_seconds()) <= expected
    else:
        raise AssertionError(f"unknown op {op}")


def _find_run(ex: Execution, check: dict[str, Any]) -> TaskRun:
    runs = ex.task_runs
    if "task_id" in check:
        runs = [r for r in runs if r.task_id == check["task_id"]]
        if "values" in check:
            runs = [r for r in runs if r.values == check["values"]]
        assert runs, f"no task run of {check['task_id']}"
        return runs[0]
    return ex.task_runs[check["task_run_index"]]


@pytest.mark.parametrize(("entry", "inputs", "expected", "setup"), _cases())
def test_kestra_flow(client: Any, tmp_path: Path, entry: dict, inputs: dict, expected: dict, setup: Any) -> None:
    resolved = _prepare(client, entry, setup, inputs, tmp_path)
    ex = _scenario(client, _as_kestra_test_runs_it(entry, resolved), resolved, expected)
    runs = {r.task_id: r for r in ex.task_runs}
    summary = [(r.task_id, r.value, r.state.value) for r in ex.task_runs]
    state = expected.get("state") or expected.get("state_inferred")
    if state:
        assert ex.state.value == state, f"execution {ex.state.value}, expected {state}; runs {summary}; {ex.error}"
    if "task_run_count" in expected:
        assert len(ex.task_runs) == expected["task_run_count"], summary
    for task_id, task_state in expected.get("task_states", {}).items():
        assert task_id in runs, f"{task_id} did not run: {summary}"
        assert runs[task_id].state.value == task_state, f"{task_id}: {summary}"
    for task_id in expected.get("absent_task_ids", []):
        assert task_id not in runs, summary
    for task_id, count in expected.get("task_run_count_by_id", {}).items():
        assert sum(1 for r in ex.task_runs if r.task_id == task_id) == count, summary
    if "task_run_order_prefix" in expected:
        prefix = expected["task_run_order_prefix"]
        assert [r.task_id for r in ex.task_runs][: len(prefix)] == prefix, summary
    for task_id, outputs in expected.get("outputs", {}).items():
        for key, value in outputs.items():
            assert runs[task_id].outputs.get(key) == value, f"{task_id}.{key}: {runs[task_id].outputs}"
    child = _child(ex)
    for check in expected.get("output_checks", []):
        _check(check["op"], _output(_find_run(ex, check), check["key"]), check["value"], ex, child)
    for key, value in expected.get("flow_outputs", {}).items():
        assert ex.outputs.get(key) == value, ex.outputs
    for check in expected.get("flow_output_checks", []):
        _check(check["op"], ex.outputs.get(check["key"]), check["value"], ex)
    if "attempts_by_index" in expected:
        for index, count in expected["attempts_by_index"].items():
            assert len(ex.task_runs[int(index)].attempts) == count, summary
    for task_id, count in expected.get("attempts", {}).items():
        assert len(runs[task_id].attempts) == count
    if "terminal_states_of_all_executions_any_order" in expected:
        # Client.wait followed the chain of retries to its last execution; every try of it is stored.
        chain = [e for e in runtime.store().list_executions(limit=200)
                 if e.id == ex.id or (ex.original_id and e.id == ex.original_id) or
                 (ex.original_id and e.original_id == ex.original_id)]
        assert sorted(e.state.value for e in chain) == sorted(expected["terminal_states_of_all_executions_any_order"])
    for key, value in expected.get("execution_labels_contain", {}).items():
        if value.startswith("$taskrun.id("):
            value = runs[value[len("$taskrun.id(") : -1]].id
        assert ex.labels.get(key) == value
    _check_logs(client, ex, expected.get("log_checks", []))
    if "second_run" in expected:
        _second_run(client, entry, resolved, expected["second_run"])
    if entry["file"] in RESTARTS and expected is entry["expected"]:
        RESTARTS[entry["file"]](client, ex)
    for spec in expected.get("child_executions", []):
        assert child is not None, "no child execution"
        assert child.flow_id == spec["flow_id"]
        if "state" in spec:
            assert child.state.value == spec["state"]
        if "task_run_count" in spec:
            assert len(child.task_runs) == spec["task_run_count"]


def _restarted_twice(client: Any, ex: Execution) -> None:
    """RestartCaseTest.restartMultiple: each restart of the failed execution is a new attempt of its failed task
    run, in the same execution, and ends FAILED again."""
    for attempts in (2, 3):
        again = client.restart(ex.id, wait=True, timeout=60)
        assert again.id == ex.id and again.state.value == "FAILED", again.error
        [t1] = [r for r in again.task_runs if r.task_id == "t1"]
        assert t1.state.value == "FAILED" and len(t1.attempts) == attempts


def _restart_refused_then_replayed(client: Any, ex: Execution) -> None:
    """ExecutionControllerTest.restartWithNoFailure: nothing failed, so nothing to restart; restartFromTaskId: a
    replay from `instant` is a new execution that reuses what came before it and ends with 5 task runs, SUCCESS."""
    from app.errors import CelestraError

    with pytest.raises(CelestraError, match="no failed task found to restart"):
        client.restart(ex.id)
    replayed = client.replay(ex.id, "instant", wait=True, timeout=60)
    assert replayed.id != ex.id and replayed.state.value == "SUCCESS", replayed.error
    assert len(replayed.task_runs) == 5 and all(r.state.value == "SUCCESS" for r in replayed.task_runs)


RESTARTS = {"failed-first.yaml": _restarted_twice, "restart_with_inputs.yaml": _restart_refused_then_replayed}


def _second_run(client: Any, entry: dict[str, Any], inputs: dict[str, Any], expected: dict[str, Any]) -> None:
    """The same flow again: what the first run left (a WorkingDirectory cache) shows in the second."""
    again = client.run(_as_kestra_test_runs_it(entry, inputs), inputs, wait=True, timeout=60)
    assert again.state.value == expected["state"], again.error
    if "task_run_count" in expected:
        assert len(again.task_runs) == expected["task_run_count"]
    found = re.search(r'task "(\w+)" outputs\.(\w+) contains key (\S+)', expected.get("notes", ""))
    if found:
        task_id, output, key = found.groups()
        run = next(r for r in again.task_runs if r.task_id == task_id)
        assert key in run.outputs[output], run.outputs


def _child(ex: Execution) -> Execution | None:
    children = [c for c in runtime.store().list_executions(limit=200) if c.parent_execution_id == ex.id]
    return children[0] if children else None


def _check_logs(client: Any, ex: Execution, checks: list[dict[str, Any]]) -> None:
    if not checks:
        return
    rows = list(client.logs(ex.id))
    for check in checks:
        scoped = rows
        if "task_id" in check:
            scoped = [r for r in rows if r["task_id"] == check["task_id"]]
        if "task_run_index" in check:
            run_id = ex.task_runs[check["task_run_index"]].id
            scoped = [r for r in rows if r["task_run_id"] == run_id]
        if "level" in check:
            scoped = [r for r in scoped if r["level"] == check["level"]]
        messages = [r["message"] for r in scoped]
        if check["op"] == "no_log":
            assert not messages, messages
        elif check["op"] == "equals":
            assert check["value"] in messages, messages
        elif check["op"] == "contains":
            assert any(check["value"] in m for m in messages), messages
