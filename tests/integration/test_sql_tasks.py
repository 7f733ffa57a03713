"""Kestra's JDBC tasks (workers/plugins/sql.py) as real flows on the machine's PostgreSQL and MariaDB and on SQLite
and DuckDB files: each fetchType's outputs, bound parameters, afterSQL and transactions, time zones, and clear
failures (bad SQL, a refused connection, a timeout that cancels the statement on the server)."""

from __future__ import annotations

import datetime
import decimal
import secrets
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from groups_support import _base, unavailable

from app.model.states import State

pytestmark = pytest.mark.integration
MARIADB = "mysql+pymysql://root@127.0.0.1:3306/"
POSTGRES_BASE = _base.POSTGRES_BASE  # tests/integration/conftest.py


@dataclass
class Database:
    kind: str  # the jdbc plugin's package: postgresql, mariadb, sqlite, duckdb
    url: str  # Kestra's jdbc: form, as flows write it
    run: Any  # run(sql) on the database directly, for setup and checks

    def task(self, sql: str, kind: str = "Query", **props: Any) -> dict[str, Any]:
        return {"id": "q", "type": f"io.kestra.plugin.jdbc.{self.kind}.{kind}", "url": self.url, "sql": sql, **props}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from app import runtime
    from app.client import Client
    from app.settings import Settings

    settings = Settings(home=tmp_path_factory.mktemp("sql-home"))
    return Client() if runtime.settings() is settings else Client(settings=settings)


def _direct(url: str) -> Any:
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    engine = sa.create_engine(url, poolclass=NullPool)

    def run(sql: str) -> list[Any]:
        with engine.begin() as conn:
            result = conn.exec_driver_sql(sql)
            return [tuple(r) for r in result] if result.returns_rows else []

    return run


@pytest.fixture(scope="module")
def postgres() -> Iterator[Database]:
    import sqlalchemy as sa

    name = f"celestra_sql_{secrets.token_hex(4)}"
    admin = sa.create_engine(POSTGRES_BASE.replace("postgresql://", "postgresql+psycopg://"),
                             isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
    except Exception as exc:
        unavailable("PostgreSQL", exc)
    base = sa.engine.make_url(POSTGRES_BASE)
    yield Database("postgresql", f"jdbc:postgresql://{base.host}:{base.port or 5432}/{name}?user={base.username}",
                   _direct(str(base.set(drivername="postgresql+psycopg", database=name))))
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture(scope="module")
def mariadb() -> Iterator[Database]:
    import sqlalchemy as sa

    name = f"celestra_sql_{secrets.token_hex(4)}"
    admin = sa.create_engine(MARIADB)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
    except Exception as exc:
        unavailable("MariaDB", exc)
    yield Database("mariadb", f"jdbc:mariadb://127.0.0.1:3306/{name}?user=root", _direct(MARIADB + name))
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP DATABASE {name}")


@pytest.fixture(params=["postgresql", "mariadb", "mysql", "sqlite", "duckdb"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    if request.param == "postgresql":
        return request.getfixturevalue("postgres")  # type: ignore[no-any-return]
    if request.param in ("mariadb", "mysql"):  # the MySQL tasks on MariaDB's MySQL protocol (no MySQL server here)
        maria: Database = request.getfixturevalue("mariadb")
        return Database(request.param, maria.url.replace("jdbc:mariadb:", f"jdbc:{request.param}:"), maria.run)
    path = tmp_path / f"test.{request.param}"
    return Database(request.param, f"jdbc:{request.param}:{path}", _direct(f"{request.param}:///{path}"))


def run(client: Any, *tasks: dict[str, Any], timeout: float = 60) -> Any:
    flow = {"id": "sql_flow", "namespace": "sql.tests", "tasks": list(tasks)}
    return client.run(yaml.safe_dump(flow, sort_keys=False), wait=True, timeout=timeout)


def outputs(client: Any, *tasks: dict[str, Any]) -> dict[str, Any]:
    ex = run(client, *tasks)
    assert ex.state == State.SUCCESS, ex.to_json()
    return {r.task_id: r.outputs for r in ex.task_runs}


def failure(client: Any, *tasks: dict[str, Any]) -> str:
    ex = run(client, *tasks)
    assert ex.state == State.FAILED, ex.to_json()
    return str(next(r for r in ex.task_runs if r.state == State.FAILED).error)


def people(db: Database) -> None:
    db.run("DROP TABLE IF EXISTS people")
    db.run("CREATE TABLE people (id INTEGER, name VARCHAR(50), amount DECIMAL(10, 2), born DATE, seen TIMESTAMP, "
           "done BOOLEAN)")
    db.run("INSERT INTO people VALUES (1, 'ada', 12.50, '1815-12-10', '2024-01-02 03:04:05', false), "
           "(2, 'grace', 7.00, '1906-12-09', '2024-06-01 12:00:00', false), (3, NULL, NULL, NULL, NULL, true)")


SELECT = "SELECT id, name, amount, born, seen FROM people ORDER BY id"


def test_each_fetch_type_gives_kestras_outputs(client: Any, db: Database) -> None:
    from amazon.ion import simpleion
    from amazon.ion.simple_types import IonPyNull

    people(db)
    one = outputs(client, db.task(SELECT, fetchType="FETCH_ONE"))["q"]
    seen = "2024-01-02 03:04:05" if db.kind == "sqlite" else "2024-01-02T03:04:05"  # SQLite keeps the text given
    assert one == {"row": {"id": 1, "name": "ada", "amount": 12.5, "born": "1815-12-10", "seen": seen}, "size": 1}
    rows = outputs(client, db.task(SELECT, fetchType="FETCH"))["q"]
    assert rows["size"] == 3 and [r["name"] for r in rows["rows"]] == ["ada", "grace", None]
    assert rows["rows"][2] == {"id": 3, "name": None, "amount": None, "born": None, "seen": None}
    stored = outputs(client, db.task(SELECT, fetchType="STORE"))["q"]
    assert stored["size"] == 3 and stored["uri"].endswith(".ion")
    values = simpleion.loads(client.download(stored["uri"]).decode(), single_value=False)
    assert [None if isinstance(v["name"], IonPyNull) else str(v["name"]) for v in values] == ["ada", "grace", None]
    assert values[0]["amount"] == decimal.Decimal("12.50")
    if db.kind != "sqlite":
        assert values[0]["seen"].replace(tzinfo=None) == datetime.datetime(2024, 1, 2, 3, 4, 5)
    assert outputs(client, db.task(SELECT))["q"] == {}  # NONE, the default: nothing returned
    old = outputs(client, {**db.task(SELECT, fetch=True), "id": "a"}, {**db.task(SELECT, fetchOne=True), "id": "b"},
                  {**db.task(SELECT, store=True), "id": "c"})  # Kestra's deprecated booleans
    assert old["a"]["size"] == 3 and old["b"]["row"]["id"] == 1 and old["c"]["size"] == 3


def test_parameters_are_bound_never_formatted_into_the_sql(client: Any, db: Database) -> None:
    people(db)
    evil = "x'); DROP TABLE people; --"
    outputs(client, db.task("INSERT INTO people (id, name) VALUES (:id, :name)",
                            parameters={"id": "{{ 40 + 2 }}", "name": evil}))
    found = outputs(client, db.task("SELECT name FROM people WHERE id = :id", fetchType="FETCH_ONE",
                                    parameters={"id": 42}))["q"]
    assert found["row"] == {"name": evil}
    assert db.run("SELECT COUNT(*) FROM people")[0][0] == 4  # the table is still there


def test_after_sql_runs_in_the_same_transaction(client: Any, db: Database) -> None:
    people(db)
    out = outputs(client, db.task("SELECT id FROM people WHERE done = false ORDER BY id", fetchType="FETCH",
                                  afterSQL="UPDATE people SET done = true WHERE done = false"))["q"]
    assert [r["id"] for r in out["rows"]] == [1, 2] and db.run("SELECT COUNT(*) FROM people WHERE done = false") \
        == [(0,)]
    assert "query failed" in failure(client, db.task("INSERT INTO people (id) VALUES (9)",
                                                     afterSQL="UPDATE no_such_table SET x = 1"))
    assert db.run("SELECT COUNT(*) FROM people WHERE id = 9") == [(0,)]  # rolled back with it


def test_queries_run_a_script_in_one_transaction_unless_told(client: Any, db: Database) -> None:
    people(db)
    script = "INSERT INTO people (id) VALUES (10); SELECT COUNT(*) AS n FROM people; SELECT name FROM people " \
             "WHERE id = 1;"
    out = outputs(client, db.task(script, kind="Queries", fetchType="FETCH_ONE"))["q"]
    assert out == {"outputs": [{"row": {"n": 4}, "size": 1}, {"row": {"name": "ada"}, "size": 1}]}
    broken = "INSERT INTO people (id) VALUES (11); INSERT INTO no_such_table VALUES (1)"
    assert "query failed" in failure(client, db.task(broken, kind="Queries"))
    assert db.run("SELECT COUNT(*) FROM people WHERE id = 11") == [(0,)]
    assert "query failed" in failure(client, db.task(broken, kind="Queries", transaction=False))
    assert db.run("SELECT COUNT(*) FROM people WHERE id = 11") == [(1,)]  # committed before the failure


def test_query_runs_one_statement(client: Any, db: Database) -> None:
    message = failure(client, db.task("SELECT 1; SELECT 2"))
    assert "sql holds 2 statements: the Query task runs one; use the Queries task" in message
    text = "SELECT 'a;b' AS s -- ; a comment\n"
    assert outputs(client, db.task(text, fetchType="FETCH_ONE"))["q"]["row"] == {"s": "a;b"}


def test_time_zone_id_places_timestamps(client: Any, postgres: Database) -> None:
    out = outputs(client, postgres.task(
        "SELECT TIMESTAMP '2024-01-02 03:04:05' AS naive, TIMESTAMPTZ '2024-01-02 03:04:05+00' AS aware",
        fetchType="FETCH_ONE", timeZoneId="Europe/Paris"))["q"]
    assert out["row"] == {"naive": "2024-01-02T03:04:05+01:00", "aware": "2024-01-02T04:04:05+01:00"}
    assert "unknown time zone 'Mars/Olympus'" in failure(client, postgres.task("SELECT 1", fetchType="FETCH",
                                                                                timeZoneId="Mars/Olympus"))


def test_bad_sql_and_a_refused_connection_are_clear_failures(client: Any, postgres: Database) -> None:
    assert 'PostgreSQL query failed: syntax error at or near "SELEKT"' in failure(client, postgres.task("SELEKT 1"))
    message = failure(client, {**postgres.task("SELECT 1"), "url": "jdbc:postgresql://127.0.0.1:1/db",
                               "username": "u", "password": "hunter2"})
    assert "Cannot connect to PostgreSQL at postgresql+psycopg://u:***@127.0.0.1:1/db" in message
    assert "hunter2" not in message
    assert "url is not a PostgreSQL URL" in failure(client, {**postgres.task("SELECT 1"),
                                                             "url": "jdbc:mysql://127.0.0.1/db"})
    assert "JDBC driver options: not supported yet" in failure(client, {
        **postgres.task("SELECT 1"), "type": "io.kestra.plugin.jdbc.mysql.Query",
        "url": "jdbc:mysql://127.0.0.1:3306/test?useSSL=false"})


SLOW = {"postgresql": "SELECT pg_sleep(30)", "mariadb": "SELECT SLEEP(30)", "mysql": "SELECT SLEEP(30)",
        "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT MAX(x) FROM c",
        "duckdb": "SELECT SUM(a.range * b.range) FROM range(100000000) a, range(1000) b"}


def test_a_timeout_cancels_the_statement_on_the_database(client: Any, db: Database) -> None:
    started = time.monotonic()
    ex = run(client, db.task(SLOW[db.kind], timeout="PT1S"))
    assert ex.state == State.FAILED and "timed out after PT1S" in str(ex.task_runs[0].error)
    assert time.monotonic() - started < 10
    if db.kind == "postgresql":
        running = db.run("SELECT COUNT(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' "
                         "AND state = 'active'")
        assert running == [(0,)], "the query still runs on the server"
    elif db.kind in ("mariadb", "mysql"):
        running = db.run("SELECT COUNT(*) FROM information_schema.processlist WHERE info = 'SELECT SLEEP(30)'")
        assert running == [(0,)], "the query still runs on the server"


def test_a_store_of_100000_rows_keeps_the_workers_memory_flat(client: Any, postgres: Database) -> None:
    """The rows stream from a server-side cursor into the file: what Python holds at its peak is a fraction of the
    file (and smaller still with a smaller fetchSize)."""
    sql = "SELECT g AS id, md5(g::text) AS name, g * 1.5 AS amount FROM generate_series(1, 100000) AS g"
    peaks = {}
    for size in (10000, 500):
        tracemalloc.start()
        try:
            out = outputs(client, postgres.task(sql, fetchType="STORE", fetchSize=size))["q"]
            peaks[size] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert out["size"] == 100000
    file_size = len(client.download(out["uri"]))
    assert file_size > 6_000_000
    assert peaks[10000] < file_size / 2, (peaks, file_size)
    assert peaks[500] < peaks[10000], peaks


def test_postgres_copy_in_and_copy_out_stream_files_through_copy(client: Any, postgres: Database) -> None:
    postgres.run("DROP TABLE IF EXISTS stock; CREATE TABLE stock (item text, qty int, note text)")
    csv = "item;qty;note\nbolt;10;\"a; b\"\nnut;;none\n"
    base = {"url": postgres.url}
    out = outputs(client,
                  {"id": "file", "type": "io.kestra.plugin.core.storage.Write", "content": csv, "extension": ".csv"},
                  {"id": "load", "type": "io.kestra.plugin.jdbc.postgresql.CopyIn", **base, "table": "public.stock",
                   "from": "{{ outputs.file.uri }}", "format": "CSV", "header": True, "delimiter": ";",
                   "columns": ["item", "qty", "note"], "nullString": "", "forceNotNull": ["note"]},
                  {"id": "dump", "type": "io.kestra.plugin.jdbc.postgresql.CopyOut", **base,
                   "sql": "SELECT item, qty FROM stock ORDER BY item", "format": "CSV", "header": True},
                  {"id": "table", "type": "io.kestra.plugin.jdbc.postgresql.CopyOut", **base, "table": "stock",
                   "columns": ["item"], "format": "TEXT"},
                  {"id": "read", "type": "io.kestra.plugin.core.debug.Return",
                   "format": "{{ read(outputs.dump.uri) }}|{{ read(outputs.table.uri) }}"})
    assert out["load"] == {"rowCount": 2}
    assert postgres.run("SELECT item, qty, note FROM stock ORDER BY item") == [("bolt", 10, "a; b"),
                                                                               ("nut", None, "none")]
    assert out["dump"]["rowCount"] == 2 and out["dump"]["uri"].endswith("copy.csv")
    assert out["read"]["value"] == "item,qty\nbolt,10\nnut,\n|bolt\nnut\n"
    message = failure(client, {"id": "file", "type": "io.kestra.plugin.core.storage.Write", "content": "x\n"},
                      {"id": "q", "type": "io.kestra.plugin.jdbc.postgresql.CopyIn", **base,
                       "table": "stock; DROP TABLE stock", "from": "{{ outputs.file.uri }}"})
    assert "PostgreSQL COPY failed" in message and "does not exist" in message, message
    message = failure(client, {"id": "q", "type": "io.kestra.plugin.jdbc.postgresql.CopyOut", **base,
                               "table": "stock; DROP TABLE stock"})
    assert 'relation "stock; drop table stock" does not exist' in message.lower(), message
    assert postgres.run("SELECT COUNT(*) FROM stock") == [(2,)]


def test_postgres_copy_options_reach_the_server(client: Any, postgres: Database) -> None:
    postgres.run("DROP TABLE IF EXISTS stock; CREATE TABLE stock (item text, qty int, note text)")
    base = {"url": postgres.url}
    write = {"id": "file", "type": "io.kestra.plugin.core.storage.Write", "content": "'wash;er';3;''\n"}
    out = outputs(client, write,
                  {"id": "load", "type": "io.kestra.plugin.jdbc.postgresql.CopyIn", **base, "table": "stock",
                   "from": "{{ outputs.file.uri }}", "format": "CSV", "delimiter": ";", "quote": "'",
                   "escape": "'", "encoding": "UTF8", "forceNull": ["note"]},
                  {"id": "dump", "type": "io.kestra.plugin.jdbc.postgresql.CopyOut", **base, "table": "stock",
                   "format": "CSV", "forceQuote": ["item"]},
                  {"id": "read", "type": "io.kestra.plugin.core.debug.Return",
                   "format": "{{ read(outputs.dump.uri) }}"})
    assert postgres.run("SELECT item, qty, note FROM stock") == [("wash;er", 3, None)], "'' became NULL (forceNull)"
    assert out["read"]["value"] == '"wash;er",3,\n'
    frozen = failure(client, write, {"id": "q", "type": "io.kestra.plugin.jdbc.postgresql.CopyIn", **base,
                                     "table": "stock", "from": "{{ outputs.file.uri }}", "format": "CSV",
                                     "delimiter": ";", "quote": "'", "freeze": True})
    assert "FREEZE" in frozen, frozen
    assert "no OIDs" in failure(client, {"id": "q", "type": "io.kestra.plugin.jdbc.postgresql.CopyOut", **base,
                                         "table": "stock", "oids": True})
