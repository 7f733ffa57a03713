"""What the SQL tasks need besides SQLAlchemy: each database's URL (Kestra's `jdbc:` ones turned into SQLAlchemy's),
splitting a script into statements, turning cells into output values (JSON for `row`/`rows`, Ion for STORE files),
and cancelling a running statement from another thread when the task is killed."""

from __future__ import annotations

import base64
import datetime
import decimal
import re
import urllib.parse
import uuid
from dataclasses import dataclass
from typing import Any

from workers.plugin_api import TaskFailure


@dataclass(frozen=True)
class Dialect:
    name: str  # as people write it, in messages
    jdbc: tuple[str, ...]  # the jdbc:<x>: prefixes Kestra's URLs use
    schemes: tuple[str, ...]  # SQLAlchemy URL schemes accepted as given
    driver: str  # the SQLAlchemy scheme a jdbc: URL becomes
    install: str  # pip install 'celestra[<this>]' brings the driver


DIALECTS = {
    "postgresql": Dialect("PostgreSQL", ("postgresql",), ("postgresql", "postgresql+psycopg"), "postgresql+psycopg",
                          "postgres"),
    "mysql": Dialect("MySQL", ("mysql",), ("mysql", "mysql+pymysql"), "mysql+pymysql", "mysql"),
    "mariadb": Dialect("MariaDB", ("mariadb", "mysql"), ("mariadb", "mariadb+pymysql", "mysql+pymysql"),
                       "mariadb+pymysql", "mysql"),
    "sqlite": Dialect("SQLite", ("sqlite",), ("sqlite",), "sqlite", "sql"),
    "duckdb": Dialect("DuckDB", ("duckdb",), ("duckdb",), "duckdb", "duckdb"),
}


def sqlalchemy_url(dialect: Dialect, url: str, username: str | None, password: str | None) -> Any:
    """The SQLAlchemy URL of a task's `url` (jdbc: or SQLAlchemy form), with `username`/`password` set on it."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    text = url.strip()
    if text.startswith("jdbc:"):
        text = _from_jdbc(dialect, text)
    try:
        parsed = make_url(text)
    except ArgumentError:
        raise TaskFailure(f"url is not a {dialect.name} URL: '{_hide(url)}'") from None
    if parsed.drivername not in dialect.schemes:
        raise TaskFailure(f"url is not a {dialect.name} URL (jdbc:{dialect.jdbc[0]}:... or "
                          f"{dialect.schemes[0]}://...): '{_hide(url)}'")
    if parsed.drivername == dialect.schemes[0] and dialect.driver != parsed.drivername:
        parsed = parsed.set(drivername=dialect.driver)
    query = {k: v for k, v in parsed.query.items() if k not in ("user", "password")}
    user = username if username is not None else _single(parsed.query.get("user"))
    secret = password if password is not None else _single(parsed.query.get("password"))
    return parsed.set(username=user or parsed.username, password=secret or parsed.password, query=query)


def _single(value: str | tuple[str, ...] | None) -> str | None:
    return value[-1] if isinstance(value, tuple) else value


def _from_jdbc(dialect: Dialect, url: str) -> str:
    rest = url.removeprefix("jdbc:")
    kind, _, tail = rest.partition(":")
    if kind not in dialect.jdbc:
        raise TaskFailure(f"url is not a {dialect.name} URL (jdbc:{dialect.jdbc[0]}:...): '{_hide(url)}'")
    if dialect.driver in ("sqlite", "duckdb"):  # jdbc:sqlite:/path/db, jdbc:sqlite::memory:, jdbc:duckdb:
        path = tail.split("?", 1)[0]
        return f"{dialect.driver}://" if path in ("", ":memory:") else f"{dialect.driver}:///{path}"
    if not tail.startswith("//"):
        raise TaskFailure(f"url must look like jdbc:{kind}://host:port/database: '{_hide(url)}'")
    split = urllib.parse.urlsplit(tail)
    params = urllib.parse.parse_qsl(split.query)
    if dialect.driver != "postgresql+psycopg":  # MySQL's JDBC options mean nothing to PyMySQL
        unknown = [k for k, _ in params if k not in ("user", "password")]
        if unknown:
            raise TaskFailure(f"url options {unknown} are JDBC driver options: not supported yet for {dialect.name}")
    return urllib.parse.urlunsplit((dialect.driver, split.netloc, split.path, split.query, ""))


def _hide(url: str) -> str:
    return re.sub(r"(password=)[^&;]*|(://[^:/@]+:)[^@]*@", lambda m: (m[1] or m[2]) + "***" + ("" if m[1] else "@"),
                  url)


# -- statements ----------------------------------------------------------------------------------------------------
_TOKENS = re.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|`[^`]*`|--[^\n]*|/\*.*?\*/|(\$\w*\$).*?\1|;|[^'"`;$/-]+|.""",
                     re.DOTALL)


def split_statements(sql: str) -> list[str]:
    """The statements of a script, split on `;` outside quotes, comments and PostgreSQL $$ strings."""
    statements: list[str] = []
    current: list[str] = []
    for match in _TOKENS.finditer(sql):
        if match.group(0) == ";":
            statements.append("".join(current))
            current = []
        else:
            current.append(match.group(0))
    statements.append("".join(current))
    return [s.strip() for s in statements if _code(s).strip()]


def _code(statement: str) -> str:
    return re.sub(r"--[^\n]*|/\*.*?\*/", "", statement, flags=re.DOTALL)


# -- cells ---------------------------------------------------------------------------------------------------------
def zoned(value: Any, zone: datetime.tzinfo | None) -> Any:
    """`timeZoneId`: a timestamp without a zone is taken as one of that zone; one with a zone is shown in it."""
    if zone is None or not isinstance(value, datetime.datetime):
        return value
    return value.replace(tzinfo=zone) if value.tzinfo is None else value.astimezone(zone)


def json_cell(value: Any, zone: datetime.tzinfo | None) -> Any:
    """A cell as a task output (JSON): dates and times in ISO-8601, decimals as numbers when exact, bytes base64."""
    value = zoned(value, zone)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        if value == value.to_integral_value() and abs(value) < 2**63:
            return int(value)
        return float(value) if decimal.Decimal(repr(float(value))) == value else str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dict):
        return {str(k): json_cell(v, zone) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_cell(v, zone) for v in value]
    return str(value)  # UUID, intervals, network addresses, ranges...


def ion_cell(value: Any, zone: datetime.tzinfo | None) -> Any:
    """A cell for an Ion file: timestamps, decimals and blobs stay Ion's own types."""
    from amazon.ion.core import Timestamp, TimestampPrecision

    value = zoned(value, zone)
    if value is None or isinstance(value, bool | int | float | str | decimal.Decimal | datetime.datetime):
        return value
    if isinstance(value, datetime.date):
        return Timestamp(value.year, value.month, value.day, precision=TimestampPrecision.DAY)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, dict):
        return {str(k): ion_cell(v, zone) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [ion_cell(v, zone) for v in value]
    if isinstance(value, datetime.time | uuid.UUID):
        return value.isoformat() if isinstance(value, datetime.time) else str(value)
    return str(value)


def ion_line(value: Any, zone: datetime.tzinfo | None) -> bytes:
    """One value (a row: a map, or a list) as a line of an Ion text file, as Kestra writes them."""
    try:
        from amazon.ion import simpleion
    except ImportError as exc:
        raise TaskFailure(f"Writing Ion files needs amazon.ion: pip install 'celestra[sql]' ({exc})") from exc
    return simpleion.dumps(ion_cell(value, zone), binary=False, omit_version_marker=True).encode() + b"\n"


# -- cancel --------------------------------------------------------------------------------------------------------
def cancel(dialect: Dialect, dbapi_connection: Any, url: Any) -> None:
    """Stop the statement running on `dbapi_connection` (called from another thread), on the database side too."""
    if dialect.driver == "postgresql+psycopg":
        dbapi_connection.cancel_safe()  # the server cancels the backend's query
    elif dialect.driver in ("mysql+pymysql", "mariadb+pymysql"):
        import pymysql

        thread_id = dbapi_connection.thread_id()
        killer = pymysql.connect(host=url.host, port=url.port or 3306, user=url.username, password=url.password or "",
                                 connect_timeout=10)
        with killer, killer.cursor() as cursor:
            cursor.execute(f"KILL QUERY {int(thread_id)}")
    else:  # sqlite3 and duckdb: interrupt() makes the running statement fail at once
        dbapi_connection.interrupt()  # duckdb_engine's wrapper hands it to the DuckDB connection
