"""WorkingDirectory `cache`: the files matching its patterns are put back into the next execution's folder, per
task and loop value, until the ttl passes; a failed run keeps nothing. (Kestra's working-directory-cache.yml runs
in tests/conformance.)"""

from __future__ import annotations

import textwrap
import time
import uuid
from typing import Any

from app.model.states import State


def cached_flow(flow_id: str, ttl: str = "PT5M", fail: bool = False) -> str:
    return textwrap.dedent(f"""
        id: {flow_id}
        namespace: core.cache
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.ForEach
            values: ["a", "b"]
            tasks:
              - id: wd
                type: io.kestra.plugin.core.flow.WorkingDirectory
                cache:
                  ttl: {ttl}
                  patterns: ["*.txt"]
                tasks:
                  - id: seen
                    type: io.kestra.plugin.core.storage.LocalFiles
                    outputs: ["*.txt"]
                  - id: write
                    type: io.kestra.plugin.core.storage.LocalFiles
                    inputs:
                      "{{{{ taskrun.value }}}}.txt": "made for {{{{ taskrun.value }}}}"
                      notes.log: not kept
                  - id: maybe_fail
                    type: io.kestra.plugin.core.execution.Fail
                    runIf: "{{{{ {str(fail).lower()} }}}}"
        """).strip() + "\n"


def seen(ex: Any) -> dict[str, list[str]]:
    return {run.value: sorted(run.outputs["uris"]) for run in ex.task_runs if run.task_id == "seen"}


def test_the_next_execution_finds_the_kept_files_of_its_own_loop_value(client: Any) -> None:
    flow_id = f"cache_{uuid.uuid4().hex[:8]}"
    first = client.run(cached_flow(flow_id), wait=True, timeout=60)
    assert first.state == State.SUCCESS, first.to_json()
    assert seen(first) == {"a": [], "b": []}
    second = client.run(cached_flow(flow_id), wait=True, timeout=60)
    assert seen(second) == {"a": ["a.txt"], "b": ["b.txt"]}  # notes.log matched no pattern: not kept
    content = {run.value: client.download(run.outputs["uris"][f"{run.value}.txt"]).decode()
               for run in second.task_runs if run.task_id == "seen"}
    assert content == {"a": "made for a", "b": "made for b"}


def test_an_expired_cache_and_a_failed_run_give_nothing(client: Any) -> None:
    short = f"cache_{uuid.uuid4().hex[:8]}"
    client.run(cached_flow(short, ttl="PT0.5S"), wait=True, timeout=60)
    time.sleep(1)
    assert seen(client.run(cached_flow(short, ttl="PT0.5S"), wait=True, timeout=60)) == {"a": [], "b": []}
    failing = f"cache_{uuid.uuid4().hex[:8]}"
    assert client.run(cached_flow(failing, fail=True), wait=True, timeout=60).state == State.FAILED
    assert seen(client.run(cached_flow(failing), wait=True, timeout=60)) == {"a": [], "b": []}
