"""The store's log rows and key-value entries: what tasks write beside their execution's runs."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from app.model import log_levels
from app.model.records import Attempt, now
from app.store.rows import aware
from app.store.tables import kv, logs, task_runs


class LogsAndKeyValues:
    """Part of app/store/database.Store."""

    engine: Engine

    def reads(self) -> Connection:
        """A connection for reads. Not switched to autocommit: measured, switching a pooled connection's isolation
        level on every read made a 10,000-way fan-out take about twice as long."""
        return self.engine.connect()

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
        with self.reads() as conn:
            attempts = conn.execute(sa.select(task_runs.c.attempts).where(task_runs.c.id == task_run_id)).scalar()
            ends = [(index, Attempt.from_json(data).end) for index, data in enumerate(attempts or [])]
            latest = [conn.execute(sa.select(sa.func.max(logs.c.timestamp)).where(
                logs.c.execution_id == execution_id, logs.c.task_run_id == task_run_id, logs.c.attempt == index,
                logs.c.timestamp < end)).scalar() for index, end in ends if end is not None]
        found = [moment for moment in map(aware, latest) if moment is not None]
        return max(found, default=None)

    def logs(self, execution_id: str, after: int = 0, min_level: str | None = None) -> list[dict[str, Any]]:
        query = (
            sa.select(logs).where(logs.c.execution_id == execution_id, logs.c.id > after).order_by(logs.c.id)
        )
        if min_level is not None:
            query = query.where(logs.c.level.in_(log_levels.from_(min_level)))
        with self.reads() as conn:
            result = [dict(r._mapping) for r in conn.execute(query)]
        for row in result:
            row["timestamp"] = aware(row["timestamp"])
        return result

    # -- key-value store ----------------------------------------------------------------------------------------
    def kv_get(self, namespace: str, key: str) -> Any:
        with self.reads() as conn:
            row = conn.execute(sa.select(kv).where(kv.c.namespace == namespace, kv.c.key == key)).first()
        if row is None:
            return None
        expires = aware(row.expires)
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

    def kv_keys(self, namespace: str, prefix: str = "") -> list[str]:
        """The namespace's keys that start with `prefix` and have not expired, in order."""
        query = sa.select(kv.c.key, kv.c.expires).where(kv.c.namespace == namespace).order_by(kv.c.key)
        if prefix:  # compared in Python: LIKE would read % and _ in the prefix as wildcards
            query = query.where(kv.c.key >= prefix)
        moment = now()
        with self.reads() as conn:
            rows = conn.execute(query).all()
        return [row.key for row in rows if row.key.startswith(prefix)
                and not ((expires := aware(row.expires)) and expires < moment)]

    def kv_delete(self, namespace: str, key: str) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(kv.delete().where(kv.c.namespace == namespace, kv.c.key == key))
        return bool(result.rowcount)
