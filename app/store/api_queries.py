"""What the REST API asks of the store beyond what the engine does: pages of executions, flow revisions and
deletions, and the API's bearer tokens (only a SHA-256 of each is kept: a token is 32 random bytes, so a plain
hash cannot be reversed by guessing)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from app.errors import CelestraError
from app.model.records import Execution, now
from app.store.rows import aware
from app.store.tables import api_tokens, executions, flows

TOKEN_PREFIX = "cel_"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ApiQueries:
    """Part of app/store/database.Store."""

    engine: Engine
    if TYPE_CHECKING:  # Store's own
        def reads(self) -> Connection: ...
        def load_execution(self, conn: Connection, execution_id: str, with_runs: bool = True) -> Execution: ...

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
