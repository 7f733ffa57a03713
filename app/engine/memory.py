"""Executions kept in memory between steps, so a step reads only the task runs written since the last one it saw.

Every locked write of an execution's task runs bumps `executions.version` and stamps the rows with it
(app/store/database.py). A process keeps each execution it stepped recently with the version it saw; its next step
locks the execution row and reads only the rows stamped after that version: usually the one or two that other
processes wrote in between. The execution's own fields are read afresh with the lock, every time.

Claims do not stamp (they must not wait for the execution's lock), so a kept run may still show CREATED while a
worker runs it. That is harmless to the step, which treats both as "not ended"; each event re-reads the run it is
about (`Session.run`), and a step's write of a kept copy that is behind fails (its row_version) and is redone from a
fresh read (events.advance).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace

from sqlalchemy.engine import Connection

from app.engine.run_index import RunIndex
from app.model.records import Execution, TaskRun
from app.store.database import Store

MAX_RUNS = 200_000  # task runs kept per process, over all executions; the least recently stepped go first
_EXECUTION_FIELDS = [f.name for f in fields(Execution) if f.name not in ("task_runs", "flow_source", "secret_inputs")]
_RUN_FIELDS = [f.name for f in fields(TaskRun)]


@dataclass
class Kept:
    ex: Execution
    runs: RunIndex
    fresh: set[str] = field(default_factory=set)  # runs read afresh with this step's lock

    def merge(self, fresh: TaskRun) -> TaskRun:
        """The kept copy updated in place from a fresh read (indexes hold the object), or the fresh one added."""
        kept = self.runs.by_id.get(fresh.id)
        if kept is None:
            self.runs.add(fresh)
            return fresh
        for name in _RUN_FIELDS:
            setattr(kept, name, getattr(fresh, name))
        return kept


class Memory:
    def __init__(self, max_runs: int = MAX_RUNS):
        self.max_runs = max_runs
        self.lock = threading.Lock()
        self.kept: OrderedDict[str, Kept] = OrderedDict()
        self.sizes: dict[str, int] = {}  # runs of each kept execution when it was last kept
        self.total = 0
        self.holds: weakref.WeakValueDictionary[str, threading.Lock] = weakref.WeakValueDictionary()
        # A prefork worker forks pool processes while its heartbeat thread may be stepping (resending a dead
        # process's run): a child starts with nothing kept and no lock held by a thread it does not have.
        os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        self.lock = threading.Lock()
        self.kept = OrderedDict()
        self.sizes, self.total = {}, 0
        self.holds = weakref.WeakValueDictionary()

    @contextmanager
    def holding(self, execution_id: str) -> Iterator[None]:
        """Threads of this process step one execution one at a time, handing its kept copy over: without this, a
        thread that got the database lock before the previous one put the copy back would read everything."""
        with self.lock:
            hold = self.holds.get(execution_id)
            if hold is None:
                hold = self.holds[execution_id] = threading.Lock()
        with hold:
            yield

    def lock_and_load(self, store: Store, conn: Connection, execution_id: str, about: Sequence[str] = (),
                      known: TaskRun | None = None) -> Kept:
        """Lock the execution (in `conn`'s transaction) and bring its kept copy up to date with the store; the runs
        named in `about` are read afresh whatever their version (a claim does not stamp). `known` is the row of one
        of them as its own claim returned it: when nobody else wrote since this process's last step, it stands for
        the read (if it is behind after all, the step's write of it fails and is redone from a fresh read)."""
        row = store.lock_execution(conn, execution_id)
        with self.lock:
            kept = self._pop(execution_id)
        if kept is None or kept.ex.version >= row.version or kept.ex.restarts != row.restarts:
            row.task_runs = store.task_runs_since(conn, execution_id, -1)
            kept = Kept(row, RunIndex(row))
        else:
            if known is not None and kept.ex.version == row.version - 1 and list(about) == [known.id]:
                kept.merge(replace(known, attempts=list(known.attempts)))  # a copy: the caller keeps its own
                about = ()
            if about or kept.ex.version < row.version - 1:  # else nobody wrote since this process's last step
                for fresh in store.task_runs_since(conn, execution_id, kept.ex.version, also=about):
                    kept.merge(fresh)
            for name in _EXECUTION_FIELDS:
                setattr(kept.ex, name, getattr(row, name))
        kept.fresh = {known.id} if known is not None and not about else set(about)
        return kept

    def keep(self, kept: Kept) -> None:
        """After a step committed: keep it for the next step (an ended execution is not stepped again)."""
        if kept.ex.state.terminal:
            return
        with self.lock:
            self._pop(kept.ex.id)
            self.kept[kept.ex.id] = kept
            self.sizes[kept.ex.id] = len(kept.ex.task_runs)
            self.total += self.sizes[kept.ex.id]
            while self.total > self.max_runs and len(self.kept) > 1:
                self._pop(next(iter(self.kept)))

    def _pop(self, execution_id: str) -> Kept | None:
        self.total -= self.sizes.pop(execution_id, 0)
        return self.kept.pop(execution_id, None)


memory = Memory()
