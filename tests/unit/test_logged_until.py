"""Store.logged_until: how far the attempts of a task run whose worker died logged their command's lines, which a
runner taking that command over must not log again (runners.base.RunControl.logged_until)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.engine.events import log_row
from app.model.records import Attempt, TaskRun, new_id
from app.model.states import State
from app.store.database import Store

START = datetime(2026, 11, 29, 7, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def test_the_notice_of_a_resend_is_not_a_logged_line(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    run = TaskRun(id=new_id(), execution_id=new_id(), task_id="script", state=State.RUNNING)
    with store.begin() as conn:
        store.insert_task_runs(conn, [run])
    assert store.logged_until(run.execution_id, run.id) is None  # never ran

    def lines(*moments: float, message: str = "a line") -> None:
        rows = [log_row(run.execution_id, run, "INFO", message) | {"timestamp": at(s)} for s in moments]
        store.append_logs(None, rows)

    def lost(moment: float) -> None:  # what events.resend does when the server declares the worker dead
        run.attempts[-1] = Attempt(State.KILLED, at(0), at(moment))
        lines(moment + 0.000001, message="Worker w1 stopped beating while running this task; it is sent again")
        with store.begin() as conn:
            store.write_runs(conn, run.execution_id, changed=[run], version=1)

    run.attempts.append(Attempt(State.RUNNING, at(0)))  # claimed: the attempt lives in the worker until it ends
    lines(1, 2, 3)
    assert store.logged_until(run.execution_id, run.id) is None  # it has not ended: nobody takes it over yet
    lost(9)
    assert store.logged_until(run.execution_id, run.id) == at(3)

    run.attempts.append(Attempt(State.RUNNING, at(10)))  # the next attempt takes the command over, then dies too
    lines(10.5, 11)
    lost(20)
    assert store.logged_until(run.execution_id, run.id) == at(11)
