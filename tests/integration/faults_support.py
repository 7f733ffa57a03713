"""Private Redis and PostgreSQL servers that fault tests may kill, and a cluster on them.

The machine's shared Redis and PostgreSQL are never touched: each server here is a process of its own, on a free
port, in a temporary folder. The cluster is `celestra server` plus two prefork workers of two processes each on the
default queue, with fast liveness and redelivery settings so a fault is noticed in seconds.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from groups_support import CELERY, CELESTRA, Service, _base, configured_client, wait_until

HEARTBEAT_INTERVAL = 0.5
WORKER_TIMEOUT = 4.0
TIMER_INTERVAL = 0.2
REDELIVERY_AFTER = 2.0
WORKERS = ("w1", "w2")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivateRedis:
    """`redis-server` on a port of its own, keeping nothing on disk: a restart comes back empty."""

    def __init__(self, root: Path):
        if shutil.which("redis-server") is None:
            _base.unavailable("redis-server (for private fault-test instances)", "not installed")
        self.root, self.port = root, free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.root), "--logfile", str(self.root / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
        import redis

        def answers() -> bool:
            with contextlib.suppress(redis.RedisError, OSError):
                return bool(redis.Redis(port=self.port, socket_connect_timeout=0.5).ping())
            return False

        wait_until(answers, 20, f"private Redis on port {self.port}")

    def kill(self) -> None:
        """SIGKILL: what was queued is gone."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.kill()


class PrivatePostgres:
    """A PostgreSQL cluster of its own (initdb), started and stopped with pg_ctl; run as `postgres` under root."""

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            _base.unavailable("PostgreSQL server binaries (for private fault-test instances)", "initdb not found")
        self.bin = Path(found[-1]).parent
        # Not under pytest's tmp_path: the `postgres` user must be able to reach it.
        self.root = Path(tempfile.mkdtemp(prefix="celestra-faults-pg-"))
        self.port = free_port()
        self.data = self.root / "data"
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        self._run(f"{self.bin / 'initdb'} -D {self.data} -A trust -U postgres --no-sync")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, command: str) -> None:
        argv = ["su", "postgres", "-c", command] if os.geteuid() == 0 else ["sh", "-c", command]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{command}: {result.stdout}{result.stderr}")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(f"{self.bin / 'pg_ctl'} -D {self.data} -o '{options}' -l {self.root / 'pg.log'} -w start")

    def stop(self) -> None:
        """A fast shutdown: connections are cut, what was committed stays."""
        self._run(f"{self.bin / 'pg_ctl'} -D {self.data} -m fast -w stop")

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class FaultCluster:
    env: dict[str, str]
    settings: Any
    client: Any
    root: Path
    redis: PrivateRedis
    postgres: PrivatePostgres
    services: dict[str, Service] = field(default_factory=dict)
    everything: list[Service] = field(default_factory=list)

    def start(self, name: str, argv: list[str]) -> Service:
        service = Service.start(f"{name}-{len(self.everything)}", argv, self.env, self.root / "logs")
        self.services[name] = service
        self.everything.append(service)
        return service

    def start_worker(self, name: str, queue: str | None = None) -> Service:
        return self.start(name, [*CELERY, "-A", "app", "worker", "-Q", queue or self.settings.default_queue,
                                 "-n", f"{name}@%h", "-c", "2", "--pool", "prefork", "--loglevel", "INFO"])

    def kill(self, name: str) -> None:
        service = self.services.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(service.process.pid, signal.SIGKILL)
        service.process.wait(10)

    def pool_children(self, name: str) -> list[int]:
        pid = self.services[name].process.pid
        with contextlib.suppress(OSError):
            return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        return []

    def stop_all(self) -> None:
        for service in self.everything:
            service.stop()

    def logged(self, text: str) -> bool:
        """Whether any process of the cluster logged `text`: proof that a fault took the path under test."""
        return any(text in service.log.read_text(errors="replace") for service in self.everything
                   if service.log.exists())

    def failure_sections(self) -> list[tuple[str, str]]:
        return [(f"{s.name} log (last lines)", s.tail()) for s in self.everything]

    def states(self, execution_ids: list[str]) -> dict[str, str]:
        """Execution states read straight from the store; {} while it is unreachable."""
        import sqlalchemy as sa

        from app import runtime
        from app.store.tables import executions

        try:
            with runtime.store().engine.connect() as conn:
                rows = conn.execute(sa.select(executions.c.id, executions.c.state)
                                    .where(executions.c.id.in_(execution_ids))).all()
        except sa.exc.SQLAlchemyError:
            return {}
        return {row.id: row.state for row in rows}

    def wait_ended(self, execution_ids: list[str], timeout: float) -> dict[str, str]:
        def ended() -> dict[str, str] | None:
            states = self.states(execution_ids)
            done = len(states) == len(execution_ids) and all(
                s in ("SUCCESS", "FAILED", "KILLED", "WARNING") for s in states.values())
            return states if done else None

        def details() -> str:
            states = self.states(execution_ids)
            waiting = [i for i in execution_ids if states.get(i) not in ("SUCCESS", "FAILED", "KILLED", "WARNING")]
            counts: dict[str, int] = {}
            for state in states.values():
                counts[state] = counts.get(state, 0) + 1
            runs = []
            for execution_id in waiting[:3]:
                with contextlib.suppress(Exception):
                    runs += [f"  {r.task_id}[{r.value}] {r.state.value} worker={r.worker} pid={r.worker_pid} "
                             f"attempts={[a.state.value for a in r.attempts]} sent={r.sent_at} v={r.row_version}"
                             for r in self.client.get(execution_id).task_runs]
            summary = f"{len(waiting)} not ended ({counts}); first: {waiting[:3]}\n"
            return summary + "\n".join(runs) + stacks(waiting[:3])

        def stacks(waiting: list[str]) -> str:
            """Where the live processes holding RUNNING runs are (py-spy, when installed): a hang is found there."""
            import shutil
            import subprocess

            pids = {r.worker_pid for i in waiting for r in self.client.get(i).task_runs
                    if r.state.value == "RUNNING" and r.worker_pid}
            found = []
            for pid in sorted(pids):
                alive = os.path.exists(f"/proc/{pid}")
                found.append(f"\n-- pid {pid}: {'alive' if alive else 'gone'}")
                if alive and shutil.which("py-spy"):
                    dump = subprocess.run(["py-spy", "dump", "--pid", str(pid)], capture_output=True, text=True,
                                          timeout=30, check=False)
                    found.append(dump.stdout + dump.stderr)
            return "".join(found)

        return wait_until(ended, timeout, f"{len(execution_ids)} executions to end", poll=0.5, on_timeout=details)


@contextlib.contextmanager
def fault_cluster(root: Path) -> Iterator[FaultCluster]:
    from app import runtime
    from app.settings import Settings

    (root / "logs").mkdir(parents=True, exist_ok=True)
    (root / "storage").mkdir(exist_ok=True)
    (root / "probes").mkdir(exist_ok=True)
    redis_server = PrivateRedis(root)
    postgres = PrivatePostgres()
    try:
        redis_server.start()
        postgres.start()
        env = _base._cluster_env(redis_server.url, postgres.url, root)
        env.update(CELESTRA_HEARTBEAT_INTERVAL=str(HEARTBEAT_INTERVAL), CELESTRA_WORKER_TIMEOUT=str(WORKER_TIMEOUT),
                   CELESTRA_TIMER_INTERVAL=str(TIMER_INTERVAL), CELESTRA_REDELIVERY_AFTER=str(REDELIVERY_AFTER),
                   CELESTRA_PROBE_DIR=str(root / "probes"))  # its own: other clusters of the session beat too
        settings = Settings(broker_url=redis_server.url, database_url=postgres.url, storage_url=str(root / "storage"),
                            home=root / "home", heartbeat_interval=HEARTBEAT_INTERVAL, worker_timeout=WORKER_TIMEOUT,
                            timer_interval=TIMER_INTERVAL, redelivery_after=REDELIVERY_AFTER)
        with configured_client(settings) as client:
            runtime.store()  # migrate once, before processes that would race to do it
            cluster = FaultCluster(env, settings, client, root, redis_server, postgres)
            try:
                cluster.start("server", [*CELESTRA, "server"])
                for name in WORKERS:
                    cluster.start_worker(name)
                ready = client.run("id: ready\nnamespace: faults\ntasks:\n  - id: t\n"
                                   "    type: io.kestra.plugin.core.debug.Return\n    format: x\n", wait=False)
                cluster.wait_ended([ready.id], 60)
                yield cluster
            finally:
                cluster.stop_all()
    finally:
        redis_server.stop()
        postgres.destroy()
