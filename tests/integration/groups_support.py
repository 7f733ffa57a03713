"""A worker-group cluster for the integration tests: `celestra server` plus one real Celery worker per group.

Every process reads one configuration file (groups declared, a namespace default) through CELESTRA_CONFIG, or
`--config FILE` for the `celestra worker --worker-group` form, and fast liveness settings from the environment, so
a dead worker is noticed in about three seconds. The test process configures its own `Client` with the same
settings: the first executor step of a run happens in the submitting process, which must see the same groups.

Each cluster gets its own broker namespace (a fresh Redis database number, or a fresh RabbitMQ vhost) and its own
PostgreSQL database, so its workers' heartbeats and queues never mix with those of the `cluster` fixture.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import pytest
import yaml

HERE = Path(__file__).resolve().parent
HOST = socket.gethostname()  # what Celery's %h expands to in `-n gpu@%h`
RABBITMQ_BASE = os.environ.get("INTEGRATION_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672").rstrip("/")

HEARTBEAT_INTERVAL = 0.5
WORKER_TIMEOUT = 3.0
TIMER_INTERVAL = 0.2
READY_TIMEOUT = 60.0

SECRET_NAME = "MY_TOKEN"
SECRET_VALUE = f"tok-{secrets.token_hex(8)}"

CONFIG: dict[str, Any] = {
    "worker_groups": {
        "gpu": {"description": "GPU box"},
        "onprem": {"description": "next to the on-premise SQL Server"},
        "late": {"description": "its worker starts during a test"},
        "idle": {"description": "no worker ever serves it"},
        "myWorkerGroupKey": {"description": "the seed flow myflow's group"},
    },
    "namespaces": {"company.team": {"worker_group": {"key": "gpu", "fallback": "FAIL"}}},
}

T = TypeVar("T")


def _integration_conftest() -> ModuleType:
    """tests/integration/conftest.py. `import conftest` may yield tests/unit's (pytest keeps only the last conftest
    imported under that name), so find ours by path, else load it under a name of its own."""
    path = HERE / "conftest.py"
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if file and Path(file).resolve() == path:
            return module
    spec = importlib.util.spec_from_file_location("celestra_integration_conftest", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


_base = _integration_conftest()
CELERY: list[str] = _base.CELERY
CELESTRA: list[str] = _base.CELESTRA
REPO: Path = _base.REPO
Service = _base.Service
unavailable = _base.unavailable


def wait_until(check: Callable[[], T | None], timeout: float, what: str, poll: float = 0.05,
               on_timeout: Callable[[], str] | None = None) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` (and `on_timeout()`'s details) if not."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            details = f"\n{on_timeout()}" if on_timeout else ""
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}{details}", pytrace=False)
        time.sleep(poll)


# -- brokers ---------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def fresh_redis_database() -> Iterator[str]:
    """A Redis database number of its own (claimed like conftest's `redis_url`), flushed after use."""
    client, db = _base._claim_redis_db(_base.REDIS_BASE)
    client.flushdb()
    client.set(_base.CLAIM_KEY, "in use by worker-group tests", ex=3600)
    try:
        yield f"{_base.REDIS_BASE}/{db}"
    finally:
        client.flushdb()
        client.close()


def _rabbitmqctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=60, check=False)


@contextlib.contextmanager
def fresh_rabbitmq_vhost() -> Iterator[str]:
    """amqp://.../VHOST on a vhost created for this test and deleted after it: queues named gpu/onprem/celery never
    meet another session's. Without rabbitmqctl, the default vhost with our queues purged first."""
    from kombu import Connection

    try:
        with Connection(f"{RABBITMQ_BASE}//", connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:
        unavailable(f"RabbitMQ at {RABBITMQ_BASE}", exc)
    vhost = f"celestra-it-{os.getpid()}-{secrets.token_hex(3)}"
    created = False
    if shutil.which("rabbitmqctl"):
        created = _rabbitmqctl("add_vhost", vhost).returncode == 0 and \
            _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*").returncode == 0
    if not created:
        vhost = ""
        with Connection(f"{RABBITMQ_BASE}//") as conn:
            channel = conn.channel()
            for queue in ("celery", "celestra.executor", *CONFIG["worker_groups"]):
                with contextlib.suppress(Exception):
                    channel.queue_purge(queue)
                    channel = conn.channel()  # a purge of a missing queue closes the channel
    try:
        yield f"{RABBITMQ_BASE}/{vhost}"
    finally:
        if created:
            _rabbitmqctl("delete_vhost", vhost)


# -- the cluster -----------------------------------------------------------------------------------------------
@dataclass
class GroupsCluster:
    env: dict[str, str]
    settings: Any  # app.settings.Settings
    client: Any  # app.client.Client
    root: Path
    config: Path
    roles: dict[str, Any] = field(default_factory=dict)  # role ("gpu") -> the Service currently playing it
    everything: list[Any] = field(default_factory=list)  # every Service ever started, for logs and clean-up

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @staticmethod
    def node(name: str) -> str:
        return f"{name}@{HOST}"

    # -- processes ---------------------------------------------------------------------------------------------
    def start(self, role: str, argv: list[str], env: dict[str, str] | None = None) -> Any:
        name = role if role not in {s.name for s in self.everything} else f"{role}-{len(self.everything)}"
        service = Service.start(name, argv, env or self.env, self.logs)
        self.roles[role] = service
        self.everything.append(service)
        return service

    def start_worker(self, group: str, *, friendly: bool = False, concurrency: int = 2) -> Any:
        """`celery -A app worker -Q GROUP -n GROUP@%h` or `celestra worker --worker-group GROUP --config FILE`."""
        if friendly:
            env = {k: v for k, v in self.env.items() if k != "CELESTRA_CONFIG"}  # --config alone must do
            argv = [*CELESTRA, "worker", "--worker-group", group, "--config", str(self.config),
                    "--concurrency", str(concurrency), "--pool", "prefork"]
            return self.start(group, argv, env)
        argv = [*CELERY, "-A", "app", "worker", "-Q", group, "-n", f"{group}@%h", "-c", str(concurrency),
                "--pool", "prefork", "--loglevel", "INFO"]
        return self.start(group, argv)

    def start_default_worker(self) -> Any:
        """The worker of tasks with no group: the default queue, node name default@<host>."""
        return self.start("default", [*CELERY, "-A", "app", "worker", "-Q", self.settings.default_queue,
                                      "-n", "default@%h", "-c", "2", "--pool", "prefork", "--loglevel", "INFO"])

    def stop(self, role: str) -> None:
        self.roles.pop(role).stop()

    def kill(self, role: str) -> None:
        """SIGKILL the whole process group: the main process and its prefork children die at once."""
        service = self.roles.pop(role)
        os.killpg(service.process.pid, signal.SIGKILL)
        service.process.wait(10)

    def stop_all(self) -> None:
        alive = [s for s in self.everything if s.alive]
        for service in alive:  # warm shutdowns in parallel
            with contextlib.suppress(ProcessLookupError):
                os.killpg(service.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + _base.STOP_GRACE
        for service in alive:
            try:
                service.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(service.process.pid, signal.SIGKILL)
                service.process.wait(5)

    def check_alive(self) -> None:
        dead = [(role, s) for role, s in self.roles.items() if not s.alive]
        if dead:
            pytest.fail("cluster process exited: " + "; ".join(
                f"{role} (exit {s.process.returncode})\n{s.tail()}" for role, s in dead), pytrace=False)

    def failure_sections(self) -> list[tuple[str, str]]:
        """Shown by conftest's report hook when a test using this cluster fails."""
        return [(f"{s.name} log (last lines)", s.tail()) for s in self.everything]

    def describe(self) -> str:
        return "\n".join(f"--- {title}\n{text}" for title, text in self.failure_sections())

    # -- liveness ----------------------------------------------------------------------------------------------
    def live_nodes(self) -> dict[str, Any]:
        from app.engine import liveness

        return {w.id: w for w in liveness.live_workers()}

    def wait_live(self, *nodes: str, timeout: float = READY_TIMEOUT) -> None:
        def ready() -> bool:
            self.check_alive()
            return set(nodes) <= set(self.live_nodes())

        wait_until(ready, timeout, f"live workers {sorted(nodes)}", poll=0.1, on_timeout=self.describe)

    # -- flows -------------------------------------------------------------------------------------------------
    def write_flow(self, name: str, source: str) -> Path:
        path = self.root / "flows" / f"{name}.yaml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(source)
        return path

    def run(self, source: str, inputs: dict[str, Any] | None = None, timeout: float = 60) -> Any:
        """Run a flow through the test process's Client and wait for its end (failing with the logs if it hangs)."""
        from app.client import ExecutionTimeout

        ex = self.client.run(source, inputs=inputs, wait=False)
        try:
            return self.client.wait(ex.id, timeout=timeout)
        except ExecutionTimeout:
            state = json.dumps(self.client.get(ex.id).to_json(), default=str, indent=1)
            pytest.fail(f"execution {ex.id} did not end within {timeout}s: {state}\n{self.describe()}",
                        pytrace=False)

    def celestra(self, *args: str | Path, timeout: float = 120,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CELESTRA, *map(str, args)], cwd=REPO, env=env or self.env, capture_output=True,
                              text=True, timeout=timeout, check=False)

    def log_messages(self, execution_id: str, level: str | None = None) -> list[str]:
        return [row["message"] for row in self.client.logs(execution_id)
                if level is None or row["level"] == level]


def cluster_settings(broker_url: str, database_url: str, root: Path) -> Any:
    from app.settings import Settings

    return Settings(**CONFIG, broker_url=broker_url, database_url=database_url, storage_url=str(root / "storage"),
                    home=root / "home", heartbeat_interval=HEARTBEAT_INTERVAL, worker_timeout=WORKER_TIMEOUT,
                    timer_interval=TIMER_INTERVAL)


@contextlib.contextmanager
def configured_client(settings: Any) -> Iterator[Any]:
    """This process's runtime pointed at `settings` (process-global), then back to what it was before."""
    from app import celery_app, runtime
    from app import settings as app_settings
    from app.client import Client
    from app.engine import liveness
    from app.settings import load_settings

    previous = app_settings.configured()
    client = Client(settings=settings)
    liveness.live_groups.invalidate()
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            runtime.store().engine.dispose()
        runtime.configure(previous if previous is not None else load_settings())
        celery_app.reset()
        liveness.live_groups.invalidate()


@contextlib.contextmanager
def groups_cluster(broker_url: str, database_url: str, root: Path,
                   env_extra: dict[str, str] | None = None) -> Iterator[GroupsCluster]:
    """Server + default worker + `gpu` worker (celery form) + `onprem` worker (`celestra worker` form), all live;
    `env_extra` adds settings every process reads (CELESTRA_...)."""
    from app import runtime

    for folder in ("storage", "logs", "flows"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    config = root / "celestra.yaml"
    config.write_text(yaml.safe_dump(CONFIG, sort_keys=False))
    env = _base._cluster_env(broker_url, database_url, root)
    env.update(
        CELESTRA_CONFIG=str(config),
        CELESTRA_HEARTBEAT_INTERVAL=str(HEARTBEAT_INTERVAL),
        CELESTRA_WORKER_TIMEOUT=str(WORKER_TIMEOUT),
        CELESTRA_TIMER_INTERVAL=str(TIMER_INTERVAL),
        **{f"SECRET_{SECRET_NAME}": base64.b64encode(SECRET_VALUE.encode()).decode()},
    )
    env.update(env_extra or {})
    settings = cluster_settings(broker_url, database_url, root)
    with configured_client(settings) as client:
        runtime.store()  # migrate once, before processes that would race to do it
        cluster = GroupsCluster(env=env, settings=settings, client=client, root=root, config=config)
        try:
            cluster.start("server", [*CELESTRA, "server"])
            cluster.start_default_worker()
            cluster.start_worker("gpu")
            cluster.start_worker("onprem", friendly=True)
            cluster.wait_live(*(cluster.node(n) for n in ("default", "gpu", "onprem")))
            yield cluster
        finally:
            cluster.stop_all()
