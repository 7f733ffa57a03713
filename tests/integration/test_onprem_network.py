"""The seed's use case across hosts: a PostgreSQL that only one worker can reach.

Network namespace `onprem` (.ci/onprem-netns: a veth pair, host 10.231.0.1, onprem 10.231.0.2) is the on-premise
host. Its PostgreSQL listens on the namespace's own loopback, so nothing outside the namespace can connect to it. The
worker of group `onprem` runs inside; it reaches the cluster's broker and database through the veth address (the
test relays 10.231.0.1 to the machine's Redis and PostgreSQL, which listen on 127.0.0.1 only). A Query task and a
polling Trigger with `workerGroup.key: onprem` succeed and are shown to have run in the namespace (the worker's
heartbeat pid is in it, by `ip netns identify`); the same task on the default group fails to connect.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from groups_support import (
    CELERY,
    CELESTRA,
    CONFIG,
    HOST,
    GroupsCluster,
    _base,
    cluster_settings,
    configured_client,
    fresh_redis_database,
    wait_until,
)

from app.model.states import State

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
NETNS, HOST_IP = "onprem", "10.231.0.1"
ONPREM_PG_PORT = 5439
PG_BIN = Path("/usr/lib/postgresql/15/bin")
NS = "celestra.it.onprem"
ONPREM_URL = f"jdbc:postgresql://127.0.0.1:{ONPREM_PG_PORT}/postgres"


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=check)


@pytest.fixture(scope="module")
def onprem_network() -> str:
    done = subprocess.run(["bash", str(REPO / ".ci" / "onprem-netns")], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        _base.unavailable("network namespaces (ip netns, veth; root)", done.stderr.strip() or done.stdout)
    return NETNS


@pytest.fixture(scope="module")
def onprem_postgres(onprem_network: str) -> Iterator[str]:
    """A private PostgreSQL inside the namespace, on its loopback only, with an `inventory` table."""
    if not (PG_BIN / "initdb").exists():
        _base.unavailable("PostgreSQL 15 server binaries", f"{PG_BIN} not found")
    folder = Path(tempfile.mkdtemp(prefix="celestra-onprem-pg-"))
    shutil.chown(folder, "postgres")
    data = folder / "pg"
    _run("su", "postgres", "-c", f"{PG_BIN}/initdb -D {data} -A trust")
    options = f"-p {ONPREM_PG_PORT} -k {folder} -c listen_addresses=127.0.0.1"
    _run("ip", "netns", "exec", onprem_network, "su", "postgres", "-c",
         f"{PG_BIN}/pg_ctl -D {data} -o '{options}' -l {folder}/pg.log -w start")
    try:
        _run("ip", "netns", "exec", onprem_network, "psql", "-h", "127.0.0.1", "-p", str(ONPREM_PG_PORT), "-U",
             "postgres", "-c", "CREATE TABLE inventory (item text); INSERT INTO inventory VALUES ('bolt'), ('nut')")
        yield onprem_network
    finally:
        _run("su", "postgres", "-c", f"{PG_BIN}/pg_ctl -D {data} -m immediate stop", check=False)
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def relay(port: int) -> Iterator[int]:
    """HOST_IP:<free port> -> 127.0.0.1:port, for the processes inside the namespace."""
    listener = socket.create_server((HOST_IP, 0))
    stop = threading.Event()

    def pipe(source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", port))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=pipe, args=(a, b), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()


@pytest.fixture(scope="module")
def onprem_cluster(onprem_postgres: str, postgres_server: Any,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[GroupsCluster]:
    """Server and default worker on the host; the `onprem` worker inside the namespace."""
    from app import runtime

    root = tmp_path_factory.mktemp("onprem")
    for folder in ("storage", "logs", "flows"):
        (root / folder).mkdir()
    config = root / "celestra.yaml"
    config.write_text(yaml.safe_dump(CONFIG, sort_keys=False))
    with fresh_redis_database() as broker, relay(6379) as redis_port, relay(5432) as pg_port:
        database = postgres_server.create_database()
        env = {**_base._cluster_env(broker, database, root), "CELESTRA_CONFIG": str(config),
               "CELESTRA_HEARTBEAT_INTERVAL": "0.5", "CELESTRA_WORKER_TIMEOUT": "3", "CELESTRA_TIMER_INTERVAL": "0.2"}
        inside = {**env, "CELESTRA_BROKER_URL": broker.replace("127.0.0.1:6379", f"{HOST_IP}:{redis_port}"),
                  "CELESTRA_DATABASE_URL": str(sa.engine.make_url(database).set(host=HOST_IP, port=pg_port)
                                               .render_as_string(hide_password=False))}
        settings = cluster_settings(broker, database, root)
        with configured_client(settings) as client:
            runtime.store()
            cluster = GroupsCluster(env=env, settings=settings, client=client, root=root, config=config)
            try:
                cluster.start("server", [*CELESTRA, "server"])
                cluster.start_default_worker()
                cluster.start("onprem", ["ip", "netns", "exec", onprem_postgres, *CELERY, "-A", "app", "worker",
                                         "-Q", "onprem", "-n", "onprem@%h", "-c", "2", "--pool", "prefork",
                                         "--loglevel", "INFO"], inside)
                cluster.wait_live(cluster.node("default"), cluster.node("onprem"))
                yield cluster
            finally:
                cluster.stop_all()


def query_flow(group: str | None) -> str:
    where = f"\n    workerGroup: {{key: {group}}}" if group else ""
    return f"""\
id: inventory_{group or 'default'}
namespace: {NS}
tasks:
  - id: count
    type: io.kestra.plugin.jdbc.postgresql.Query
    url: {ONPREM_URL}
    username: postgres
    sql: SELECT item FROM inventory ORDER BY item
    fetchType: FETCH{where}
"""


def test_the_onprem_worker_runs_in_the_namespace(onprem_cluster: GroupsCluster) -> None:
    worker = onprem_cluster.live_nodes()[onprem_cluster.node("onprem")]
    assert _run("ip", "netns", "identify", str(worker.pid)).stdout.strip() == NETNS
    default = onprem_cluster.live_nodes()[onprem_cluster.node("default")]
    assert _run("ip", "netns", "identify", str(default.pid)).stdout.strip() == ""


def test_a_query_on_the_onprem_group_reaches_the_database_the_default_group_cannot(
        onprem_cluster: GroupsCluster) -> None:
    ex = onprem_cluster.run(query_flow("onprem"))
    assert ex.state == State.SUCCESS, ex.to_json()
    [run] = ex.task_runs
    assert run.outputs["rows"] == [{"item": "bolt"}, {"item": "nut"}]
    assert (run.worker, run.worker_group) == (f"onprem@{HOST}", "onprem")
    elsewhere = onprem_cluster.run(query_flow(None))
    assert elsewhere.state == State.FAILED
    [failed] = elsewhere.task_runs
    assert failed.worker == f"default@{HOST}"
    assert f"Cannot connect to PostgreSQL at postgresql+psycopg://postgres@127.0.0.1:{ONPREM_PG_PORT}" in failed.error


def test_a_polling_trigger_on_the_onprem_group_fires_and_on_the_default_group_cannot_connect(
        onprem_cluster: GroupsCluster) -> None:
    flow_id = f"watch_{uuid.uuid4().hex[:6]}"
    triggers = "".join(f"""\
  - id: {name}
    type: io.kestra.plugin.jdbc.postgresql.Trigger
    url: {ONPREM_URL}
    username: postgres
    sql: SELECT count(*) AS items FROM inventory
    fetchType: FETCH_ONE
    interval: PT1H{where}
""" for name, where in (("onprem", "\n    workerGroup: {key: onprem}"), ("default", "")))
    path = onprem_cluster.write_flow(flow_id, f"""\
id: {flow_id}
namespace: {NS}
tasks:
  - {{id: seen, type: io.kestra.plugin.core.debug.Return, format: "{{{{ trigger.row.items }}}}"}}
triggers:
{triggers}""")
    deployed = onprem_cluster.celestra("flow", "deploy", path)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    from app.services.scheduler import trigger_states

    def both() -> dict[str, dict[str, Any]] | None:
        onprem_cluster.check_alive()
        states = {s["trigger_id"]: s for s in trigger_states(NS) if s["flow_id"] == flow_id}
        return states if len(states) == 2 and all(s["last_result"] for s in states.values()) else None

    states = wait_until(both, 60, "both triggers evaluated", poll=0.2, on_timeout=onprem_cluster.describe)
    assert (states["onprem"]["last_result"], states["onprem"]["evaluated_on"]) == ("1 row", f"onprem@{HOST}")
    assert states["default"]["last_result"].startswith("FAILED: Cannot connect to PostgreSQL"), states["default"]
    assert states["default"]["evaluated_on"] == f"default@{HOST}"
    [ex] = [e for e in onprem_cluster.client.executions(namespace=NS, limit=50) if e.flow_id == flow_id]
    ended = onprem_cluster.client.wait(ex.id, timeout=60)
    assert ended.state == State.SUCCESS and ended.task_runs[0].outputs["value"] == "2"
