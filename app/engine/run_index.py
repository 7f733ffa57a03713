"""An execution's task runs, indexed the ways the step looks them up."""

from __future__ import annotations

from app.model.records import Execution, TaskRun
from app.model.states import State

Position = tuple[str | None, str, str | None]  # (parent run id, task id, loop value)


class RunIndex:
    """An execution's task runs by id, by position and by parent; `add` keeps the three and the list in step."""

    def __init__(self, ex: Execution):
        self.ex = ex
        self.by_id: dict[str, TaskRun] = {}
        self.by_position: dict[Position, TaskRun] = {}
        self.by_parent: dict[str | None, list[TaskRun]] = {}
        # Per sequence (parent run, loop value, first task id): how many leading tasks ended without failing, and
        # their states (Step._sequential).
        self.settled: dict[tuple[str | None, str | None, str], tuple[int, tuple[State, ...]]] = {}
        for run in ex.task_runs:
            self._index(run)

    def _index(self, run: TaskRun) -> None:
        self.by_id[run.id] = run
        self.by_position[(run.parent_id, run.task_id, run.value)] = run
        self.by_parent.setdefault(run.parent_id, []).append(run)

    def add(self, run: TaskRun) -> None:
        self.ex.task_runs.append(run)
        self._index(run)

    def remove(self, ids: set[str]) -> None:
        """Forget deleted runs (a restart), and what was remembered as settled, which may have counted them."""
        self.ex.task_runs[:] = [run for run in self.ex.task_runs if run.id not in ids]
        for run_id in ids:
            run = self.by_id.pop(run_id, None)
            if run is not None:
                self.by_position.pop((run.parent_id, run.task_id, run.value), None)
                siblings = self.by_parent.get(run.parent_id, [])
                siblings[:] = [sibling for sibling in siblings if sibling.id != run_id]
        self.settled.clear()

    def children(self, parent_id: str | None) -> list[TaskRun]:
        return self.by_parent.get(parent_id, [])
