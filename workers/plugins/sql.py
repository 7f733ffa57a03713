"""Kestra's JDBC tasks on SQLAlchemy: `io.kestra.plugin.jdbc.<db>.Query` (one statement) and `Queries` (a script),
for PostgreSQL, MySQL, MariaDB, SQLite and DuckDB, with Kestra's properties and outputs.

`url` is Kestra's (`jdbc:postgresql://host:5432/db`) or SQLAlchemy's (`postgresql://...`); `username` and
`password` are set on it (rendered on the worker: secrets never travel). `parameters` are bound to `:name`
placeholders by the driver, never formatted into the SQL. `fetchType`: NONE (default), FETCH_ONE (`row`), FETCH
(`rows`, `size`) or STORE (an Ion file in the internal storage, `uri` and `size`, streamed from a server-side cursor
`fetchSize` rows at a time: the worker's memory does not grow with the result). `afterSQL` runs in the same
transaction, after the fetch. A kill or the task's timeout cancels the statement on the database side.
"""

from __future__ import annotations

import contextlib
import re
import threading
import zoneinfo
from collections.abc import Iterator
from typing import Any, ClassVar, Literal

from workers.plugin_api import RunContext, RunnableTask, TaskFailure, TaskKilled
from workers.plugins.sql_support import DIALECTS, Dialect, cancel, ion_line, json_cell, split_statements, sqlalchemy_url
from workers.plugins.storage import new_spool, positive_int, store_spooled

FetchType = Literal["NONE", "FETCH_ONE", "FETCH", "STORE"]
CONNECT_TIMEOUT = 10  # seconds: a refused or unreachable database fails the task in seconds, not minutes


class _Sql(RunnableTask):
    dialect: ClassVar[str]
    url: str
    username: str | None = None
    password: str | None = None
    timeZoneId: str | None = None
    sql: str
    parameters: dict[str, Any] | str | None = None
    fetchType: FetchType | str = "NONE"
    fetchSize: int | str = 10000
    afterSQL: str | None = None
    store: bool = False  # deprecated: fetchType STORE
    fetchOne: bool = False  # deprecated: fetchType FETCH_ONE
    fetch: bool = False  # deprecated: fetchType FETCH

    # -- what the task's properties render to ------------------------------------------------------------------
    def _fetch_type(self, ctx: RunContext) -> str:
        if self.fetch:
            return "FETCH"
        if self.fetchOne:
            return "FETCH_ONE"
        if self.store:
            return "STORE"
        value = ctx.render_str(self.fetchType).strip().upper()
        if value not in ("NONE", "FETCH_ONE", "FETCH", "STORE"):
            raise TaskFailure(f"fetchType must be NONE, FETCH_ONE, FETCH or STORE, got '{value}'")
        return value

    def _zone(self, ctx: RunContext) -> zoneinfo.ZoneInfo | None:
        if not self.timeZoneId:
            return None
        name = ctx.render_str(self.timeZoneId).strip()
        try:
            return zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise TaskFailure(f"timeZoneId: unknown time zone '{name}'") from None

    def _parameters(self, ctx: RunContext) -> dict[str, Any] | None:
        if self.parameters is None:
            return None
        rendered = ctx.render(self.parameters)
        if not isinstance(rendered, dict):
            raise TaskFailure(f"parameters must render to a map of names to values, got {type(rendered).__name__}")
        return {str(k): v for k, v in rendered.items()}

    # -- connection and statements ---------------------------------------------------------------------------
    def _connection(self, ctx: RunContext) -> contextlib.AbstractContextManager[Any]:
        return connection(ctx, self.dialect, self.url, self.username, self.password)

    def _execute(self, ctx: RunContext, conn: Any, statement: str, params: dict[str, Any] | None,
                 *, stream: int | None = None) -> Any:
        import sqlalchemy as sa

        # A server-side cursor (for a SELECT) when streaming: rows come `stream` at a time.
        options = {"stream_results": True, "yield_per": stream} if stream is not None else {}
        if params:
            return conn.execute(sa.text(statement), params, execution_options=options)
        return conn.exec_driver_sql(statement, execution_options=options)  # as written: no placeholder is looked for

    def _results(self, ctx: RunContext, statement: str, result: Any, fetch_type: str) -> dict[str, Any] | None:
        """The outputs of one statement's result (None: it returned no rows, e.g. an INSERT)."""
        if not result.returns_rows or (self.dialect == "duckdb" and _counts_only(statement)):
            result.close()
            return None
        zone = self._zone(ctx)
        columns = list(result.keys())
        if fetch_type == "FETCH_ONE":
            first = result.first()
            row = {c: json_cell(v, zone) for c, v in zip(columns, first, strict=True)} if first is not None else None
            return {"row": row, "size": 1 if first is not None else 0}
        if fetch_type == "FETCH":
            rows = [{c: json_cell(v, zone) for c, v in zip(columns, r, strict=True)} for r in result]
            return {"rows": rows, "size": len(rows)}
        if fetch_type == "STORE":
            spool, size = new_spool(), 0
            try:
                for r in result:
                    if ctx.killed:
                        raise TaskKilled("killed while storing rows")
                    spool.write(ion_line(dict(zip(columns, r, strict=True)), zone))
                    size += 1
            except BaseException:
                spool.close()
                raise
            return {"uri": store_spooled(ctx, "result.ion", spool), "size": size}
        result.close()
        ctx.log("INFO", "fetchType is NONE: no rows are returned")
        return {}


class _Query(_Sql):
    """One statement (several are refused: use Queries)."""

    def run(self, ctx: RunContext) -> dict[str, Any]:
        statements = split_statements(ctx.render_str(self.sql))
        if len(statements) != 1:
            raise TaskFailure(f"sql holds {len(statements)} statements: the Query task runs one; use the Queries "
                              "task for a script")
        fetch_type, params = self._fetch_type(ctx), self._parameters(ctx)
        stream = positive_int(ctx, self.fetchSize, "fetchSize") if fetch_type == "STORE" else None
        with self._connection(ctx) as conn:
            result = self._execute(ctx, conn, statements[0], params, stream=stream)
            outputs = self._results(ctx, statements[0], result, fetch_type)
            if self.afterSQL:
                self._execute(ctx, conn, ctx.render_str(self.afterSQL), params)
        return outputs or {}


class _Queries(_Sql):
    """A script: its statements in order, in one transaction unless `transaction: false`; `outputs` holds the
    outputs of each statement that returned rows."""

    transaction: bool | str = True

    def run(self, ctx: RunContext) -> dict[str, Any]:
        statements = split_statements(ctx.render_str(self.sql))
        if not statements:
            raise TaskFailure("sql holds no statement")
        fetch_type, params = self._fetch_type(ctx), self._parameters(ctx)
        stream = positive_int(ctx, self.fetchSize, "fetchSize") if fetch_type == "STORE" else None
        one = self.transaction if isinstance(self.transaction, bool) else (
            ctx.render_str(self.transaction).strip().lower() == "true")
        outputs: list[dict[str, Any]] = []
        with self._connection(ctx) as conn:
            for statement in statements:
                if ctx.killed:
                    raise TaskKilled("killed between statements")
                result = self._execute(ctx, conn, statement, params, stream=stream)
                found = self._results(ctx, statement, result, fetch_type)
                if found is not None:
                    outputs.append(found)
                if not one:
                    conn.commit()  # each statement stands on its own; the next one begins another transaction
            if self.afterSQL:
                self._execute(ctx, conn, ctx.render_str(self.afterSQL), params)
        return {"outputs": outputs}


@contextlib.contextmanager
def connection(ctx: RunContext, dialect_name: str, url_text: str, username: str | None,
           password: str | None) -> Iterator[Any]:
    """A connection whose transaction is committed when the block ends without error (rolled back otherwise);
    the running statement is cancelled on kill."""
    try:
        import sqlalchemy as sa
        from sqlalchemy.pool import NullPool
    except ImportError as exc:  # pragma: no cover - SQLAlchemy is a core dependency
        raise TaskFailure(str(exc)) from exc
    dialect = DIALECTS[dialect_name]
    url = sqlalchemy_url(dialect, ctx.render_str(url_text), _opt(ctx, username), _opt(ctx, password))
    where = url.render_as_string(hide_password=True)
    args = {"connect_timeout": CONNECT_TIMEOUT} if dialect.driver not in ("sqlite", "duckdb") else {}
    try:
        engine = sa.create_engine(url, poolclass=NullPool, connect_args=args)
    except ImportError as exc:
        raise TaskFailure(f"The {dialect.name} tasks need their driver: pip install "
                          f"'celestra[{dialect.install}]' ({exc})") from exc
    try:
        try:
            conn = engine.connect()
        except sa.exc.DBAPIError as exc:
            raise TaskFailure(f"Cannot connect to {dialect.name} at {where}: {_reason(exc)}") from None
        with conn, _cancelled_on_kill(ctx, dialect, conn, url):
            try:
                yield conn
                conn.commit()
            except sa.exc.DBAPIError as exc:
                if ctx.killed:
                    raise TaskKilled("the statement was cancelled") from None
                raise TaskFailure(f"{dialect.name} query failed: {_reason(exc)}") from None
    finally:
        engine.dispose()


_WRITES = re.compile(r"^\s*(INSERT|UPDATE|DELETE|MERGE|CREATE|DROP|ALTER|COPY|TRUNCATE)\b", re.IGNORECASE)


def _counts_only(statement: str) -> bool:
    """DuckDB answers a write with a one-row `Count` result; JDBC (so Kestra) sees no result set there."""
    return bool(_WRITES.match(statement)) and "RETURNING" not in statement.upper()


def _opt(ctx: RunContext, value: str | None) -> str | None:
    return ctx.render_str(value) if value is not None else None


def _reason(exc: Any) -> str:
    """The database's own message, on one line, without SQLAlchemy's wrapping."""
    orig = getattr(exc, "orig", None) or exc
    return " ".join(str(orig).split()) or type(orig).__name__


@contextlib.contextmanager
def _cancelled_on_kill(ctx: RunContext, dialect: Dialect, conn: Any, url: Any) -> Iterator[None]:
    done = threading.Event()
    raw = conn.connection.dbapi_connection

    def watch() -> None:
        while not done.is_set():
            if ctx.kill_event.wait(0.1):
                with contextlib.suppress(Exception):  # the statement may have ended meanwhile
                    cancel(dialect, raw, url)
                return

    watcher = threading.Thread(target=watch, daemon=True, name="sql-cancel")
    watcher.start()
    try:
        yield
    finally:
        done.set()


# -- the task types, named as Kestra names them --------------------------------------------------------------

class PostgresQuery(_Query):
    type: Literal["io.kestra.plugin.jdbc.postgresql.Query"]
    dialect: ClassVar[str] = "postgresql"


class PostgresQueries(_Queries):
    type: Literal["io.kestra.plugin.jdbc.postgresql.Queries"]
    dialect: ClassVar[str] = "postgresql"


class MySqlQuery(_Query):
    type: Literal["io.kestra.plugin.jdbc.mysql.Query"]
    dialect: ClassVar[str] = "mysql"


class MySqlQueries(_Queries):
    type: Literal["io.kestra.plugin.jdbc.mysql.Queries"]
    dialect: ClassVar[str] = "mysql"


class MariaDbQuery(_Query):
    type: Literal["io.kestra.plugin.jdbc.mariadb.Query"]
    dialect: ClassVar[str] = "mariadb"


class MariaDbQueries(_Queries):
    type: Literal["io.kestra.plugin.jdbc.mariadb.Queries"]
    dialect: ClassVar[str] = "mariadb"


class SqliteQuery(_Query):
    type: Literal["io.kestra.plugin.jdbc.sqlite.Query"]
    dialect: ClassVar[str] = "sqlite"


class SqliteQueries(_Queries):
    type: Literal["io.kestra.plugin.jdbc.sqlite.Queries"]
    dialect: ClassVar[str] = "sqlite"


class DuckDbQuery(_Query):
    type: Literal["io.kestra.plugin.jdbc.duckdb.Query"]
    dialect: ClassVar[str] = "duckdb"


class DuckDbQueries(_Queries):
    type: Literal["io.kestra.plugin.jdbc.duckdb.Queries"]
    dialect: ClassVar[str] = "duckdb"


TASKS: list[type[RunnableTask]] = [  # the `sql` family (pyproject.toml)
    PostgresQuery, PostgresQueries, MySqlQuery, MySqlQueries, MariaDbQuery, MariaDbQueries, SqliteQuery, SqliteQueries,
    DuckDbQuery, DuckDbQueries]
