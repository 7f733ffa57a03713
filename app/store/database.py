"""Persistence: SQLAlchemy Core over SQLite (embedded) or PostgreSQL (cluster).

Every executor step runs in a transaction holding the execution's row lock (`lock_execution`: SELECT ... FOR UPDATE
on PostgreSQL, BEGIN IMMEDIATE on SQLite), so two task runs of one execution that end at once are folded in one after
the other. The step bumps the execution's `version` and stamps the rows it writes with it, which lets a process keep
the execution in memory and read only what changed since (app/engine/memory.py). A task run row also carries a
`row_version` that every write increments, claims included: `write_runs` updates a row only if it still holds the
version its copy was read at, and raises StaleRun otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from app.errors import NotFoundError
from app.model.records import Attempt, Execution, TaskRun, now
from app.model.states import TERMINAL, State
from app.store import ends, statements, step_writes
from app.store.api_queries import ApiQueries
from app.store.logs_kv import LogsAndKeyValues
from app.store.rows import (
    FROZEN_RUN_COLUMNS,
    execution_from_row,
    execution_row,
    task_run_from_row,
    task_run_row,
)
from app.store.tables import executions, flows, task_runs


class StaleRun(Exception):
    """A task run changed in the store since the copy being written was read (e.g. a worker claimed it)."""


def _sqlite_engine(url: str) -> Engine:
    path = sa.engine.make_url(url).database
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy (not pysqlite) issue BEGIN, so a locked step can ask for BEGIN IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("lock") else "BEGIN")

    return engine


class Store(LogsAndKeyValues, ApiQueries):
    def __init__(self, url: str):
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self._pid = os.getpid()
        self._positions: dict[str, TaskRun] = {}  # ancestors' immutable fields, by run id
        self.engine = self._make_engine()
        self.migrate()

    def _make_engine(self) -> Engine:
        if self.is_sqlite:
            return _sqlite_engine(self.url)
        url = self.url.replace("postgresql://", "postgresql+psycopg://", 1)
        return sa.create_engine(url, pool_size=5, max_overflow=10, pool_recycle=1800,
                                # the most recent connection first: its prepared statements are warm
                                pool_use_lifo=True)

    def after_fork(self) -> None:
        """A forked worker process must not share its parent's connections."""
        if os.getpid() != self._pid:
            self.engine.dispose(close=False)
            self._pid = os.getpid()

    def migrate(self) -> None:
        from app.store.migrations import upgrade

        upgrade(self.engine)

    # -- transactions -------------------------------------------------------------------------------------------
    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A write transaction (IMMEDIATE on SQLite, so it never fails upgrading a read lock)."""
        with self.engine.connect().execution_options(lock=True) as conn, conn.begin():
            yield conn

    @contextmanager
    def single_statements(self) -> Iterator[Connection]:
        """Each statement commits on its own: for a sequence of writes that are each atomic and need no common
        transaction (a claim), it saves the BEGIN and COMMIT round trips. SQLite keeps its write transaction."""
        if self.is_sqlite:
            with self.begin() as conn:
                yield conn
            return
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            yield conn

    # -- flows --------------------------------------------------------------------------------------------------
    def save_flow(self, namespace: str, flow_id: str, source: str) -> int:
        with self.engine.connect().execution_options(lock=True) as conn, conn.begin():
            if conn.dialect.name == "postgresql":
                # Deploys of one flow take turns (SQLite's write transaction already serializes them): two at once
                # would both read revision N and both write N + 1.
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:flow))"),
                             {"flow": f"celestra.flow:{namespace}/{flow_id}"})
            latest = conn.execute(
                sa.select(flows.c.revision, flows.c.source)
                .where(flows.c.namespace == namespace, flows.c.id == flow_id)
                .order_by(flows.c.revision.desc())
                .limit(1)
            ).first()
            if latest and latest.source == source:
                return int(latest.revision)  # unchanged: no new revision
            revision = (latest.revision if latest else 0) + 1
            conn.execute(
                flows.insert().values(
                    namespace=namespace, id=flow_id, revision=revision, source=source, created=now()
                )
            )
            return revision

    def get_flow(self, namespace: str, flow_id: str, revision: int | None = None) -> tuple[int, str]:
        query = sa.select(flows.c.revision, flows.c.source).where(
            flows.c.namespace == namespace, flows.c.id == flow_id
        )
        query = (
            query.where(flows.c.revision == revision)
            if revision
            else query.order_by(flows.c.revision.desc()).limit(1)
        )
        with self.reads() as conn:
            row = conn.execute(query).first()
        if row is None:
            raise NotFoundError(f"Flow {namespace}.{flow_id} is not deployed (celestra flow deploy FILE)")
        return int(row.revision), str(row.source)

    def list_flows(self, namespace: str | None = None) -> list[dict[str, Any]]:
        latest = (
            sa.select(flows.c.namespace, flows.c.id, sa.func.max(flows.c.revision).label("revision"))
            .group_by(flows.c.namespace, flows.c.id)
        )
        if namespace:
            latest = latest.where(flows.c.namespace == namespace)
        with self.reads() as conn:
            return [dict(row._mapping) for row in conn.execute(latest.order_by(flows.c.namespace, flows.c.id))]

    # -- executions and task runs --------------------------------------------------------------------------------
    def insert_execution(self, conn: Connection, ex: Execution) -> None:
        conn.execute(executions.insert().values(**execution_row(ex)))

    def update_execution(self, conn: Connection, ex: Execution, announce_end: bool = False) -> None:
        """Write the execution's fields; `announce_end`: it ends in this transaction (ends.announce), which
        PostgreSQL is told in the same statement."""
        row = execution_row(ex)
        for frozen in ("id", "flow_source", "namespace", "flow_id", "flow_revision", "created", "trigger",
                       "trigger_key", "restarts", "original_id", "retry_attempt", "original_created"):
            del row[frozen]  # never change after creation; the source alone can be large
        update = executions.update().where(executions.c.id == ex.id).values(**row)
        if announce_end and not self.is_sqlite:
            updated = update.returning(executions.c.id).cte("updated")
            conn.execute(sa.select(sa.func.pg_notify(ends.CHANNEL, updated.c.id)).select_from(updated))
            return
        conn.execute(update)
        if announce_end:
            ends.announce(conn, ex.id)

    def lock_execution(self, conn: Connection, execution_id: str) -> Execution:
        """Lock the execution's row until the transaction (a `begin()`) ends, bumping its version: what this step
        writes is stamped with the version returned. The execution comes without its task runs."""
        row = conn.execute(statements.LOCK_EXECUTION, {"b_execution": execution_id}).first()
        if row is None:
            raise NotFoundError(f"Execution {execution_id} not found")
        return execution_from_row(row._mapping)

    def task_runs_since(self, conn: Connection, execution_id: str, version: int,
                        also: Sequence[str] = ()) -> list[TaskRun]:
        """The execution's task runs stamped after `version` (all of them for -1), and the runs `also` names."""
        if version < 0:
            rows = conn.execute(statements.ALL_RUNS, {"b_execution": execution_id})
        else:
            rows = conn.execute(statements.RUNS_SINCE,
                                {"b_execution": execution_id, "b_version": version, "b_also": list(also)})
        return [task_run_from_row(r._mapping) for r in rows]

    def ancestors(self, conn: Connection, run: TaskRun) -> list[TaskRun]:
        """The runs enclosing `run`, nearest first, as positions only (id, parent, task, value: what never changes
        once a run exists), so they are read once per process: the children of a fan-out share them."""
        found: list[TaskRun] = []
        parent_id = run.parent_id
        while parent_id and len(found) < 1000:
            parent = self._positions.get(parent_id)
            if parent is None:
                loaded = self.load_task_run(conn, parent_id)
                if loaded is None:
                    break
                parent = TaskRun(id=loaded.id, execution_id=loaded.execution_id, task_id=loaded.task_id,
                                 parent_id=loaded.parent_id, value=loaded.value, values=loaded.values,
                                 iteration=loaded.iteration, created=loaded.created)
                if len(self._positions) > 100_000:
                    self._positions.clear()
                self._positions[parent_id] = parent
            found.append(parent)
            parent_id = parent.parent_id
        return found

    def run_at(self, conn: Connection, execution_id: str, parent_id: str | None, task_id: str,
               value: str | None) -> TaskRun | None:
        """The task run at this position, if there is one."""
        row = conn.execute(sa.select(task_runs).where(
            task_runs.c.execution_id == execution_id, task_runs.c.parent_id == (parent_id or ""),
            task_runs.c.task_id == task_id, task_runs.c.value == (value if value is not None else ""))).first()
        return task_run_from_row(row._mapping) if row is not None else None

    def load_task_run(self, conn: Connection, task_run_id: str) -> TaskRun | None:
        row = conn.execute(statements.LOAD_RUN, {"b_run": task_run_id}).first()
        return task_run_from_row(row._mapping) if row is not None else None

    def write_runs(self, conn: Connection, execution_id: str, *, created: Sequence[TaskRun] = (),
                   changed: Sequence[TaskRun] = (), version: int | None = None) -> int:
        """Insert `created` and update `changed` (each only if its row is still at the copy's row_version, else
        StaleRun), stamped with `version`; None bumps the execution's version here (a write outside a step).
        Returns the version written."""
        if version is None:
            version = int(conn.execute(statements.BUMP_VERSION, {"b_execution": execution_id}).scalar_one())
        if created:
            conn.execute(statements.INSERT_RUNS, [{**task_run_row(run), "version": version} for run in created])
        if changed:
            rows = _changed_rows(changed, version)
            _check_unchanged(execution_id, changed, conn.execute(statements.UPDATE_RUN_IF_UNCHANGED, rows).rowcount)
        return version

    def save_step(self, conn: Connection, ex: Execution, *, created: Sequence[TaskRun], changed: Sequence[TaskRun],
                  log_rows: list[dict[str, Any]], execution: bool, announce_end: bool) -> None:
        """What a step writes: `write_runs` at the execution's version, `append_logs`, and `update_execution` when
        `execution`. PostgreSQL takes a small step's writes in one statement (app/store/step_writes.py)."""
        if self.is_sqlite or not step_writes.fits(len(created), len(changed), len(log_rows)):
            self.write_runs(conn, ex.id, created=created, changed=changed, version=ex.version)
            self.append_logs(conn, log_rows)
            if execution:
                self.update_execution(conn, ex, announce_end=announce_end)
            return
        inserted = [{**task_run_row(run), "version": ex.version} for run in created]
        updated = _changed_rows(changed, ex.version)
        statement = step_writes.statement(len(inserted), len(updated), len(log_rows), execution, announce_end)
        params = step_writes.parameters(inserted, updated, log_rows, execution_row(ex) if execution else None)
        _check_unchanged(ex.id, changed, conn.execute(statement, params).scalar_one())

    def insert_task_runs(self, conn: Connection, runs: list[TaskRun]) -> None:
        """Runs of an execution nobody else can see yet (its first step, in the transaction that stores it)."""
        if runs:
            conn.execute(task_runs.insert(), [task_run_row(run) for run in runs])

    def claim_task_run(self, conn: Connection, task_run_id: str, worker: str,
                       groups: set[str] | None = None, default_queue: str = "celery",
                       token: str | None = None) -> TaskRun | None:
        """CREATED -> RUNNING for this worker in one statement; None when another delivery won, it was killed, or
        (with `groups`, the queues the worker serves) the run belongs to a group this worker does not serve. The
        claim that wins writes `token`: a retry after an outage that hid the answer finds it (`claimed_by`)."""
        statement, params = self._claim(task_run_id, worker, groups, default_queue, token)
        row = conn.execute(statement, params).first()
        return task_run_from_row(row._mapping) if row is not None else None

    @staticmethod
    def _claim(task_run_id: str, worker: str, groups: set[str] | None, default_queue: str,
               token: str | None) -> tuple[Any, dict[str, Any]]:
        params: dict[str, Any] = {"b_run": task_run_id, "b_worker": worker, "b_pid": os.getpid(), "b_now": now(),
                                  "b_token": token}
        if groups is None:
            return statements.CLAIM, params
        params["b_groups"] = sorted(groups)
        return (statements.CLAIM_IN_GROUPS_OR_DEFAULT if default_queue in groups else statements.CLAIM_IN_GROUPS,
                params)

    def claim_with_execution(self, conn: Connection, execution_id: str, task_run_id: str, worker: str,
                             groups: set[str] | None = None, default_queue: str = "celery",
                             token: str | None = None, with_source: bool = False) -> tuple[Execution, TaskRun] | None:
        """`claim_task_run`, and the execution without its runs (with its flow source if asked), read in the same
        statement on PostgreSQL."""
        if self.is_sqlite:
            ex = self.load_execution(conn, execution_id, with_runs=False)
            run = self.claim_task_run(conn, task_run_id, worker, groups, default_queue, token)
            return (ex, run) if run is not None else None
        statement, params = self._claim(task_run_id, worker, groups, default_queue, token)
        row = conn.execute(statements.CLAIMS_WITH_EXECUTION[statement, with_source], params).first()
        if row is None:
            return None
        mapping = row._mapping
        prefix = statements.EXECUTION_PREFIX
        fields = {key[len(prefix):]: value for key, value in mapping.items() if key.startswith(prefix)}
        ex = execution_from_row(fields)
        ex.flow_source = fields.get("flow_source")
        return ex, task_run_from_row(mapping)

    def end_waiting(self, conn: Connection, execution_id: str, version: int, state: State, moment: datetime) -> None:
        """Every CREATED run of the execution ends in `state`, in one statement: a claim racing it either won before
        (the run is RUNNING) or finds nothing to claim, so a kill of thousands of waiting runs cannot lose to claims
        run after run. Used in a step (`version`), which then reads the execution's runs again."""
        conn.execute(task_runs.update()
                     .where(task_runs.c.execution_id == execution_id, task_runs.c.state == State.CREATED.value)
                     .values(state=state.value, ended=moment, next_at=None, version=version,
                             row_version=task_runs.c.row_version + 1))

    def claimed_by(self, conn: Connection, task_run_id: str, token: str) -> TaskRun | None:
        """The run, if the claim that holds it is the one that wrote `token`."""
        run = self.load_task_run(conn, task_run_id)
        return run if run is not None and run.state == State.RUNNING and run.claim_token == token else None

    def take_over(self, conn: Connection, run: TaskRun, lost: Attempt) -> TaskRun | None:
        """`run`, RUNNING in a process of this worker that died, claimed by this process, with the attempt the dead
        process started recorded as `lost`; None if anything changed it since it was read."""
        row = conn.execute(
            task_runs.update()
            .where(task_runs.c.id == run.id, task_runs.c.row_version == run.row_version,
                   task_runs.c.state == State.RUNNING.value)
            .values(worker_pid=os.getpid(), attempts=[a.to_json() for a in [*run.attempts, lost]],
                    row_version=task_runs.c.row_version + 1)
            .returning(*task_runs.c)
        ).first()
        return task_run_from_row(row._mapping) if row is not None else None

    def load_task_runs(self, conn: Connection, execution_id: str) -> list[TaskRun]:
        rows = conn.execute(
            sa.select(task_runs).where(task_runs.c.execution_id == execution_id).order_by(task_runs.c.seq)
        )
        return [task_run_from_row(r._mapping) for r in rows]

    def set_external_id(self, task_run_id: str, external_id: str) -> None:
        """What a runner started (container, job, process group), saved the moment it exists. Steps never write
        this column, so it needs no version."""
        with self.begin() as conn:
            conn.execute(task_runs.update().where(task_runs.c.id == task_run_id).values(external_id=external_id))

    def load_execution(self, conn: Connection, execution_id: str, with_runs: bool = True) -> Execution:
        """The execution without its flow source (see `flow_source`), and its task runs when asked."""
        row = conn.execute(statements.LOAD_EXECUTION, {"b_execution": execution_id}).first()
        if row is None:
            raise NotFoundError(f"Execution {execution_id} not found")
        ex = execution_from_row(row._mapping)
        if with_runs:
            ex.task_runs = self.load_task_runs(conn, execution_id)
        return ex

    def flow_source(self, execution_id: str) -> str:
        with self.reads() as conn:
            source = conn.execute(sa.select(executions.c.flow_source).where(executions.c.id == execution_id)).scalar()
        if source is None:
            raise NotFoundError(f"Execution {execution_id} not found")
        return str(source)

    def get_execution(self, execution_id: str, with_runs: bool = True) -> Execution:
        with self.reads() as conn:
            return self.load_execution(conn, execution_id, with_runs)

    def execution_state(self, execution_id: str) -> State:
        with self.reads() as conn:
            value = conn.execute(sa.select(executions.c.state).where(executions.c.id == execution_id)).scalar()
        if value is None:
            raise NotFoundError(f"Execution {execution_id} not found")
        return State(value)

    def states_of(self, execution_id: str, task_run_id: str) -> tuple[State, State | None]:
        """An execution's state and one of its task run's, in one query: what a running task's KillWatch polls."""
        query = (sa.select(executions.c.state, task_runs.c.state)
                 .select_from(executions.outerjoin(task_runs, task_runs.c.id == task_run_id))
                 .where(executions.c.id == execution_id))
        with self.reads() as conn:
            row = conn.execute(query).first()
        if row is None:
            raise NotFoundError(f"Execution {execution_id} not found")
        return State(row[0]), State(row[1]) if row[1] else None

    def list_executions(
        self,
        namespace: str | None = None,
        flow_id: str | None = None,
        state: str | None = None,
        limit: int = 50,
        with_runs: bool = True,
    ) -> list[Execution]:
        query = sa.select(executions.c.id).order_by(executions.c.created.desc()).limit(limit)
        if namespace:
            query = query.where(
                sa.or_(executions.c.namespace == namespace, executions.c.namespace.startswith(namespace + "."))
            )
        if flow_id:
            query = query.where(executions.c.flow_id == flow_id)
        if state:
            query = query.where(executions.c.state == state.upper())
        with self.reads() as conn:
            ids = [row.id for row in conn.execute(query)]
            return [self.load_execution(conn, i, with_runs) for i in ids]

    def due_timers(self, moment: datetime) -> list[str]:
        """Executions with a retry, pause or wait that is due, or a MAX_DURATION sla to check."""
        runs = sa.select(task_runs.c.execution_id).where(task_runs.c.next_at.is_not(None),
                                                         task_runs.c.next_at <= moment)
        slas = sa.select(executions.c.id).where(executions.c.sla_due.is_not(None), executions.c.sla_due <= moment,
                                                executions.c.state.not_in([s.value for s in TERMINAL]))
        with self.reads() as conn:
            return [row[0] for row in conn.execute(sa.union(runs, slas))]

    def stalled_executions(self, older_than: timedelta) -> list[str]:
        """Executions stuck in CREATED (their start message was lost, e.g. the server was down)."""
        query = sa.select(executions.c.id).where(
            executions.c.state == State.CREATED.value, executions.c.created <= now() - older_than
        )
        with self.reads() as conn:
            return [row.id for row in conn.execute(query)]

    def running_on(self, worker: str) -> list[tuple[str, str, int | None]]:
        """(execution id, task run id, claiming process) of the runs RUNNING on `worker`."""
        query = sa.select(task_runs.c.execution_id, task_runs.c.id, task_runs.c.worker_pid).where(
            task_runs.c.worker == worker, task_runs.c.state == State.RUNNING.value
        )
        with self.reads() as conn:
            return [(row.execution_id, row.id, row.worker_pid) for row in conn.execute(query)]



def _changed_rows(changed: Sequence[TaskRun], version: int) -> list[dict[str, Any]]:
    """UPDATE_RUN_IF_UNCHANGED's rows: what may change, and the row version each copy was read at."""
    rows = [{**task_run_row(run), "version": version, "row_version": run.row_version + 1,
             "b_id": run.id, "b_row_version": run.row_version} for run in changed]
    for row in rows:
        for frozen in FROZEN_RUN_COLUMNS:
            del row[frozen]
    return rows


def _check_unchanged(execution_id: str, changed: Sequence[TaskRun], updated: int) -> None:
    if updated != len(changed):
        raise StaleRun(f"{len(changed) - updated} of {len(changed)} task runs of execution {execution_id} changed "
                       "since they were read")
    for run in changed:
        run.row_version += 1
