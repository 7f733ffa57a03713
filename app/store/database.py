"""Persistence: SQLAlchemy Core over SQLite (embedded) or PostgreSQL (cluster).

Every executor step runs inside `Store.locked(execution_id)`: a transaction holding the execution's row lock
(SELECT ... FOR UPDATE on PostgreSQL, BEGIN IMMEDIATE on SQLite), so two task runs of one execution that end at
once are folded in one after the other, never both on the same stale view.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from app.errors import NotFoundError
from app.model.records import Attempt, Execution, TaskRun, now
from app.model.states import TERMINAL, State
from app.store.tables import executions, flows, kv, logs, task_runs


def _aware(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


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


class Store:
    def __init__(self, url: str):
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self._pid = os.getpid()
        self.engine = self._make_engine()
        self.migrate()

    def _make_engine(self) -> Engine:
        if self.is_sqlite:
            return _sqlite_engine(self.url)
        url = self.url.replace("postgresql://", "postgresql+psycopg://", 1)
        return sa.create_engine(url, pool_size=5, max_overflow=10, pool_recycle=1800)

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
    def locked(self, execution_id: str) -> Iterator[tuple[Connection, Execution]]:
        """A transaction holding the lock of one execution, with the execution (and its task runs) read in it."""
        with self.engine.connect().execution_options(lock=True) as conn, conn.begin():
            yield conn, self.load_execution(conn, execution_id, for_update=not self.is_sqlite)

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
        with self.engine.connect() as conn:
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
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(latest.order_by(flows.c.namespace, flows.c.id))]

    # -- executions and task runs --------------------------------------------------------------------------------
    def insert_execution(self, conn: Connection, ex: Execution) -> None:
        conn.execute(executions.insert().values(**_execution_row(ex)))

    def update_execution(self, conn: Connection, ex: Execution) -> None:
        row = _execution_row(ex)
        for frozen in ("id", "flow_source", "namespace", "flow_id", "flow_revision", "created", "trigger",
                       "trigger_key"):
            del row[frozen]  # never change after creation; the source alone can be large
        conn.execute(executions.update().where(executions.c.id == ex.id).values(**row))

    def insert_task_runs(self, conn: Connection, runs: list[TaskRun]) -> None:
        if runs:
            conn.execute(task_runs.insert(), [_task_run_row(run) for run in runs])

    def claim_task_run(self, conn: Connection, task_run_id: str, worker: str,
                       groups: set[str] | None = None, default_queue: str = "celery") -> TaskRun | None:
        """CREATED -> RUNNING for this worker in one statement; None when another delivery won, it was killed, or
        (with `groups`, the queues the worker serves) the run belongs to a group this worker does not serve."""
        moment = now()
        query = task_runs.update().where(task_runs.c.id == task_run_id, task_runs.c.state == State.CREATED.value)
        if groups is not None:
            own_group = task_runs.c.worker_group.in_(sorted(groups))
            query = query.where(sa.or_(own_group, task_runs.c.worker_group.is_(None)) if default_queue in groups
                                else own_group)
        row = conn.execute(
            query
            .values(state=State.RUNNING.value, worker=worker, next_at=None,
                    started=sa.func.coalesce(task_runs.c.started, moment))
            .returning(*task_runs.c)
        ).first()
        return _task_run_from_row(row._mapping) if row is not None else None

    def load_task_runs(self, conn: Connection, execution_id: str) -> list[TaskRun]:
        rows = conn.execute(
            sa.select(task_runs).where(task_runs.c.execution_id == execution_id).order_by(task_runs.c.seq)
        )
        return [_task_run_from_row(r._mapping) for r in rows]

    def update_task_run(self, conn: Connection, run: TaskRun) -> None:
        conn.execute(task_runs.update().where(task_runs.c.id == run.id).values(**_task_run_row(run)))

    def set_external_id(self, task_run_id: str, external_id: str) -> None:
        """What a runner started (container, job, process group), saved the moment it exists."""
        with self.begin() as conn:
            conn.execute(task_runs.update().where(task_runs.c.id == task_run_id).values(external_id=external_id))

    def load_execution(self, conn: Connection, execution_id: str, with_runs: bool = True,
                       for_update: bool = False) -> Execution:
        """The execution without its flow source (see `flow_source`), and its task runs when asked."""
        query = sa.select(*_EXECUTION_COLUMNS).where(executions.c.id == execution_id)
        row = conn.execute(query.with_for_update() if for_update else query).first()
        if row is None:
            raise NotFoundError(f"Execution {execution_id} not found")
        ex = _execution_from_row(row._mapping)
        if with_runs:
            ex.task_runs = self.load_task_runs(conn, execution_id)
        return ex

    def flow_source(self, execution_id: str) -> str:
        with self.engine.connect() as conn:
            source = conn.execute(sa.select(executions.c.flow_source).where(executions.c.id == execution_id)).scalar()
        if source is None:
            raise NotFoundError(f"Execution {execution_id} not found")
        return str(source)

    def get_execution(self, execution_id: str, with_runs: bool = True) -> Execution:
        with self.engine.connect() as conn:
            return self.load_execution(conn, execution_id, with_runs)

    def execution_state(self, execution_id: str) -> State:
        with self.engine.connect() as conn:
            value = conn.execute(sa.select(executions.c.state).where(executions.c.id == execution_id)).scalar()
        if value is None:
            raise NotFoundError(f"Execution {execution_id} not found")
        return State(value)

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
        with self.engine.connect() as conn:
            ids = [row.id for row in conn.execute(query)]
            return [self.load_execution(conn, i, with_runs) for i in ids]

    def due_timers(self, moment: datetime) -> list[str]:
        """Executions with a retry, pause or wait that is due."""
        query = (
            sa.select(task_runs.c.execution_id)
            .where(task_runs.c.next_at.is_not(None), task_runs.c.next_at <= moment)
            .distinct()
        )
        with self.engine.connect() as conn:
            return [row.execution_id for row in conn.execute(query)]

    def stalled_executions(self, older_than: timedelta) -> list[str]:
        """Executions stuck in CREATED (their start message was lost, e.g. the server was down)."""
        query = sa.select(executions.c.id).where(
            executions.c.state == State.CREATED.value, executions.c.created <= now() - older_than
        )
        with self.engine.connect() as conn:
            return [row.id for row in conn.execute(query)]

    def running_on(self, worker: str) -> list[tuple[str, str]]:
        query = sa.select(task_runs.c.execution_id, task_runs.c.id).where(
            task_runs.c.worker == worker, task_runs.c.state == State.RUNNING.value
        )
        with self.engine.connect() as conn:
            return [(row.execution_id, row.id) for row in conn.execute(query)]

    def ended_children_of_running_subflows(self) -> list[str]:
        """Child executions that ended while their parent's Subflow run still waits (the notice was lost)."""
        child = executions.alias("child")
        query = (
            sa.select(child.c.id)
            .join(task_runs, task_runs.c.id == child.c.parent_task_run_id)
            .where(task_runs.c.state == State.RUNNING.value, child.c.state.in_([s.value for s in TERMINAL]))
        )
        with self.engine.connect() as conn:
            return [row.id for row in conn.execute(query)]

    # -- logs ---------------------------------------------------------------------------------------------------
    def append_logs(self, conn: Connection | None, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        if conn is None:
            with self.engine.begin() as own:
                own.execute(logs.insert(), rows)
        else:
            conn.execute(logs.insert(), rows)

    def logged_until(self, execution_id: str, task_run_id: str) -> datetime | None:
        """When the last log row that an ended attempt of this task run wrote itself was stored. A row stamped at or
        after its attempt's end is not the attempt's: the notice that a lost worker's run is sent again."""
        with self.engine.connect() as conn:
            attempts = conn.execute(sa.select(task_runs.c.attempts).where(task_runs.c.id == task_run_id)).scalar()
            ends = [(index, Attempt.from_json(data).end) for index, data in enumerate(attempts or [])]
            latest = [conn.execute(sa.select(sa.func.max(logs.c.timestamp)).where(
                logs.c.execution_id == execution_id, logs.c.task_run_id == task_run_id, logs.c.attempt == index,
                logs.c.timestamp < end)).scalar() for index, end in ends if end is not None]
        found = [moment for moment in map(_aware, latest) if moment is not None]
        return max(found, default=None)

    def logs(self, execution_id: str, after: int = 0, min_level: str | None = None) -> list[dict[str, Any]]:
        query = (
            sa.select(logs).where(logs.c.execution_id == execution_id, logs.c.id > after).order_by(logs.c.id)
        )
        with self.engine.connect() as conn:
            result = [dict(r._mapping) for r in conn.execute(query)]
        for row in result:
            row["timestamp"] = _aware(row["timestamp"])
        return result

    # -- key-value store ----------------------------------------------------------------------------------------
    def kv_get(self, namespace: str, key: str) -> Any:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(kv).where(kv.c.namespace == namespace, kv.c.key == key)).first()
        if row is None:
            return None
        expires = _aware(row.expires)
        if expires and expires < now():
            return None
        return row.value

    def kv_put(self, namespace: str, key: str, value: Any, ttl: timedelta | None = None) -> None:
        expires = now() + ttl if ttl else None
        insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        upsert = insert(kv).values(namespace=namespace, key=key, value=value, expires=expires)
        with self.engine.begin() as conn:  # one atomic statement: concurrent writers of a key never collide
            conn.execute(upsert.on_conflict_do_update(index_elements=[kv.c.namespace, kv.c.key],
                                                      set_={"value": upsert.excluded.value,
                                                            "expires": upsert.excluded.expires}))

    def kv_delete(self, namespace: str, key: str) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(kv.delete().where(kv.c.namespace == namespace, kv.c.key == key))
        return bool(result.rowcount)


_EXECUTION_COLUMNS = [c for c in executions.c if c.name != "flow_source"]


def _execution_row(ex: Execution) -> dict[str, Any]:
    return {
        "id": ex.id,
        "namespace": ex.namespace,
        "flow_id": ex.flow_id,
        "flow_revision": ex.flow_revision,
        "flow_source": ex.flow_source,
        "state": ex.state.value,
        "inputs": ex.inputs,
        "outputs": ex.outputs,
        "labels": ex.labels,
        "parent_execution_id": ex.parent_execution_id,
        "parent_task_run_id": ex.parent_task_run_id,
        "trigger": ex.trigger,
        "trigger_key": ex.trigger_key,
        "downstream_checked": ex.downstream_checked,
        "error": ex.error,
        "created": ex.created,
        "started": ex.started,
        "ended": ex.ended,
    }


def _execution_from_row(row: Any) -> Execution:
    return Execution(
        id=row["id"],
        namespace=row["namespace"],
        flow_id=row["flow_id"],
        flow_revision=row["flow_revision"],
        flow_source=None,
        state=State(row["state"]),
        inputs=row["inputs"] or {},
        outputs=row["outputs"] or {},
        labels=row["labels"] or {},
        parent_execution_id=row["parent_execution_id"],
        parent_task_run_id=row["parent_task_run_id"],
        trigger=row["trigger"],
        trigger_key=row["trigger_key"],
        downstream_checked=row["downstream_checked"],
        error=row["error"],
        created=_aware(row["created"]) or now(),
        started=_aware(row["started"]),
        ended=_aware(row["ended"]),
    )


def _task_run_row(run: TaskRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "execution_id": run.execution_id,
        "task_id": run.task_id,
        "parent_id": run.parent_id or "",
        "value": run.value if run.value is not None else "",
        "has_value": run.value is not None,
        "loop_values": run.values,
        "iteration": run.iteration,
        "state": run.state.value,
        "attempts": [a.to_json() for a in run.attempts],
        "outputs": run.outputs,
        "worker_group": run.worker_group,
        "worker": run.worker,
        "external_id": run.external_id,
        "error": run.error,
        "created": run.created,
        "started": run.started,
        "ended": run.ended,
        "next_at": run.next_at,
    }


def _task_run_from_row(row: Any) -> TaskRun:
    return TaskRun(
        id=row["id"],
        execution_id=row["execution_id"],
        task_id=row["task_id"],
        parent_id=row["parent_id"] or None,
        value=row["value"] if row["has_value"] else None,
        values=row["loop_values"] or [],
        iteration=row["iteration"],
        state=State(row["state"]),
        attempts=[Attempt.from_json(a) for a in row["attempts"] or []],
        outputs=row["outputs"] or {},
        worker_group=row["worker_group"],
        worker=row["worker"],
        external_id=row["external_id"],
        error=row["error"],
        created=_aware(row["created"]) or now(),
        started=_aware(row["started"]),
        ended=_aware(row["ended"]),
        next_at=_aware(row["next_at"]),
    )
