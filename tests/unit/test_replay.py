"""Replay: a new execution that reuses what came before a task and runs the flow again from there (Kestra's
"replay from a task"); from the start without one. The `celestra replay` command runs it embedded."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from app import runtime
from app.errors import CelestraError
from app.model.states import State

NS = "core.replay"
SOURCE = textwrap.dedent(f"""
    id: replayed
    namespace: {NS}
    inputs:
      - id: who
        type: STRING
    tasks:
      - id: first
        type: io.kestra.plugin.core.debug.Return
        format: "first {{{{ inputs.who }}}} {{{{ execution.id }}}}"
      - id: loop
        type: io.kestra.plugin.core.flow.ForEach
        values: ["a", "b"]
        tasks:
          - id: gate
            type: io.kestra.plugin.core.execution.Fail
            runIf: "{{{{ taskrun.value == 'b' and kv('open') == null }}}}"
      - id: last
        type: io.kestra.plugin.core.debug.Return
        format: "{{{{ outputs.first.value }}}}"
    """).strip() + "\n"


def by_task(ex: Any) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for run in ex.task_runs:
        found.setdefault(run.task_id, []).append(run)
    return found


def test_a_replay_from_a_task_reuses_what_came_before_it(client: Any) -> None:
    store = runtime.store()
    store.kv_delete(NS, "open")
    failed = client.run(SOURCE, {"who": "ada"}, wait=True, timeout=30)
    assert failed.state == State.FAILED
    store.kv_put(NS, "open", True)
    gate_b = next(r for r in failed.task_runs if r.task_id == "gate" and r.value == "b")
    new = client.replay(failed.id, gate_b.id, wait=True, timeout=30)
    assert new.id != failed.id and new.state == State.SUCCESS, [(r.task_id, r.value, r.state) for r in new.task_runs]
    runs = by_task(new)
    # `first` and gate a were copied, outputs and all: `last` sees the first execution's output.
    assert runs["first"][0].outputs == by_task(failed)["first"][0].outputs
    assert runs["last"][0].outputs["value"] == f"first ada {failed.id}"
    assert {r.value: r.state for r in runs["gate"]} == {"a": State.SKIPPED, "b": State.SKIPPED}
    assert [r.state for r in runs["loop"]] == [State.SUCCESS]
    assert client.get(failed.id).state == State.FAILED  # the original stays as it was


def test_a_replay_without_a_task_runs_everything_again_and_by_task_id(client: Any) -> None:
    runtime.store().kv_put(NS, "open", True)
    done = client.run(SOURCE, {"who": "bob"}, wait=True, timeout=30)
    again = client.replay(done.id, wait=True, timeout=30)
    assert again.state == State.SUCCESS and by_task(again)["last"][0].outputs["value"] == f"first bob {again.id}"
    from_last = client.replay(done.id, "last", wait=True, timeout=30)
    assert by_task(from_last)["last"][0].outputs["value"] == f"first bob {done.id}"
    with pytest.raises(CelestraError, match="no task run of 'nope'"):
        client.replay(done.id, "nope")


def test_a_running_execution_is_not_replayed(client: Any) -> None:
    paused = client.run(f"id: waits\nnamespace: {NS}\ntasks:\n  - id: p\n"
                        "    type: io.kestra.plugin.core.flow.Pause\n", wait=False)
    with pytest.raises(CelestraError, match="must be terminated to be replayed"):
        client.replay(paused.id)
    client.cancel(paused.id)


CELESTRA = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "celestra"


@pytest.mark.skipif(not CELESTRA.exists() and not os.environ.get("CI"), reason="the venv's entry point")
def test_celestra_replay_runs_the_replay_embedded(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELESTRA_")}
    env.update(CELESTRA_HOME=str(tmp_path / "home"), COLUMNS="200")
    (tmp_path / "flow.yaml").write_text(SOURCE.replace("kv('open') == null", "false"))

    def celestra(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(CELESTRA), *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=120)

    first = celestra("run", "flow.yaml", "--json", "-i", "who=cy")
    assert first.returncode == 0, first.stderr
    execution_id = json.loads(first.stdout)["id"]
    replayed = celestra("replay", execution_id, "--task", "last")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert f"Execution {execution_id} replayed as" in replayed.stdout and "SUCCESS" in replayed.stdout
    refused = celestra("replay", "no-such-execution")
    assert refused.returncode != 0
