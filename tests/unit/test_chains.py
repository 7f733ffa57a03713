"""A worker that ends a task run goes on with the run that follows it, without a broker hop (app/engine/chains.py),
and hands back to the broker when the next run is not its own to take. What went through the broker is read from
the runs themselves: a sent run has `sent_at`, a chained one was claimed by the step and never sent."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from app import runtime
from app.model.states import State

RETURN = "io.kestra.plugin.core.debug.Return"
SHELL = "io.kestra.plugin.scripts.shell.Commands"


def flow(text: str) -> str:
    return textwrap.dedent(text).strip() + "\n"


def sequential(flow_id: str, count: int) -> str:
    tasks = "".join(f"  - id: t{i}\n    type: {RETURN}\n    format: v{i}\n" for i in range(count))
    return f"id: {flow_id}\nnamespace: chains\ntasks:\n{tasks}"


def test_a_sequential_flow_goes_through_the_broker_once(client: Any) -> None:
    ex = client.run(sequential("chained", 6), wait=True, timeout=60)
    assert ex.state == State.SUCCESS, ex.to_json()
    runs = sorted(ex.task_runs, key=lambda r: r.task_id)
    assert [r.outputs["value"] for r in runs] == [f"v{i}" for i in range(6)]
    assert runs[0].sent_at is not None
    assert [r.sent_at for r in runs[1:]] == [None] * 5
    assert len({(r.worker, r.worker_pid) for r in runs}) == 1
    assert all(len(r.attempts) == 1 and r.attempts[0].state == State.SUCCESS for r in runs)


def test_with_chaining_off_every_run_is_sent(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime.settings(), "chain_inline_for", 0.0)
    ex = client.run(sequential("unchained", 4), wait=True, timeout=60)
    assert ex.state == State.SUCCESS, ex.to_json()
    assert all(r.sent_at is not None for r in ex.task_runs)


def test_a_chain_hands_back_to_the_broker_after_its_time(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime.settings(), "chain_inline_for", 0.25)
    tasks = "".join(f"  - id: s{i}\n    type: {SHELL}\n    commands: [sleep 0.1]\n" for i in range(8))
    ex = client.run(f"id: budget\nnamespace: chains\ntasks:\n{tasks}", wait=True, timeout=60)
    assert ex.state == State.SUCCESS, ex.to_json()
    sent = [r.sent_at is not None for r in sorted(ex.task_runs, key=lambda r: r.task_id)]
    assert sent[0] and sent[1] is False  # the first message, then the chain
    assert sum(sent) >= 3  # 8 x 0.1 s in chains of at most 0.25 s: several messages


def test_of_the_runs_one_end_makes_runnable_one_is_taken_and_the_others_sent(client: Any) -> None:
    ex = client.run(flow(f"""
        id: fork
        namespace: chains
        tasks:
          - id: first
            type: {RETURN}
            format: x
          - id: branches
            type: io.kestra.plugin.core.flow.Parallel
            tasks:
              - id: b1
                type: {RETURN}
                format: "1"
              - id: b2
                type: {RETURN}
                format: "2"
              - id: b3
                type: {RETURN}
                format: "3"
        """), wait=True, timeout=60)
    assert ex.state == State.SUCCESS, ex.to_json()
    branches = [r for r in ex.task_runs if r.task_id in ("b1", "b2", "b3")]
    assert sorted(r.sent_at is None for r in branches) == [False, False, True]


def test_a_killed_execution_takes_nothing_more(client: Any) -> None:
    ex = client.run(flow(f"""
        id: killed_chain
        namespace: chains
        tasks:
          - id: slow
            type: {SHELL}
            commands: [sleep 5]
          - id: never
            type: {RETURN}
            format: x
        """), wait=False)
    import time

    deadline = time.monotonic() + 30
    while not any(r.state == State.RUNNING for r in client.get(ex.id).task_runs):
        assert time.monotonic() < deadline, "the first task never started"
        time.sleep(0.02)
    client.cancel(ex.id)
    ended = client.wait(ex.id, timeout=30)
    assert ended.state == State.KILLED, ended.to_json()
    assert [r.task_id for r in ended.task_runs] == ["slow"]
