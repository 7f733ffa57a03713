"""app.store.database.Store on a real PostgreSQL: flow revisions, the key-value store, migrations."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from app.errors import NotFoundError
from app.store.database import Store

if TYPE_CHECKING:
    from conftest import PostgresServer

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
FLOW_V1 = "id: f\nnamespace: celestra.it.store\ntasks:\n  - id: a\n    type: Log\n    message: one\n"
FLOW_V2 = FLOW_V1.replace("one", "two")

# Opens a Store when told to on stdin, so several processes migrate one empty database at the same moment.
MIGRATE_WHEN_TOLD = """\
import sys
from app.store.database import Store
print("ready", flush=True)
sys.stdin.readline()
try:
    Store(sys.argv[1]).engine.dispose()
except Exception as exc:
    print(f"{type(exc).__name__}: {str(exc).splitlines()[0]}", flush=True)
    sys.exit(1)
print("ok", flush=True)
"""


@pytest.fixture
def store(postgres_server: PostgresServer) -> Iterator[Store]:
    """A Store on its own empty database: the first construction runs every migration."""
    opened = Store(postgres_server.create_database("celestra_store"))
    try:
        yield opened
    finally:
        opened.engine.dispose()


def test_save_flow_makes_a_revision_only_on_change(store: Store) -> None:
    assert store.save_flow("celestra.it.store", "f", FLOW_V1) == 1
    assert store.save_flow("celestra.it.store", "f", FLOW_V1) == 1
    assert store.save_flow("celestra.it.store", "f", FLOW_V2) == 2
    assert store.save_flow("celestra.it.store", "f", FLOW_V2) == 2
    assert store.save_flow("celestra.it.store", "f", FLOW_V1) == 3, "going back to an old source is a change"
    assert store.save_flow("celestra.it.store", "other", FLOW_V1) == 1, "revisions count per flow"

    assert store.get_flow("celestra.it.store", "f") == (3, FLOW_V1)
    assert store.get_flow("celestra.it.store", "f", 2) == (2, FLOW_V2)
    assert store.list_flows("celestra.it.store") == [
        {"namespace": "celestra.it.store", "id": "f", "revision": 3},
        {"namespace": "celestra.it.store", "id": "other", "revision": 1},
    ]
    with pytest.raises(NotFoundError):
        store.get_flow("celestra.it.store", "missing")
    with pytest.raises(NotFoundError):
        store.get_flow("celestra.it.store", "f", 9)


def test_kv_put_get_delete(store: Store) -> None:
    assert store.kv_get("ns", "key") is None
    store.kv_put("ns", "key", {"nested": [1, 2, "three"]})
    assert store.kv_get("ns", "key") == {"nested": [1, 2, "three"]}
    store.kv_put("ns", "key", "replaced")
    assert store.kv_get("ns", "key") == "replaced"
    assert store.kv_get("ns.child", "key") is None, "namespaces are separate"
    assert store.kv_delete("ns", "key") is True
    assert store.kv_delete("ns", "key") is False
    assert store.kv_get("ns", "key") is None

    store.kv_put("ns", "short", 42, ttl=timedelta(milliseconds=50))
    assert store.kv_get("ns", "short") == 42
    time.sleep(0.2)
    assert store.kv_get("ns", "short") is None, "an expired key reads as missing"


def test_migrations_are_idempotent(store: Store) -> None:
    store.save_flow("celestra.it.store", "f", FLOW_V1)
    store.kv_put("ns", "key", "kept")
    again = Store(store.url)
    try:
        again.migrate()
        with again.engine.connect() as conn:
            versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
        assert len(versions) == 1
        assert again.get_flow("celestra.it.store", "f") == (1, FLOW_V1), "migrating again must keep the data"
        assert again.kv_get("ns", "key") == "kept"
        tables = set(sa.inspect(again.engine).get_table_names())
        assert {"flows", "executions", "task_runs", "logs", "kv"} <= tables
    finally:
        again.engine.dispose()


@pytest.mark.timeout(120)
def test_concurrent_first_migrations(postgres_server: PostgresServer) -> None:
    """What a deployment does on a fresh database: server and worker processes start at the same moment."""
    failures: list[str] = []
    for _ in range(3):  # a race: three rounds make a miss very unlikely
        url = postgres_server.create_database("celestra_race")
        processes = [
            subprocess.Popen([sys.executable, "-c", MIGRATE_WHEN_TOLD, url], cwd=REPO, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for _ in range(6)
        ]
        for process in processes:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "ready"
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        for process in processes:
            output, _ = process.communicate(timeout=60)
            if process.returncode != 0:
                failures.append(output.strip())
        if failures:
            break
    assert not failures, failures


def test_an_announced_end_wakes_its_waiters_only_once_committed(store: Store) -> None:
    from app.store import ends

    watcher = ends.watcher(store.engine)
    assert watcher is not None and ends.watcher(store.engine) is watcher  # one per process and database
    with watcher.waiting("rolled-back") as rolled_back, watcher.waiting("mine") as mine, \
            watcher.waiting("mine") as also_mine, watcher.waiting("other") as other:
        assert watcher.listening.is_set()
        with store.engine.connect() as conn, conn.begin() as transaction:
            ends.announce(conn, "rolled-back")
            transaction.rollback()
        assert rolled_back.wait(0.3) is False  # an end that did not commit is never announced
        started = time.monotonic()
        with store.begin() as conn:
            ends.announce(conn, "mine")
        assert mine.wait(5.0) and also_mine.wait(1.0)  # every waiter of the execution wakes
        assert time.monotonic() - started < 1.0
        assert not other.is_set()  # another execution's waiters do not
    assert watcher.waiters == {}


def test_concurrent_deploys_of_one_flow_keep_every_revision(store: Store) -> None:
    sources = [FLOW_V1.replace("one", f"version {i}") for i in range(100)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        revisions = list(pool.map(lambda source: store.save_flow("celestra.it.store", "busy", source), sources))
    assert sorted(revisions) == list(range(1, 101))
    kept = {store.get_flow("celestra.it.store", "busy", revision)[1] for revision in range(1, 101)}
    assert kept == set(sources)


def test_concurrent_kv_writes_of_one_key_all_succeed(store: Store) -> None:
    with ThreadPoolExecutor(max_workers=20) as pool:
        list(pool.map(lambda i: store.kv_put("celestra.it.store", "counter", {"writer": i}), range(100)))
    assert store.kv_get("celestra.it.store", "counter")["writer"] in range(100)
    store.kv_put("celestra.it.store", "counter", "last", timedelta(hours=1))
    assert store.kv_get("celestra.it.store", "counter") == "last"
