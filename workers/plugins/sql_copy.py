"""Kestra's PostgreSQL COPY tasks: `io.kestra.plugin.jdbc.postgresql.CopyIn` loads a file of the internal storage
into a table, `CopyOut` writes a table or a query's result into one. Both stream: the file goes to and from the
server in chunks through psycopg's COPY protocol, never whole in the worker's memory. The statement is built with
quoted identifiers and literals (psycopg.sql), never by pasting text; a kill or timeout cancels it on the server,
as for the Query task.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from workers.plugin_api import RunContext, RunnableTask, TaskFailure, TaskKilled
from workers.plugins.sql import connection
from workers.plugins.storage import new_spool, owned_file, reading, store_spooled

CHUNK = 1 << 16
Format = Literal["TEXT", "CSV", "BINARY"]


class _Copy(RunnableTask):
    url: str
    username: str | None = None
    password: str | None = None
    table: str | None = None
    columns: list[str] | None = None
    format: Format = "TEXT"
    delimiter: str | None = None
    nullString: str | None = None
    header: bool | None = None
    quote: str | None = None
    escape: str | None = None
    encoding: str | None = None
    oids: bool | None = None

    def _options(self, ctx: RunContext, extra: dict[str, Any]) -> Any:
        from psycopg import sql

        if self.oids:
            raise TaskFailure("oids: PostgreSQL 12 and later have no OIDs on tables; remove it")
        values: dict[str, Any] = {"FORMAT": self.format, "DELIMITER": self.delimiter, "NULL": self.nullString,
                                  "HEADER": self.header, "QUOTE": self.quote, "ESCAPE": self.escape,
                                  "ENCODING": self.encoding, **extra}
        parts: list[Any] = []
        for name, value in values.items():
            if value is None or value == []:
                continue
            if name == "FORMAT":
                parts.append(sql.SQL("FORMAT {}").format(sql.SQL(str(value).lower())))
            elif isinstance(value, bool):
                parts.append(sql.SQL(f"{name} {'true' if value else 'false'}"))
            elif isinstance(value, list):
                parts.append(sql.SQL(f"{name} ({{}})").format(sql.SQL(", ").join(
                    sql.Identifier(ctx.render_str(c)) for c in value)))
            else:
                parts.append(sql.SQL(f"{name} {{}}").format(sql.Literal(ctx.render_str(value))))
        return sql.SQL(", ").join(parts)

    def _target(self, ctx: RunContext) -> Any:
        from psycopg import sql

        if not self.table:
            raise TaskFailure("table is required")
        names = [sql.Identifier(part) for part in ctx.render_str(self.table).strip().split(".")]
        target = sql.SQL(".").join(names)
        if self.columns:
            target = sql.SQL("{} ({})").format(target, sql.SQL(", ").join(
                sql.Identifier(ctx.render_str(c)) for c in self.columns))
        return target

    def _copy(self, ctx: RunContext, statement: Any, transfer: Any) -> int:
        import psycopg

        with connection(ctx, "postgresql", self.url, self.username, self.password) as conn:
            raw = conn.connection.dbapi_connection
            try:
                with raw.cursor() as cursor:
                    with cursor.copy(statement) as copy:
                        transfer(copy)
                    count = int(cursor.rowcount)
                raw.commit()  # the COPY went through the driver's connection: SQLAlchemy began no transaction
                return count
            except psycopg.Error as exc:
                if ctx.killed:
                    raise TaskKilled("the COPY was cancelled") from None
                raise TaskFailure(f"PostgreSQL COPY failed: {' '.join(str(exc).split())}") from None


class PostgresCopyIn(_Copy):
    """Load `from` (a file of the internal storage) into `table`; outputs `rowCount`."""

    type: Literal["io.kestra.plugin.jdbc.postgresql.CopyIn"]
    from_: str = Field(alias="from")
    freeze: bool | None = None
    forceNotNull: list[str] | None = None
    forceNull: list[str] | None = None

    def run(self, ctx: RunContext) -> dict[str, Any]:
        from psycopg import sql

        uri = owned_file(ctx, ctx.render_str(self.from_).strip())
        statement = sql.SQL("COPY {} FROM STDIN WITH ({})").format(self._target(ctx), self._options(ctx, {
            "FREEZE": self.freeze, "FORCE_NOT_NULL": self.forceNotNull, "FORCE_NULL": self.forceNull}))

        def send(copy: Any) -> None:
            with reading(ctx, uri) as source:
                while chunk := source.read(CHUNK):
                    if ctx.killed:
                        raise TaskKilled("killed while copying")
                    copy.write(chunk)

        return {"rowCount": self._copy(ctx, statement, send)}


class PostgresCopyOut(_Copy):
    """Write `table` (or the result of `sql`) into a file of the internal storage; outputs `uri` and
    `rowCount`."""

    type: Literal["io.kestra.plugin.jdbc.postgresql.CopyOut"]
    sql: str | None = None
    forceQuote: list[str] | None = None

    def run(self, ctx: RunContext) -> dict[str, Any]:
        from psycopg import sql

        if (self.sql is None) == (self.table is None):
            raise TaskFailure("set either table or sql")
        source = sql.SQL("({})").format(sql.SQL(ctx.render_str(self.sql))) if self.sql else self._target(ctx)
        statement = sql.SQL("COPY {} TO STDOUT WITH ({})").format(
            source, self._options(ctx, {"FORCE_QUOTE": self.forceQuote}))
        spool = new_spool()

        def receive(copy: Any) -> None:
            for chunk in copy:
                if ctx.killed:
                    raise TaskKilled("killed while copying")
                spool.write(chunk)

        try:
            count = self._copy(ctx, statement, receive)
        except BaseException:
            spool.close()
            raise
        extension = {"CSV": "csv", "BINARY": "bin"}.get(self.format, "txt")
        return {"uri": store_spooled(ctx, f"copy.{extension}", spool), "rowCount": count}


TASKS: list[type[RunnableTask]] = [PostgresCopyIn, PostgresCopyOut]
