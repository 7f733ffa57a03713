"""Kestra's JDBC polling trigger, `io.kestra.plugin.jdbc.<db>.Trigger`: runs its query on a worker of its group
every `interval` and starts an execution when the query returns rows (`size > 0`), with the Query task's outputs
as `{{ trigger.row }}`, `{{ trigger.rows }}`, `{{ trigger.uri }}` and `{{ trigger.size }}`.

The query is the Query task's (workers/plugins/sql.py): the same URLs, bound parameters, fetch types, and the same
cancellation on the database side when the evaluation times out. `fetchType` defaults to FETCH here: NONE returns no
rows, so a trigger with it would never fire, and is refused.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import field_validator

from app.model.polling import Polled, PollingTrigger
from workers.plugin_api import RunContext
from workers.plugins import sql as sql_tasks

QueryClass = type[sql_tasks._Query]  # the Query task a trigger runs (`type` is a field name in the classes)


class _SqlTrigger(PollingTrigger):
    query: ClassVar[QueryClass]
    url: str
    username: str | None = None
    password: str | None = None
    timeZoneId: str | None = None
    sql: str
    parameters: dict[str, Any] | str | None = None
    fetchType: sql_tasks.FetchType | str = "FETCH"
    fetchSize: int | str = 10000
    afterSQL: str | None = None

    @field_validator("fetchType")
    @classmethod
    def _fires(cls, value: str) -> str:
        if value == "NONE":
            raise ValueError("fetchType NONE returns no rows, so the trigger would never fire: use FETCH_ONE, FETCH "
                             "or STORE")
        return value

    def evaluate(self, ctx: RunContext, state: dict[str, Any]) -> Polled:
        names = self.query.model_fields["type"].annotation.__args__  # type: ignore[union-attr]
        query = self.query.model_validate({
            "id": self.id, "type": names[0], "url": self.url, "username": self.username, "password": self.password,
            "timeZoneId": self.timeZoneId, "sql": self.sql, "parameters": self.parameters,
            "fetchType": self.fetchType, "fetchSize": self.fetchSize, "afterSQL": self.afterSQL})
        if query._fetch_type(ctx) == "NONE":
            return Polled("fetchType rendered to NONE: no rows are returned, nothing fires")
        outputs = query.run(ctx)
        size = int(outputs.get("size") or 0)
        if size == 0:
            return Polled("no rows")
        return Polled(f"{size} row{'s' if size != 1 else ''}", variables=outputs)


class PostgresTrigger(_SqlTrigger):
    type: Literal["io.kestra.plugin.jdbc.postgresql.Trigger"]
    query: ClassVar[QueryClass] = sql_tasks.PostgresQuery


class MySqlTrigger(_SqlTrigger):
    type: Literal["io.kestra.plugin.jdbc.mysql.Trigger"]
    query: ClassVar[QueryClass] = sql_tasks.MySqlQuery


class MariaDbTrigger(_SqlTrigger):
    type: Literal["io.kestra.plugin.jdbc.mariadb.Trigger"]
    query: ClassVar[QueryClass] = sql_tasks.MariaDbQuery


class SqliteTrigger(_SqlTrigger):
    type: Literal["io.kestra.plugin.jdbc.sqlite.Trigger"]
    query: ClassVar[QueryClass] = sql_tasks.SqliteQuery


class DuckDbTrigger(_SqlTrigger):
    type: Literal["io.kestra.plugin.jdbc.duckdb.Trigger"]
    query: ClassVar[QueryClass] = sql_tasks.DuckDbQuery


TRIGGERS: list[type[PollingTrigger]] = [PostgresTrigger, MySqlTrigger, MariaDbTrigger, SqliteTrigger, DuckDbTrigger]
