"""Celestra against raw Celery, measured in one run on the same Redis server.

    .venv/bin/python bench/run.py [--quick] [--db postgres|sqlite] [--variants solo,prefork] [--no-chain]

Starts `celestra server`, a Celestra worker and a raw-Celery worker (bench/raw_app.py) as subprocesses, each
on its own fresh Redis database of the same server, then interleaves the two measurements so both see the same
machine load:
  * a 100-task sequential flow (no-op Return tasks) end to end vs 100 sequential raw `delay().get()` round
    trips;
  * a 2-task flow end-to-end latency (p50/p99) vs 2 sequential raw round trips.
It prints figures, not pass/fail: this is not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import math
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
BIN = Path(sys.executable).parent
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
PG_BASE_URL = "postgresql://postgres@127.0.0.1:5432"
CLAIM_KEY = "celestra-bench:claimed"  # marks a Redis database as taken by one bench run
NAMESPACE = "bench.celestra"
RAW_QUEUE = "bench.raw"
TARGET_RATIO = 1.5
TARGET_P50_MS = 15.0

# Worker variants: the same pool arguments are given to the Celestra worker and the raw-Celery worker.
VARIANTS: dict[str, list[str]] = {
    "solo": ["-c", "1", "--pool", "solo"],
    "prefork": ["-c", "2", "--pool", "prefork"],
    "threads": ["-c", "4", "--pool", "threads"],
}


class BenchError(Exception):
    pass


# -- flows ---------------------------------------------------------------------------------------------------
def sequential_flow(flow_id: str, tasks: int) -> str:
    """`tasks` no-op Return tasks, one after another."""
    lines = [f"id: {flow_id}", f"namespace: {NAMESPACE}", "tasks:"]
    for i in range(tasks):
        lines += [f"  - id: t{i:03d}", "    type: io.kestra.plugin.core.debug.Return", '    format: "x"']
    return "\n".join(lines) + "\n"


# -- services ------------------------------------------------------------------------------------------------
def claim_redis_dbs(count: int, token: str) -> list[int]:
    """Empty databases of the shared Redis, highest numbers first, marked so a concurrent bench skips them."""
    import redis

    admin = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    try:
        reply: dict[str, str] = admin.config_get("databases")  # type: ignore[assignment]
        databases = int(reply.get("databases") or 16)
    except redis.RedisError:
        databases = 16
    chosen: list[int] = []
    for db in range(databases - 1, -1, -1):
        conn = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db)
        if conn.dbsize() == 0 and conn.set(CLAIM_KEY, token, nx=True):
            chosen.append(db)
            if len(chosen) == count:
                return chosen
    release_redis_dbs(chosen, token)
    raise BenchError(f"fewer than {count} empty Redis databases on {REDIS_HOST}:{REDIS_PORT}")


def release_redis_dbs(dbs: Sequence[int], token: str) -> None:
    import redis

    for db in dbs:
        conn = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db)
        if conn.get(CLAIM_KEY) == token.encode():
            conn.flushdb()


def create_pg_database(name: str) -> str:
    import psycopg
    from psycopg import sql

    with psycopg.connect(f"{PG_BASE_URL}/postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return f"{PG_BASE_URL}/{name}"


def drop_pg_database(name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(f"{PG_BASE_URL}/postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# -- subprocesses --------------------------------------------------------------------------------------------
def command(tool: str, *args: str) -> list[str]:
    """A console script of this venv, or its module form when the script is missing."""
    script = BIN / tool
    if script.exists():
        return [str(script), *args]
    module = {"celery": "celery", "celestra": "app.cli"}[tool]
    return [sys.executable, "-m", module, *args]


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    log_file: IO[bytes]

    def tail(self, lines: int = 25) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


@dataclass
class Processes:
    logdir: Path
    procs: list[Proc] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> Proc:
        log = self.logdir / f"{name}.log"
        log_file = log.open("wb")
        popen = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        proc = Proc(name, popen, log, log_file)
        self.procs.append(proc)
        return proc

    def check_alive(self) -> None:
        for proc in self.procs:
            if proc.popen.poll() is not None:
                code = proc.popen.returncode
                raise BenchError(f"{proc.name} exited with code {code}; its log:\n{proc.tail()}")

    def stop(self, proc: Proc, grace: float = 15.0) -> None:
        """Warm shutdown (SIGTERM to the process we started), then SIGKILL to its own process group."""
        if proc.popen.poll() is None:
            proc.popen.send_signal(signal.SIGTERM)
            try:
                proc.popen.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGKILL)
                proc.popen.wait(5)
        proc.log_file.close()
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs)):
            self.stop(proc)


def wait_ready(celery_app: Any, names: list[str], procs: Processes, timeout: float = 90.0) -> float:
    """Block until every named worker answers a broadcast ping; the seconds it took."""
    started = time.monotonic()
    while True:
        procs.check_alive()
        replies = celery_app.control.ping(destination=names, timeout=0.5) or []
        if set(names) <= {name for reply in replies for name in reply}:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise BenchError(f"workers {names} not ready after {timeout:.0f}s")
        time.sleep(0.2)


# -- measurements --------------------------------------------------------------------------------------------
@dataclass
class FlowSample:
    seconds: float  # client wall time: submit (YAML text in hand) to terminal state seen by Client.wait
    store_seconds: float  # execution created -> ended, as stored (no client parse, no polling lag)
    submit_ms: float  # client parse + validate + insert, until the execution row exists
    poll_lag_ms: float  # execution ended (stored) -> Client.wait returned
    execution: Any


def run_flow(client: Any, yaml_text: str) -> FlowSample:
    from app.model.states import State

    wall0, t0 = time.time(), time.perf_counter()
    ex = client.run(yaml_text, wait=True, timeout=600)
    seconds = time.perf_counter() - t0
    wall1 = time.time()
    if ex.state != State.SUCCESS:
        raise BenchError(f"execution {ex.id} ended {ex.state}: {ex.error}")
    return FlowSample(seconds, (ex.ended - ex.created).total_seconds(),
                      (ex.created.timestamp() - wall0) * 1000, (wall1 - ex.ended.timestamp()) * 1000, ex)


def raw_round_trips(task: Any, count: int) -> float:
    t0 = time.perf_counter()
    for _ in range(count):
        task.delay().get(timeout=60)
    return time.perf_counter() - t0


def percentile(values: Sequence[float], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * pct / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ms(delta: Any) -> float:
    return float(delta.total_seconds() * 1000)


@dataclass
class Breakdown:
    """Where the time of one sequential execution goes, from the timestamps the engine stores."""

    start_hop_ms: float  # execution created -> first task run created (start message via the server)
    dispatch_ms: float  # avg: task run created -> claimed (commit, send, broker, worker receive, claim)
    work_ms: float  # avg: claimed -> ended (context, plugin, finish: lock + load + fold)
    step_ms: float  # avg: task run ended -> next task run created (the executor step)
    end_ms: float  # last task run ended -> execution ended
    cycle_first_ms: float  # median claim-to-claim time, first 10 tasks
    cycle_last_ms: float  # median claim-to-claim time, last 10 tasks
    cycle_slope_us: float  # least-squares growth of the claim-to-claim time per task run already stored

    @classmethod
    def of(cls, ex: Any) -> Breakdown:
        runs = sorted((r for r in ex.task_runs if r.started and r.ended), key=lambda r: r.created)
        if not runs:
            raise BenchError(f"execution {ex.id} has no finished task runs")
        cycles = [ms(b.started - a.started) for a, b in zip(runs, runs[1:], strict=False)] or [math.nan]
        head = min(10, len(cycles))
        slope = (statistics.linear_regression(range(len(cycles)), cycles).slope * 1000
                 if len(cycles) > 2 else math.nan)
        return cls(
            start_hop_ms=ms(runs[0].created - ex.created),
            dispatch_ms=statistics.fmean(ms(r.started - r.created) for r in runs),
            work_ms=statistics.fmean(ms(r.ended - r.started) for r in runs),
            step_ms=statistics.fmean([ms(b.created - a.ended) for a, b in zip(runs, runs[1:], strict=False)]
                                     or [0.0]),
            end_ms=ms(ex.ended - runs[-1].ended),
            cycle_first_ms=statistics.median(cycles[:head]),
            cycle_last_ms=statistics.median(cycles[-head:]),
            cycle_slope_us=slope,
        )


@dataclass
class VariantResult:
    variant: str
    ready_s: float
    seq_celestra: list[FlowSample]
    seq_raw: list[float]
    lat_celestra: list[FlowSample]
    lat_raw: list[float]


def measure(client: Any, noop: Any, args: argparse.Namespace, log: Callable[[str], None]) -> tuple[
        list[FlowSample], list[float], list[FlowSample], list[float]]:
    seq_yaml = sequential_flow(f"sequential_{args.tasks}", args.tasks)
    two_yaml = sequential_flow("two_tasks", 2)
    log(f"warm-up ({args.warmup} of each shape)")
    for _ in range(args.warmup):
        raw_round_trips(noop, args.tasks)
        run_flow(client, seq_yaml)
        raw_round_trips(noop, 2)
        run_flow(client, two_yaml)
    seq_celestra: list[FlowSample] = []
    seq_raw: list[float] = []
    for i in range(args.repeats):  # interleaved: both sides see the same machine load
        seq_raw.append(raw_round_trips(noop, args.tasks))
        seq_celestra.append(run_flow(client, seq_yaml))
        log(f"  {args.tasks}-task flow {i + 1}/{args.repeats}: "
            f"celestra {seq_celestra[-1].seconds * 1000:.0f} ms, raw {seq_raw[-1] * 1000:.0f} ms")
    lat_celestra: list[FlowSample] = []
    lat_raw: list[float] = []
    for _ in range(args.latency_runs):
        lat_raw.append(raw_round_trips(noop, 2))
        lat_celestra.append(run_flow(client, two_yaml))
    log(f"  2-task flow x{args.latency_runs} done")
    return seq_celestra, seq_raw, lat_celestra, lat_raw


# -- report --------------------------------------------------------------------------------------------------
def machine_note() -> str:
    cores = os.cpu_count() or 0
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"machine: {cores} cores (shared with other sessions; load avg {load}), "
            f"{platform.python_implementation()} {platform.python_version()}, {platform.system()} "
            f"{platform.release()}")


def fmt_ratio(value: float, target: float | None = None) -> str:
    text = f"{value:.2f}x"
    if target is not None:
        text += " ok" if value <= target else " OVER"
    return text


def report(result: VariantResult, args: argparse.Namespace, header: str) -> None:
    n = args.tasks
    seq_c = statistics.median(s.seconds for s in result.seq_celestra) * 1000
    seq_c_store = statistics.median(s.store_seconds for s in result.seq_celestra) * 1000
    seq_r = statistics.median(result.seq_raw) * 1000
    lat_c = [s.seconds * 1000 for s in result.lat_celestra]
    lat_c_store = [s.store_seconds * 1000 for s in result.lat_celestra]
    lat_r = [x * 1000 for x in result.lat_raw]
    c50, c99 = percentile(lat_c, 50), percentile(lat_c, 99)
    r50, r99 = percentile(lat_r, 50), percentile(lat_r, 99)
    s50 = percentile(lat_c_store, 50)
    width = 104
    print()
    print("=" * width)
    print(header)
    print(f"worker variant: {result.variant} ({' '.join(VARIANTS[result.variant])}); cluster ready in "
          f"{result.ready_s:.1f} s; {args.repeats} x {n}-task runs, {args.latency_runs} x 2-task runs")
    print(machine_note())
    print("-" * width)
    row = "{:<44} {:>14} {:>14} {:>12} {:>16}"
    print(row.format("measurement", "celestra", "raw celery", "ratio", "target"))
    print(row.format(f"{n}-task sequential flow, median (e2e)", f"{seq_c:.1f} ms", f"{seq_r:.1f} ms",
                     fmt_ratio(seq_c / seq_r, TARGET_RATIO), f"<= {TARGET_RATIO}x"))
    print(row.format("  same, stored created->ended", f"{seq_c_store:.1f} ms", "",
                     fmt_ratio(seq_c_store / seq_r), ""))
    print(row.format("  per task (total / n)", f"{seq_c / n:.2f} ms", f"{seq_r / n:.2f} ms", "", ""))
    print(row.format("  min .. max", f"{min(s.seconds for s in result.seq_celestra) * 1000:.0f} .. "
                     f"{max(s.seconds for s in result.seq_celestra) * 1000:.0f}",
                     f"{min(result.seq_raw) * 1000:.0f} .. {max(result.seq_raw) * 1000:.0f}", "", ""))
    print(row.format("2-task flow e2e p50", f"{c50:.1f} ms", f"{r50:.2f} ms", fmt_ratio(c50 / r50),
                     f"p50 <= {TARGET_P50_MS:.0f} ms" + (" ok" if c50 <= TARGET_P50_MS else " OVER")))
    print(row.format("2-task flow e2e p99", f"{c99:.1f} ms", f"{r99:.2f} ms", fmt_ratio(c99 / r99), ""))
    print(row.format("  same, stored created->ended p50", f"{s50:.1f} ms", "", fmt_ratio(s50 / r50), ""))
    print("-" * width)
    seq = [Breakdown.of(s.execution) for s in result.seq_celestra]
    lat = [Breakdown.of(s.execution) for s in result.lat_celestra]

    def med(breakdowns: list[Breakdown], name: str) -> float:
        return statistics.median(getattr(b, name) for b in breakdowns)

    def med_of(samples: list[FlowSample], name: str) -> float:
        return statistics.median(getattr(s, name) for s in samples)

    seq_s, lat_s = result.seq_celestra, result.lat_celestra
    phases = [
        ("client: parse + validate + insert (once)", med_of(seq_s, "submit_ms"), med_of(lat_s, "submit_ms")),
        ("start hop: client -> broker -> server step (once)", med(seq, "start_hop_ms"),
         med(lat, "start_hop_ms")),
        ("dispatch: commit, send, broker, receive, claim", med(seq, "dispatch_ms"), med(lat, "dispatch_ms")),
        ("work: context, plugin, finish (lock+load+fold)", med(seq, "work_ms"), med(lat, "work_ms")),
        ("executor step: ended -> next run created", med(seq, "step_ms"), med(lat, "step_ms")),
        ("last run ended -> execution ended (once)", med(seq, "end_ms"), med(lat, "end_ms")),
        ("Client.wait poll lag (once)", med_of(seq_s, "poll_lag_ms"), med_of(lat_s, "poll_lag_ms")),
    ]
    phase_row = "{:<60} {:>16} {:>16}"
    print(phase_row.format("where time goes (medians; per task run unless 'once')", f"{n}-task flow",
                           "2-task flow"))
    for label, big, small in phases:
        print(phase_row.format(f"  {label}", f"{big:.2f} ms", f"{small:.2f} ms"))
    print(f"  task cycle (claim to claim) in the {n}-task flow: first 10 "
          f"{med(seq, 'cycle_first_ms'):.2f} ms, last 10 {med(seq, 'cycle_last_ms'):.2f} ms,")
    print(f"    fitted growth {med(seq, 'cycle_slope_us'):+.1f} us per task run already stored; "
          f"raw Celery round trip {seq_r / n:.2f} ms")
    print("=" * width)


# -- main ----------------------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="Fewer repetitions (a smoke run, ~1 minute).")
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres", help="Celestra's store.")
    parser.add_argument("--variants", default="solo",
                        help=f"Comma-separated worker variants among {', '.join(VARIANTS)} (default: solo).")
    parser.add_argument("--tasks", type=int, default=100, help="Tasks of the sequential flow.")
    parser.add_argument("--repeats", type=int, help="Runs of the sequential flow (default 5, quick 2).")
    parser.add_argument("--latency-runs", type=int, help="Runs of the 2-task flow (default 50, quick 15).")
    parser.add_argument("--warmup", type=int, help="Unmeasured runs of each shape (default 2, quick 1).")
    parser.add_argument("--no-chain", action="store_true",
                        help="Every task run through the broker (CELESTRA_CHAIN_INLINE_FOR=0 for the worker).")
    parser.add_argument("--keep", action="store_true", help="Keep the temporary folder (logs, storage).")
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (2 if args.quick else 5)
    args.latency_runs = args.latency_runs or (15 if args.quick else 50)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    args.variant_list = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in args.variant_list if v not in VARIANTS]
    if unknown or not args.variant_list:
        parser.error(f"unknown variant(s) {unknown}; choose among {', '.join(VARIANTS)}")
    return args


def load_raw_app(broker_url: str, backend_url: str) -> ModuleType:
    os.environ["BENCH_RAW_BROKER_URL"] = broker_url
    os.environ["BENCH_RAW_BACKEND_URL"] = backend_url
    os.environ["BENCH_RAW_QUEUE"] = RAW_QUEUE
    if str(BENCH_DIR) not in sys.path:
        sys.path.insert(0, str(BENCH_DIR))
    return importlib.import_module("raw_app")


@contextlib.contextmanager
def environment(args: argparse.Namespace, token: str, tmp: Path) -> Iterator[dict[str, str]]:
    """Fresh Redis databases and a fresh Celestra database; all removed on exit."""
    dbs = claim_redis_dbs(2, token)
    pg_name = f"celestra_bench_{token}"
    pg_created = False
    try:
        if args.db == "postgres":
            database_url = create_pg_database(pg_name)
            pg_created = True
        else:
            database_url = f"sqlite:///{tmp / 'celestra.db'}"
        storage = tmp / "storage"
        storage.mkdir()
        yield {
            "broker_url": f"redis://{REDIS_HOST}:{REDIS_PORT}/{dbs[0]}",
            "raw_url": f"redis://{REDIS_HOST}:{REDIS_PORT}/{dbs[1]}",
            "database_url": database_url,
            "storage_url": str(storage),
            "redis_dbs": f"{dbs[0]} (celestra), {dbs[1]} (raw)",
        }
    finally:
        with contextlib.suppress(Exception):
            from app import runtime

            runtime.store().engine.dispose()
        if pg_created:
            drop_pg_database(pg_name)
        release_redis_dbs(dbs, token)


def child_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELESTRA_")}
    env["CELESTRA_API_PORT"] = "0"  # the benches measure the executor: their servers serve no REST API
    env.update(extra)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run(args: argparse.Namespace) -> list[VariantResult]:
    token = secrets.token_hex(4)
    host = socket.gethostname()
    tmp = Path(tempfile.mkdtemp(prefix="celestra-bench-"))
    try:
        with environment(args, token, tmp) as urls:
            from app import Client, runtime
            from app.celery_app import get_celery
            from app.settings import Settings

            def log(message: str) -> None:
                print(f"[bench] {message}", file=sys.stderr, flush=True)

            log(f"redis dbs {urls['redis_dbs']}; store {urls['database_url']}; tmp {tmp}")
            settings = Settings.model_validate({
                "broker_url": urls["broker_url"], "database_url": urls["database_url"],
                "storage_url": urls["storage_url"], "home": tmp / "home",
            })
            client = Client(settings=settings)
            runtime.store()  # migrate once here, before three processes race to do it
            raw = load_raw_app(urls["raw_url"], urls["raw_url"])
            celestra_env = child_env({
                "CELESTRA_BROKER_URL": urls["broker_url"],
                "CELESTRA_DATABASE_URL": urls["database_url"],
                "CELESTRA_STORAGE_URL": urls["storage_url"],
                **({"CELESTRA_CHAIN_INLINE_FOR": "0"} if args.no_chain else {}),
            })
            raw_env = child_env({
                "BENCH_RAW_BROKER_URL": urls["raw_url"], "BENCH_RAW_BACKEND_URL": urls["raw_url"],
                "BENCH_RAW_QUEUE": RAW_QUEUE,
                "PYTHONPATH": os.pathsep.join(filter(None, [str(BENCH_DIR), os.environ.get("PYTHONPATH")])),
            })
            procs = Processes(tmp)
            results: list[VariantResult] = []
            try:
                procs.start("server", command("celestra", "server"), celestra_env)
                for variant in args.variant_list:
                    pool = VARIANTS[variant]
                    started = time.monotonic()
                    cname, rname = f"bench-{variant}-{token}@{host}", f"raw-{variant}-{token}@{host}"
                    worker = procs.start(f"worker-{variant}", command(
                        "celery", "-A", "app", "worker", "-Q", settings.default_queue, *pool, "-n", cname,
                        "--loglevel", "WARNING"), celestra_env)
                    raw_worker = procs.start(f"raw-worker-{variant}", command(
                        "celery", "-A", "raw_app", "worker", "-Q", RAW_QUEUE, *pool, "-n", rname,
                        "--loglevel", "WARNING"), raw_env)
                    log(f"variant {variant}: waiting for server, worker and raw worker")
                    wait_ready(get_celery(), [f"server@{host}", cname], procs)
                    wait_ready(raw.app, [rname], procs)
                    ready = time.monotonic() - started
                    seq_c, seq_r, lat_c, lat_r = measure(client, raw.noop, args, log)
                    results.append(VariantResult(variant, ready, seq_c, seq_r, lat_c, lat_r))
                    procs.stop(worker)
                    procs.stop(raw_worker)
            except BaseException:
                for proc in procs.procs:
                    log(f"--- tail of {proc.log}\n{proc.tail(10)}")
                raise
            finally:
                procs.stop_all()
                with contextlib.suppress(Exception):
                    raw.app.close()
                    get_celery().close()
            header = (f"Celestra vs raw Celery, one run, one Redis {REDIS_HOST}:{REDIS_PORT} (dbs "
                      f"{urls['redis_dbs']})\nstore {args.db}; Celery {_version('celery')}, kombu "
                      f"{_version('kombu')}; chains {'off' if args.no_chain else 'on'}")
            for result in results:
                report(result, args, header)
    finally:
        if args.keep:
            print(f"logs kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return results


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "?"


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds through the teardown in `run`


def main(argv: Sequence[str] | None = None, *,
         parse: Callable[[Sequence[str] | None], argparse.Namespace] | None = None,
         body: Callable[[argparse.Namespace], None] | None = None) -> int:
    """Parse, run, report a BenchError or an interrupt as an exit code; the other benches pass their own."""
    args = (parse or parse_args)(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    started = datetime.now()
    try:
        (body or run)(args)
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(f"total bench time {(datetime.now() - started).total_seconds():.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
