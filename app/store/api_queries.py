"""What the REST API asks of the store beyond what the engine does: pages of executions, their labels and
deletion, what runs on which worker, flow revisions and deletions, and the API's bearer tokens (only a SHA-256
of each is kept: a token is 32 random bytes, so a plain hash cannot be reversed by guessing)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from app.errors import CelestraError
from app.model.records import Execution, now
from app.model.states import State
from app.store.rows import aware
from app.store.tables import api_tokens, executions, flows, logs, task_runs

TOKEN_PREFIX = "cel_"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ApiQueries:
    """Part of app/store/database.Store."""

    engine: Engine
    if TYPE_CHECKING:  # Store's own
        def reads(self) -> Connection: ...
        def load_execution(self, conn: Connection, execution_id: str, with_runs: bool = True) -> Execution: ...
        def lock_execution(self, conn: Connection, execution_id: str) -> Execution: ...

    # -- executions ---------------------------------------------------------------------------------------------
    def execution_page(self, namespace: str | None, flow_id: str | None, states: list[str], page: int,
                       size: int) -> tuple[list[Execution], int]:
        """Newest first; `namespace` takes its child namespaces too, as Kestra's search does."""
        where = []
        if namespace:
            where.append(sa.or_(executions.c.namespace == namespace,
                                executions.c.namespace.startswith(namespace + ".", autoescape=True)))
        if flow_id:
            where.append(executions.c.flow_id == flow_id)
        if states:
            where.append(executions.c.state.in_([s.upper() for s in states]))
        query = sa.select(executions.c.id).where(*where)
        with self.reads() as conn:
            total = conn.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()
            ids = conn.execute(query.order_by(executions.c.created.desc(), executions.c.id)
                               .limit(size).offset((page - 1) * size)).scalars().all()
            return [self.load_execution(conn, i, with_runs=True) for i in ids], int(total)

    def set_labels(self, execution_id: str, labels: dict[str, str]) -> None:
        """Add or update labels of an ended execution (Kestra allows no other): under the execution's lock, so a
        restart cannot slip in between the check and the write."""
        with self.engine.begin() as conn:
            ex = self.lock_execution(conn, execution_id)
            if not ex.state.terminal:
                raise CelestraError(f"Execution {execution_id} is not terminated ({ex.state.value}): labels are set "
                                    "on an ended execution")
            conn.execute(executions.update().where(executions.c.id == execution_id)
                         .values(labels={**ex.labels, **labels}))

    def delete_execution(self, execution_id: str, *, with_logs: bool = True) -> Execution:
        """An ended execution, its task runs and (`with_logs`) its logs; returned, for its files to go too. A
        running one is refused: its workers would write to rows that are gone."""
        with self.engine.begin() as conn:
            ex = self.lock_execution(conn, execution_id)
            if not ex.state.terminal:
                raise CelestraError(f"Execution {execution_id} is {ex.state.value}: kill it first, or wait for its end")
            conn.execute(task_runs.delete().where(task_runs.c.execution_id == execution_id))
            if with_logs:
                conn.execute(logs.delete().where(logs.c.execution_id == execution_id))
            conn.execute(executions.delete().where(executions.c.id == execution_id))
        return ex

    def running_task_runs(self) -> list[dict[str, Any]]:
        """Every task run RUNNING now, with its worker and execution, in one query (the worker groups page)."""
        query = (sa.select(task_runs.c.id.label("taskRunId"), task_runs.c.task_id.label("taskId"),
                           task_runs.c.execution_id.label("executionId"), executions.c.namespace,
                           executions.c.flow_id.label("flowId"), task_runs.c.worker,
                           task_runs.c.worker_group.label("workerGroup"), task_runs.c.started)
                 .join(executions, executions.c.id == task_runs.c.execution_id)
                 .where(task_runs.c.state == State.RUNNING.value).order_by(task_runs.c.started))
        with self.reads() as conn:
            return [{**row._mapping, "started": aware(row.started)} for row in conn.execute(query)]

    # -- flows ----------------------------------------------------------------------------------------------------
    def flow_revisions(self, namespace: str, flow_id: str) -> list[dict[str, Any]]:
        query = (sa.select(flows.c.revision, flows.c.source, flows.c.created)
                 .where(flows.c.namespace == namespace, flows.c.id == flow_id).order_by(flows.c.revision))
        with self.reads() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def delete_flow(self, namespace: str, flow_id: str) -> bool:
        """Every revision goes (its executions stay); a flow deployed again starts at revision 1."""
        with self.engine.begin() as conn:
            deleted = conn.execute(flows.delete().where(flows.c.namespace == namespace, flows.c.id == flow_id))
        return bool(deleted.rowcount)

    # -- API tokens -----------------------------------------------------------------------------------------------
    def create_api_token(self, name: str) -> str:
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        try:
            with self.engine.begin() as conn:
                conn.execute(api_tokens.insert().values(name=name, token_hash=token_hash(token), created=now()))
        except sa.exc.IntegrityError:
            raise CelestraError(f"an API token named {name!r} exists already (revoke it first)") from None
        return token

    def api_token_names(self) -> list[dict[str, Any]]:
        query = sa.select(api_tokens.c.name, api_tokens.c.created, api_tokens.c.last_used).order_by(api_tokens.c.name)
        with self.reads() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def revoke_api_token(self, name: str) -> bool:
        with self.engine.begin() as conn:
            return bool(conn.execute(api_tokens.delete().where(api_tokens.c.name == name)).rowcount)

    def api_token_owner(self, token: str) -> str | None:
        """The name of this token, or None; its last use is recorded (once a minute at most: not a write per
        request)."""
        digest = token_hash(token)
        with self.reads() as conn:
            row = conn.execute(sa.select(api_tokens.c.name, api_tokens.c.last_used)
                               .where(api_tokens.c.token_hash == digest)).first()
        if row is None:
            return None
        last_used = aware(row.last_used)
        if last_used is None or last_used < now() - timedelta(minutes=1):
            with self.engine.begin() as conn:
                conn.execute(api_tokens.update().where(api_tokens.c.name == row.name).values(last_used=now()))
        return str(row.name)
