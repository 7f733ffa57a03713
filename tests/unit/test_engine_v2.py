"""Engine v2 in one process: scoped steps keep every semantic of the whole walk, kept executions cannot write stale
runs, outages are ridden out, and liveness waits for the store to be back (faults on real services:
tests/integration/test_faults.py)."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from app import runtime
from app.model.records import now
from app.model.states import State
from app.store import outage
from app.store.database import StaleRun
from app.store.tables import workers

RETURN = "io.kestra.plugin.core.debug.Return"
FAIL = "io.kestra.plugin.core.execution.Fail"


def flow(text: str) -> str:
    return textwrap.dedent(text).strip() + "\n"


def test_a_fan_out_of_two_task_iterations_runs_every_second_task(client: Any) -> None:
    ex = client.run(flow(f"""
        id: two_per_iteration
        namespace: v2
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.ForEach
            concurrencyLimit: 0
            values: [a, b, c, d, e, f]
            tasks:
              - id: first
                type: {RETURN}
                format: "1-{{{{ taskrun.value }}}}"
              - id: second
                type: {RETURN}
                format: "2-{{{{ taskrun.value }}}}"
          - id: after
            type: {RETURN}
            format: done
        """), wait=True, timeout=60)
    assert ex.state == State.SUCCESS, ex.to_json()
    assert sorted(r.outputs["value"] for r in ex.task_runs if r.task_id == "second") == \
        [f"2-{v}" for v in "abcdef"]
    assert len(ex.task_runs) == 1 + 12 + 1


def test_a_failed_branch_of_a_fan_out_runs_its_errors_after_every_sibling(client: Any) -> None:
    ex = client.run(flow(f"""
        id: fan_out_errors
        namespace: v2
        tasks:
          - id: all
            type: io.kestra.plugin.core.flow.Parallel
            tasks:
              - id: ok1
                type: {RETURN}
                format: x
              - id: boom
                type: {FAIL}
                errorMessage: it broke
              - id: ok2
                type: {RETURN}
                format: x
            errors:
              - id: on_error
                type: {RETURN}
                format: handled
            finally:
              - id: cleanup
                type: {RETURN}
                format: cleaned
        """), wait=True, timeout=60)
    assert ex.state == State.FAILED, ex.to_json()
    states = {r.task_id: r.state for r in ex.task_runs}
    assert states["ok1"] == states["ok2"] == State.SUCCESS
    assert states["on_error"] == states["cleanup"] == State.SUCCESS
    assert states["all"] == State.FAILED
    ended = {r.task_id: r.ended for r in ex.task_runs}
    assert ended["on_error"] >= max(ended["ok1"], ended["ok2"], ended["boom"])  # type: ignore[operator]


def test_a_copy_read_before_a_claim_never_overwrites_it(tmp_path: Any) -> None:
    """A step keeps runs in memory, and claims do not stamp the execution's version; a write of a copy read before
    the claim matches no row (StaleRun), so the step is redone from a fresh read instead of undoing the claim."""
    from app.model.records import Execution, TaskRun, new_id
    from app.store.database import Store

    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    ex = Execution(id=new_id(), namespace="v2", flow_id="f", flow_revision=1, flow_source="id: f")
    run = TaskRun(id=new_id(), execution_id=ex.id, task_id="a")
    with store.begin() as conn:
        store.insert_execution(conn, ex)
        store.write_runs(conn, ex.id, created=[run])
    with store.begin() as conn:
        [copy] = store.task_runs_since(conn, ex.id, -1)  # what a step keeps
    with store.single_statements() as conn:
        claimed = store.claim_task_run(conn, run.id, "w@host")
    assert claimed is not None and claimed.row_version == copy.row_version + 1
    copy.state = State.KILLED  # a kill step deciding on the copy, which still shows CREATED
    with store.begin() as conn, pytest.raises(StaleRun):
        store.write_runs(conn, ex.id, changed=[copy])
    with store.begin() as conn:
        stored = store.load_task_run(conn, run.id)
    assert stored is not None and stored.state == State.RUNNING and stored.worker == "w@host"


def test_until_stored_retries_an_outage_and_nothing_else(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outage, "FIRST_DELAY", 0.001)
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise sa.exc.OperationalError("UPDATE task_runs", {}, Exception("server closed the connection"))
        return "stored"

    assert outage.until_stored("test", flaky, retry_for=5) == "stored"
    assert len(calls) == 3

    def broken() -> None:
        raise sa.exc.IntegrityError("INSERT", {}, Exception("duplicate key"))

    with pytest.raises(sa.exc.IntegrityError):
        outage.until_stored("test", broken, retry_for=5)

    def down() -> None:
        raise sa.exc.OperationalError("SELECT 1", {}, Exception("connection refused"))

    with pytest.raises(sa.exc.OperationalError):
        outage.until_stored("test", down, retry_for=0.01)


def test_no_worker_is_declared_dead_on_heartbeats_missed_while_the_store_was_away(client: Any) -> None:
    from app.services.timers import TimerLoop

    store = runtime.store()
    stale = now() - timedelta(hours=1)
    with store.begin() as conn:
        conn.execute(workers.delete().where(workers.c.id == "ghost@host"))
        conn.execute(workers.insert().values(id="ghost@host", hostname="host", groups=["celery"], pid=1,
                                             started=stale, heartbeat=stale))
    loop = TimerLoop(interval=60)
    loop.store_up_since = None  # the last tick could not reach the store
    loop.resend_from_dead_workers()
    assert "ghost@host" in {w.id for w in _workers()}
    import time

    loop.store_up_since = time.monotonic()  # back just now: heartbeats get a whole timeout to arrive
    loop.resend_from_dead_workers()
    assert "ghost@host" in {w.id for w in _workers()}
    loop.store_up_since = time.monotonic() - runtime.settings().worker_timeout - 1
    loop.resend_from_dead_workers()
    assert "ghost@host" not in {w.id for w in _workers()}


def _workers() -> list[Any]:
    from app.engine import liveness

    return liveness.all_workers()


def test_a_working_directory_attempt_runs_its_children_again(client: Any, tmp_path: Any) -> None:
    """A retried (or taken over) WorkingDirectory runs its children as new attempts of the same task runs."""
    marker = tmp_path / "failed-once"
    ex = client.run(flow(f"""
        id: wd_retry
        namespace: v2
        tasks:
          - id: wd
            type: io.kestra.plugin.core.flow.WorkingDirectory
            retry:
              type: constant
              interval: PT0.1S
              maxAttempt: 3
            tasks:
              - id: sh
                type: io.kestra.plugin.scripts.shell.Commands
                commands:
                  - if [ -e {marker} ]; then exit 0; else touch {marker}; exit 1; fi
        """), wait=True, timeout=60)
    assert ex.state == State.SUCCESS, ex.to_json()
    runs = {r.task_id: r for r in ex.task_runs}
    assert [a.state for a in runs["sh"].attempts] == [State.FAILED, State.SUCCESS]
    assert len(runs["wd"].attempts) == 2


@pytest.mark.parametrize("chain_for", [0.0, 1.0], ids=["sent", "chained"])
def test_a_step_whose_commit_an_outage_hid_still_starts_what_it_made_runnable(
        client: Any, monkeypatch: pytest.MonkeyPatch, chain_for: float) -> None:
    """The first task's end committed, then the connection dropped before its answer (and the messages after it):
    the worker's retry finds the run folded in, and sends the run that step stored CREATED again, or (chaining) runs
    the one it claimed for this very process."""
    from app.engine import events

    monkeypatch.setattr(runtime.settings(), "chain_inline_for", chain_for)
    real = events._after_commit
    calls: list[int] = []

    def lost_after_commit(*args: Any, **kwargs: Any) -> None:
        calls.append(1)
        if len(calls) == 2:  # 1: the client's first step; 2: the first task's end, in the worker
            raise sa.exc.OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))
        real(*args, **kwargs)

    monkeypatch.setattr(events, "_after_commit", lost_after_commit)
    ex = client.run(flow(f"""
        id: hidden_commit
        namespace: v2
        tasks:
          - id: one
            type: {RETURN}
            format: x
          - id: two
            type: {RETURN}
            format: y
        """), wait=True, timeout=30)
    assert ex.state == State.SUCCESS, ex.to_json()
    assert [len(r.attempts) for r in ex.task_runs] == [1, 1]
    assert len(calls) >= 3
    assert (ex.task_runs[1].sent_at is None) == bool(chain_for)


def test_a_forked_pool_process_inherits_no_lock_a_thread_of_its_parent_held() -> None:
    """A prefork worker forks a new pool process while its heartbeat thread may be resending a dead process's run
    (keeping executions, asking who watches an end, which groups are alive): the child must not start with those
    locks held by a thread it does not have, or its first step would wait forever."""
    import os
    import threading

    from app.engine.flow_triggers import deployed_flows
    from app.engine.liveness import live_groups
    from app.engine.memory import memory

    held, release = threading.Event(), threading.Event()

    def heartbeat_thread() -> None:
        with memory.lock, deployed_flows._lock, live_groups.lock:
            held.set()
            release.wait(10)

    thread = threading.Thread(target=heartbeat_thread)
    thread.start()
    assert held.wait(5)
    pid = os.fork()
    if pid == 0:  # the pool process
        free = all(lock.acquire(timeout=2) for lock in (memory.lock, deployed_flows._lock, live_groups.lock))
        os._exit(0 if free else 1)
    release.set()
    thread.join()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_an_outcome_whose_commit_an_outage_hid_never_ends_the_retry_chained_after_it(
        client: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """A failed attempt with an immediate retry: the step that records it makes the run CREATED again and chains it
    to this very process (RUNNING, same worker). If an outage hides that commit, the retried outcome must see a
    new claim there, not the attempt it ends: it runs the retry, and records the failure once."""
    from app.engine import events

    real = events._after_commit
    calls: list[int] = []

    def lost_after_commit(*args: Any, **kwargs: Any) -> None:
        calls.append(1)
        if len(calls) == 2:  # 1: the client's first step; 2: the failed attempt's end, in the worker
            raise sa.exc.OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))
        real(*args, **kwargs)

    monkeypatch.setattr(events, "_after_commit", lost_after_commit)
    marker = tmp_path / "failed-once"
    ex = client.run(flow(f"""
        id: hidden_retry
        namespace: v2
        tasks:
          - id: flaky
            type: io.kestra.plugin.scripts.shell.Commands
            retry:
              type: constant
              interval: PT0S
              maxAttempt: 2
            commands:
              - if [ -e {marker} ]; then exit 0; else touch {marker}; exit 1; fi
        """), wait=True, timeout=30)
    assert ex.state == State.SUCCESS, ex.to_json()
    [run] = ex.task_runs
    assert [a.state for a in run.attempts] == [State.FAILED, State.SUCCESS]
    assert len(calls) >= 3
