"""ForEachItem: a file's lines in batches, one subflow execution per batch; the cases of Kestra's own tests
(ForEachItemCaseTest) with the outcomes they assert, a 10,000-line file, and the split's memory staying flat."""

from __future__ import annotations

import textwrap
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from app.errors import FlowValidationError
from app.model.states import State

NS = "io.kestra.tests"


def parent(flow_id: str, subflow: str, *, batch: str = "rows: 4", extra: str = "", after: str = "") -> str:
    """Kestra's for-each-item*.yaml parent flows; `extra` and `batch` lines are indented under the task."""
    return (f"id: {flow_id}\nnamespace: {NS}\ninputs:\n  - id: file\n    type: FILE\ntasks:\n"
            f"  - id: each\n    type: io.kestra.core.tasks.flows.ForEachItem\n    items: \"{{{{ inputs.file }}}}\"\n"
            f"    batch:\n      {batch}\n    namespace: {NS}\n    flowId: {subflow}\n    {extra}\n"
            "    inputs:\n      items: \"{{ taskrun.items }}\"\n      iteration: \"{{ taskrun.iteration }}\"\n"
            + textwrap.indent(textwrap.dedent(after), "  "))


def subflow(flow_id: str, task: str, outputs: str = "") -> str:
    return (f"id: {flow_id}\nnamespace: {NS}\ninputs:\n  - id: items\n    type: STRING\n"
            "  - id: iteration\n    type: INT\ntasks:\n" + textwrap.indent(textwrap.dedent(task), "  ")
            + textwrap.dedent(outputs))


RETURN = """\
- id: return
  type: io.kestra.plugin.core.debug.Return
  format: "{{ read(inputs.items) }}"
"""
FAIL = "- id: fail\n  type: io.kestra.plugin.core.execution.Fail\n"


@pytest.fixture
def lines_file(tmp_path: Path) -> Path:
    path = tmp_path / "items.txt"
    path.write_text("".join(f"line {i}\n" for i in range(102)))  # 26 batches of 4 (the last of 2), as in Kestra's
    return path


def read(uri: str) -> bytes:
    from app import runtime

    return runtime.storage().get(uri)


def runs(ex: Any, task_id: str) -> list[Any]:
    return [run for run in ex.task_runs if run.task_id == task_id]


def children(client: Any, flow_id: str, count: int) -> list[Any]:
    found = client.executions(NS, flow_id, limit=count + 10)
    return [client.wait(ex.id, timeout=60) for ex in found]


def test_one_subflow_per_batch_with_the_batch_and_its_number_as_inputs(client: Any, lines_file: Path) -> None:
    client.deploy(subflow("for-each-item-subflow", RETURN))
    ex = client.run(parent("for-each-item", "for-each-item-subflow"), {"file": str(lines_file)}, timeout=120)
    assert ex.state == State.SUCCESS, ex.to_json()
    assert [r.task_id for r in ex.task_runs] == ["each", "each_split", "each_items", "each_merge"]
    [items] = runs(ex, "each_items")
    assert items.outputs["numberOfBatches"] == 26
    assert items.outputs["iterations"] == {"CREATED": 0, "RUNNING": 0, "SUCCESS": 26}
    triggered = children(client, "for-each-item-subflow", 26)
    assert len(triggered) == 26 and {c.state for c in triggered} == {State.SUCCESS}
    by_iteration = {c.inputs["iteration"]: c for c in triggered}
    assert sorted(by_iteration) == list(range(26))  # iterations count from 0
    first, last = by_iteration[0], by_iteration[25]
    assert first.outputs == {} and first.trigger["executionId"] == ex.id and first.trigger["taskRunIteration"] == 0
    assert first.inputs["items"].startswith(f"kestra:///io/kestra/tests/for-each-item/executions/{ex.id}/tasks/")
    assert runs(first, "return")[0].outputs["value"] == "line 0\nline 1\nline 2\nline 3\n"
    assert runs(last, "return")[0].outputs["value"] == "line 100\nline 101\n"
    assert runs(ex, "each_merge")[0].outputs == {}  # the subflow has no outputs to gather


def test_the_subflows_outputs_are_gathered_in_batch_order(client: Any, lines_file: Path) -> None:
    outputs = """\
    outputs:
      - id: value
        type: STRING
        value: "{{ outputs.return.value }}"
    """
    client.deploy(subflow("for-each-item-outputs-subflow", RETURN, outputs))
    after = """\
    - id: return
      type: io.kestra.core.tasks.debugs.Return
      format: "{{ outputs.each_merge.subflowOutputs }}"
    """
    ex = client.run(parent("for-each-item-outputs", "for-each-item-outputs-subflow", after=after),
                    {"file": str(lines_file)}, timeout=120)
    assert ex.state == State.SUCCESS, ex.to_json()
    assert len(ex.task_runs) == 5
    merged_uri = runs(ex, "each_merge")[0].outputs["subflowOutputs"]
    assert runs(ex, "return")[0].outputs["value"] == merged_uri
    merged = read(merged_uri).decode().splitlines()
    assert len(merged) == 26  # one line per subflow, in batch order
    assert merged[0] == '{"value":"line 0\\nline 1\\nline 2\\nline 3\\n"}'
    assert merged[25] == '{"value":"line 100\\nline 101\\n"}'


def test_a_failing_subflow_fails_the_task_unless_transmit_failed_is_off(client: Any, lines_file: Path) -> None:
    client.deploy(subflow("for-each-item-subflow-failed", FAIL))
    ex = client.run(parent("for-each-item-failed", "for-each-item-subflow-failed", batch="rows: 20"),
                    {"file": str(lines_file)}, timeout=120)
    assert ex.state == State.FAILED
    [items] = runs(ex, "each_items")
    assert items.state == State.FAILED and items.outputs["numberOfBatches"] == 6
    assert items.outputs["iterations"] == {"CREATED": 0, "RUNNING": 0, "FAILED": 6}
    assert "FAILED (6)" in items.error
    assert not runs(ex, "each_merge")  # the sequence stops at the failure
    tolerant = client.run(parent("for-each-item-tolerant", "for-each-item-subflow-failed", batch="rows: 50",
                                 extra="transmitFailed: false"), {"file": str(lines_file)}, timeout=120)
    assert tolerant.state == State.SUCCESS
    assert runs(tolerant, "each_items")[0].outputs["iterations"]["FAILED"] == 3


def test_without_wait_the_task_ends_once_the_subflows_are_started(client: Any, lines_file: Path) -> None:
    sleep = "- id: sleep\n  type: io.kestra.plugin.core.flow.Pause\n  pauseDuration: PT0.5S\n"
    client.deploy(subflow("for-each-item-subflow-sleep", sleep))
    ex = client.run(parent("for-each-item-no-wait", "for-each-item-subflow-sleep", batch="rows: 20",
                           extra="wait: false"), {"file": str(lines_file)}, timeout=60)
    assert ex.state == State.SUCCESS
    assert runs(ex, "each_items")[0].outputs == {"numberOfBatches": 6, "iterations": {"RUNNING": 0, "SUCCESS": 6}}
    assert {c.state for c in children(client, "for-each-item-subflow-sleep", 6)} == {State.SUCCESS}


def test_an_empty_file_starts_nothing_and_succeeds(client: Any, tmp_path: Path) -> None:
    client.deploy(subflow("for-each-item-subflow-empty", RETURN))
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    ex = client.run(parent("for-each-item", "for-each-item-subflow-empty"), {"file": str(empty)}, timeout=60)
    assert ex.state == State.SUCCESS and runs(ex, "each_items")[0].outputs == {}
    assert client.executions(NS, "for-each-item-subflow-empty") == []


def test_items_that_are_not_in_internal_storage_fail_the_split(client: Any) -> None:
    client.deploy(subflow("for-each-item-subflow", RETURN))
    text = parent("not-storage", "for-each-item-subflow").replace("type: FILE", "type: STRING")
    ex = client.run(text, {"file": "/etc/passwd"}, timeout=60)
    assert ex.state == State.FAILED
    assert "not an internal storage URI" in runs(ex, "each_split")[0].error


def test_ten_thousand_lines_in_batches_of_a_hundred(client: Any, tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_text("".join(f"{i}\n" for i in range(10_000)))
    count = "- id: count\n  type: io.kestra.plugin.core.debug.Return\n" \
            "  format: \"{{ read(inputs.items) | trim | split('\\n') | length }}\"\n"
    lines = "outputs:\n  - id: lines\n    type: INT\n    value: \"{{ outputs.count.value }}\"\n"
    client.deploy(subflow("count-batch", count, lines))
    ex = client.run(parent("big", "count-batch", batch="rows: 100"), {"file": str(big)}, timeout=300)
    assert ex.state == State.SUCCESS, ex.to_json()
    assert runs(ex, "each_items")[0].outputs["iterations"]["SUCCESS"] == 100
    merged = read(runs(ex, "each_merge")[0].outputs["subflowOutputs"]).decode().splitlines()
    assert merged == ['{"lines":100}'] * 100


def test_the_split_streams_the_file(client: Any, tmp_path: Path) -> None:
    """Cutting a 20 MB file allocates a small fraction of it: it is never read whole into memory."""
    from app import runtime
    from app.model.loader import parse_flow
    from workers.plugin_api import AttemptInfo, RunContext

    uri = runtime.storage().put("kestra:///io/kestra/tests/big/executions/e1/inputs/file/big.txt",
                                b"".join(b"%08d" % i + b"x" * 190 + b"\n" for i in range(100_000)))
    split = parse_flow(parent("big", "whatever", batch="rows: 1000")).task("each_split")
    stored: dict[str, int] = {}
    ctx = RunContext(
        variables={"flow": {"namespace": NS, "id": "big"}, "execution": {"id": "e1"},
                   "task": {"id": "each_split"}, "taskrun": {"id": "r1"}, "inputs": {"file": uri}},
        log=lambda level, message: None, storage=runtime.storage(), kv=None,  # type: ignore[arg-type]
        attempt=AttemptInfo("a", {}), store_output=lambda name, data: stored.setdefault(name, len(data)) and "")
    tracemalloc.start()
    outputs = split.run(ctx)  # type: ignore[attr-defined]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    listing = runtime.storage().get(outputs["splits"]).decode().splitlines()
    assert len(listing) == 100
    assert peak < 2_000_000, f"the split of a 20 MB file allocated {peak} bytes at its peak"


def test_bad_properties_are_refused_at_load(client: Any) -> None:
    text = parent("bad", "whatever", batch="rows: 4\n      partitions: 2")
    with pytest.raises(FlowValidationError, match=r"tasks\[0\]\.batch .*cut one way.* not rows and partitions$"):
        client.validate(text)
    with pytest.raises(FlowValidationError, match="ForEachItem takes no `tasks`"):
        client.validate(parent("bad", "whatever", extra="tasks: [{id: x, type: io.kestra.plugin.core.log.Log, "
                                                      "message: hi}]"))
    with pytest.raises(FlowValidationError, match="restartBehavior is not supported yet"):
        client.validate(parent("bad", "whatever", extra="restartBehavior: NEW_EXECUTION"))


def test_the_internal_tasks_are_made_by_for_each_item_only(client: Any) -> None:
    for kind in ("ForEachItemSplit", "ForEachItemExecutable", "ForEachItemMergeOutputs"):
        text = (f"id: internal\nnamespace: {NS}\ntasks:\n  - id: x\n"
                f"    type: io.kestra.plugin.core.flow.ForEachItem${kind}\n    items: a\n    namespace: a\n"
                "    flowId: a\n")
        with pytest.raises(FlowValidationError, match="internal to ForEachItem: write an io.kestra.plugin.core.flow"):
            client.validate(text)
    taken = parent("clash", "whatever", after="- id: each_split\n  type: io.kestra.plugin.core.log.Log\n"
                                              "  message: hi\n")
    with pytest.raises(FlowValidationError, match="duplicate task id 'each_split'"):
        client.validate(taken)


@pytest.mark.parametrize(("batch", "contents"), [
    ("partitions: 3", ["a;d;", "b;e;", "c;"]),  # round robin
    ("bytes: 4", ["a;b;", "c;d;", "e;"]),  # a new batch once one holds 4 bytes
    ("regexPattern: \"^([ae])\"", ["a;", "e;"]),  # one batch per value of the first group; the others left out
    ("rows: 2", ["a;b;", "c;d;", "e;"]),
])
def test_batches_by_partitions_bytes_regex_or_rows_each_line_ended_by_the_separator(
        client: Any, tmp_path: Path, batch: str, contents: list[str]) -> None:
    client.deploy(subflow("for-each-item-modes", RETURN))
    path = tmp_path / "letters.txt"
    path.write_text("a\nb\nc\nd\ne\n")
    flow_id = "modes-" + batch.split(":")[0].lower()
    ex = client.run(parent(flow_id, "for-each-item-modes", batch=f"{batch}\n      separator: ';'"),
                    {"file": str(path)}, timeout=60)
    assert ex.state == State.SUCCESS, ex.to_json()
    found = [c for c in children(client, "for-each-item-modes", 20) if c.trigger["executionId"] == ex.id]
    by_iteration = sorted((c.inputs["iteration"], runs(c, "return")[0].outputs["value"]) for c in found)
    assert [value for _, value in by_iteration] == contents


def test_labels_inherited_and_rendered_per_batch_and_a_pinned_revision(client: Any, lines_file: Path) -> None:
    client.deploy(subflow("for-each-item-labels", RETURN))
    client.deploy(subflow("for-each-item-labels", FAIL))  # revision 2 fails: revision 1 is pinned below
    extra = "revision: 1\n    inheritLabels: true\n    labels:\n      batch: \"{{ taskrun.iteration }}\""
    text = parent("labelled", "for-each-item-labels", batch="rows: 60", extra=extra) + "labels:\n  team: data\n"
    ex = client.run(text, {"file": str(lines_file)}, timeout=60)
    assert ex.state == State.SUCCESS, ex.to_json()
    found = sorted(children(client, "for-each-item-labels", 2), key=lambda c: c.inputs["iteration"])
    assert [(c.flow_revision, c.labels.get("team"), c.labels.get("batch")) for c in found] == [
        (1, "data", "0"), (1, "data", "1")]


def test_allowed_to_fail_it_ends_warning_after_its_errors_and_finally(client: Any, lines_file: Path) -> None:
    client.deploy(subflow("for-each-item-fails", FAIL))
    extra = ("allowFailure: true\n    errors:\n      - id: handle\n        type: io.kestra.plugin.core.log.Log\n"
             "        message: failed\n    finally:\n      - id: always\n        type: io.kestra.plugin.core.log.Log\n"
             "        message: done")
    ex = client.run(parent("tolerated", "for-each-item-fails", batch="rows: 60", extra=extra),
                    {"file": str(lines_file)}, timeout=60)
    assert ex.state == State.WARNING, ex.to_json()
    assert {r.task_id: r.state for r in ex.task_runs if r.task_id in ("each", "handle", "always")} == {
        "each": State.WARNING, "handle": State.SUCCESS, "always": State.SUCCESS}
    warned = client.run(parent("warned", "for-each-item-fails", batch="rows: 60",
                               extra="transmitFailed: false\n    allowWarning: true"), {"file": str(lines_file)},
                        timeout=60)
    assert warned.state == State.SUCCESS
