"""Fixtures for integration tests: real Redis and PostgreSQL, and a running Celestra cluster.

A service fixture skips when its service is unreachable on this machine but fails when $CI is set, so a CI
run can never go green by skipping everything. Addresses default to the local test services; override them
with INTEGRATION_REDIS_URL (no database number) and INTEGRATION_POSTGRES_URL (a database we may connect to
in order to create and drop others). Those names avoid the CELESTRA_ prefix, which Celestra's settings own.

The `cluster` fixture runs what a deployment runs, as separate processes: `celestra server` (the executor
queue and the timers) and one prefork `celery -A app worker` on the default queue, sharing a fresh Redis
database, a fresh PostgreSQL database and a temporary storage folder with the test process, whose `Client`
submits to them.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest

REPO = Path(__file__).resolve().parents[2]
REDIS_BASE = os.environ.get("INTEGRATION_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")
POSTGRES_BASE = os.environ.get("INTEGRATION_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
CLAIM_KEY = "celestra-integration-tests:claimed"
READY_TIMEOUT = 60.0
STOP_GRACE = 15.0

READY_FLOW = """\
id: ready
namespace: celestra.integration
tasks:
  - id: ping
    type: io.kestra.plugin.core.debug.Return
    format: pong
"""


def _console_script(name: str) -> list[str]:
    """The console script installed next to this interpreter (what users run), else `python -m ...`."""
    script = Path(sys.executable).parent / name
    if script.exists():
        return [str(script)]
    if name == "celery":
        return [sys.executable, "-m", "celery"]
    return [sys.executable, "-c", "from app.cli import main; main()"]


CELESTRA = _console_script("celestra")
CELERY = _console_script("celery")


def unavailable(service: str, reason: object) -> NoReturn:
    """Skip locally, fail in CI: a missing service must never turn a CI run green."""
    message = f"{service} is not reachable: {reason}"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set, so integration services are required)", pytrace=False)
    pytest.skip(message)


# -- Redis ---------------------------------------------------------------------------------------------------
def _claim_redis_db(base: str) -> tuple[Any, int]:
    """An empty database number, claimed with a marker key so parallel sessions never share one."""
    import redis

    probe = redis.Redis.from_url(f"{base}/0", socket_connect_timeout=2)
    try:
        probe.ping()
        try:
            count = int(probe.config_get("databases").get("databases") or 16)
        except redis.RedisError:  # CONFIG may be disabled; 16 is Redis's default
            count = 16
    except (redis.RedisError, OSError) as exc:
        unavailable(f"Redis at {base}", exc)
    finally:
        probe.close()
    owner = f"{socket.gethostname()}:{os.getpid()}"
    for db in range(count - 1, 0, -1):
        client = redis.Redis.from_url(f"{base}/{db}", socket_connect_timeout=2)
        if client.dbsize() == 0 and client.set(CLAIM_KEY, owner, nx=True, ex=3600):
            return client, db
        client.close()
    pytest.fail(f"Redis at {base} has no empty database number left for the integration tests")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """redis://host:port/N on a fresh database number, flushed before and after the session."""
    client, db = _claim_redis_db(REDIS_BASE)
    client.flushdb()
    client.set(CLAIM_KEY, "in use", ex=3600)
    try:
        yield f"{REDIS_BASE}/{db}"
    finally:
        client.flushdb()
        client.close()


# -- PostgreSQL ----------------------------------------------------------------------------------------------
@dataclass
class PostgresServer:
    """Creates throwaway databases next to the one in `admin_url` and drops them at the end of the session."""

    admin_url: str
    created: list[str] = field(default_factory=list)

    def url(self, database: str) -> str:
        from sqlalchemy.engine import make_url

        return make_url(self.admin_url).set(database=database).render_as_string(hide_password=False)

    def _execute(self, statement: Any) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(statement)

    def create_database(self, prefix: str = "celestra_it") -> str:
        from psycopg import sql

        name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
        self._execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.created.append(name)
        return self.url(name)

    def drop_all(self) -> None:
        from psycopg import sql

        while self.created:
            name = self.created.pop()
            # FORCE: a pooled connection left by a crashed test must not keep the database alive.
            self._execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        import psycopg
    except ImportError as exc:
        unavailable("PostgreSQL (psycopg is not installed: pip install celestra[postgres])", exc)
    try:
        with psycopg.connect(POSTGRES_BASE, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        unavailable(f"PostgreSQL at {POSTGRES_BASE}", exc)
    server = PostgresServer(POSTGRES_BASE)
    try:
        yield server
    finally:
        server.drop_all()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database for this test session (dropped at the end)."""
    return postgres_server.create_database()


# -- the cluster ---------------------------------------------------------------------------------------------
@dataclass
class Service:
    """One long-running process of the cluster, in its own process group so its children stop with it."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, name: str, argv: list[str], env: dict[str, str], logs: Path) -> Service:
        log = logs / f"{name}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=sink,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        return cls(name, process, log)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = 60) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM (Celery's warm shutdown), then SIGKILL the process group if it does not end in time."""
        if not self.alive:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)


@dataclass
class Cluster:
    env: dict[str, str]
    settings: Any  # app.settings.Settings
    client: Any  # app.client.Client
    root: Path
    services: list[Service]

    @property
    def flows_dir(self) -> Path:
        path = self.root / "flows"
        path.mkdir(exist_ok=True)
        return path

    def write_flow(self, name: str, source: str) -> Path:
        path = self.flows_dir / f"{name}.yaml"
        path.write_text(source)
        return path

    def celestra(self, *args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run the `celestra` command line against the cluster (cwd: the repository: flows/... resolves)."""
        return subprocess.run([*CELESTRA, *map(str, args)], cwd=REPO, env=self.env, capture_output=True,
                              text=True, timeout=timeout, check=False)

    def dead(self) -> list[Service]:
        return [service for service in self.services if not service.alive]

    def check_alive(self) -> None:
        if dead := self.dead():
            pytest.fail("cluster process exited: " + "; ".join(
                f"{s.name} (exit {s.process.returncode})\n{s.tail()}" for s in dead), pytrace=False)

    def tails(self) -> list[tuple[str, str]]:
        return [(f"{service.name} log (last lines)", service.tail()) for service in self.services]


def _cluster_env(redis_url: str, postgres_url: str, root: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CELESTRA_")}
    env.update(
        CELESTRA_BROKER_URL=redis_url,
        CELESTRA_DATABASE_URL=postgres_url,
        CELESTRA_STORAGE_URL=str(root / "storage"),
        CELESTRA_HOME=str(root / "home"),
        CELESTRA_API_PORT="0",  # several servers run at once: none serves the REST API (test_api_server.py)
        PYTHONUNBUFFERED="1",
        COLUMNS="250",  # rich wraps error messages at 80 columns when not on a terminal
        NO_COLOR="1",
    )
    return env


def _wait_ready(cluster: Cluster) -> None:
    """A trivial flow that succeeds proves the server consumes starts and the worker runs task runs."""
    from app.client import ExecutionTimeout
    from app.model.states import State

    deadline = time.monotonic() + READY_TIMEOUT
    execution = cluster.client.run(READY_FLOW, wait=False)
    while True:
        cluster.check_alive()
        try:
            ended = cluster.client.wait(execution.id, timeout=0.5)
        except ExecutionTimeout:
            if time.monotonic() > deadline:
                details = "\n".join(f"--- {title}\n{text}" for title, text in cluster.tails())
                pytest.fail(f"cluster not ready within {READY_TIMEOUT:.0f}s\n{details}", pytrace=False)
            continue
        assert ended.state == State.SUCCESS, ended.to_json()
        return


@pytest.fixture(scope="session")
def cluster(redis_url: str, postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    from app import celery_app, runtime
    from app.client import Client
    from app.settings import Settings, load_settings

    root = tmp_path_factory.mktemp("cluster")
    (root / "storage").mkdir()
    logs = root / "logs"
    logs.mkdir()
    env = _cluster_env(redis_url, postgres_url, root)
    settings = Settings(broker_url=redis_url, database_url=postgres_url, storage_url=str(root / "storage"),
                        home=root / "home")
    client = Client(settings=settings)
    # Migrate once here: the server and the worker's forked children all open the store at start-up, and
    # concurrent first migrations of an empty PostgreSQL database race (see test_postgres_store.py).
    runtime.store()

    services: list[Service] = []
    died: list[Service] = []
    try:
        services.append(Service.start("server", [*CELESTRA, "server"], env, logs))
        services.append(Service.start("worker", [*CELERY, "-A", "app", "worker", "-Q", settings.default_queue,
                                                 "-c", "4", "--pool", "prefork", "-n", "w1@%h",
                                                 "--loglevel", "INFO"], env, logs))
        running = Cluster(env=env, settings=settings, client=client, root=root, services=services)
        _wait_ready(running)
        yield running
        died = running.dead()
    finally:
        for service in services:
            service.stop()
        runtime.store().engine.dispose()
        runtime.configure(load_settings())
        celery_app.reset()
    if died:
        details = "\n".join(f"--- {s.name} (exit {s.process.returncode})\n{s.tail()}" for s in died)
        pytest.fail(f"cluster processes died during the session:\n{details}", pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """A failing test that used the cluster shows the tail of each process's log in its report."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed and report.when == "call":
        running = getattr(item, "funcargs", {}).get("cluster")
        if isinstance(running, Cluster):
            report.sections.extend(running.tails())
        # Other clusters (tests/integration/groups_support.py) offer their process logs the same way.
        for value in getattr(item, "funcargs", {}).values():
            if not isinstance(value, Cluster) and callable(getattr(type(value), "failure_sections", None)):
                report.sections.extend(value.failure_sections())
