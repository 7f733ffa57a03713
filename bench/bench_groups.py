"""Worker-group dispatch latency: Celestra against raw Celery, measured in one run on the same Redis server.

    .venv/bin/python bench/bench_groups.py [--quick] [--runs N] [--warmup N] [--db postgres|sqlite] [--keep]

Starts (reusing run.py's helpers) `celestra server` and a Celestra worker of group `gpu`
(`celery -A app worker -Q gpu -n gpu@%h -c 1 --pool solo`), both with a CELESTRA_CONFIG file declaring
`worker_groups: {gpu: {}}`, and a raw Celery worker (bench/raw_app.py) on another database of the same Redis. Then
interleaves N single-task flows, whose one Return task has `workerGroup: {key: gpu}`, with N raw `stamp` tasks:
  * Celestra dispatch latency: task run `created` -> `attempts[0].startDate` (both stored by the engine: the step's
    clock when it creates the run, the worker's clock when it starts claiming it). Split in two with the time at
    which the client process calls `dispatch.send_task_runs` (recorded by a wrapper installed here, in the bench
    process only): created -> send (route, liveness check, insert, commit) and send -> attempt start (publish,
    broker, worker receive, claim begins).
  * raw Celery one-way dispatch: `time.time()` just before `apply_async` -> `time.time()` when the task body starts
    (returned by the task); and the round trip (send -> result in hand).
Prints p50/p99 and the ratio of the p50s (target: Celestra dispatch <= 1.5x raw one-way). Figures, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent))

import run as bench  # noqa: E402  (bench/run.py: services, subprocesses, percentile)

GROUP = "gpu"
TARGET_RATIO = 1.5
FLOW = f"""id: group_dispatch
namespace: {bench.NAMESPACE}
tasks:
  - id: t
    type: io.kestra.plugin.core.debug.Return
    format: "x"
    workerGroup:
      key: {GROUP}
"""


@dataclass
class Sample:
    dispatch_ms: float  # task run created -> attempts[0].start (stored)
    step_ms: float  # created -> dispatch.send_task_runs called (client process)
    transit_ms: float  # send_task_runs called -> attempts[0].start
    started_ms: float  # created -> task run `started` (set by the claim UPDATE, a little after the attempt start)
    e2e_ms: float  # Client.run(wait=True) wall time
    submit_ms: float  # Client.run called -> execution created (parse, validate)
    start_ms: float  # execution created -> task run created (insert + commit, lock, load, flow source)
    work_ms: float  # attempt start -> attempt end (claim, context, plugin, finish_attempt's lock + load)
    poll_ms: float  # attempt end (= execution ended) -> Client.run returned (finish commit, wait polling, load)


@dataclass
class RawSample:
    one_way_ms: float  # time at send -> time when the task body starts
    round_trip_ms: float  # time at send -> result in hand


class SendClock:
    """Records when the engine (in this process) hands task runs to `dispatch.send_task_runs`."""

    def __init__(self) -> None:
        from app.engine import dispatch

        self.sent: dict[str, float] = {}
        original = dispatch.send_task_runs

        def send_task_runs(ex: Any, runs: list[Any]) -> None:
            moment = time.time()
            for run in runs:
                self.sent[run.id] = moment
            original(ex, runs)

        dispatch.send_task_runs = send_task_runs  # engine.advance calls it as dispatch.send_task_runs


def celestra_sample(client: Any, clock: SendClock) -> Sample:
    from app.model.states import State

    wall0, t0 = time.time(), time.perf_counter()
    ex = client.run(FLOW, wait=True, timeout=60)
    e2e = time.perf_counter() - t0
    wall1 = time.time()
    if ex.state != State.SUCCESS:
        raise bench.BenchError(f"execution {ex.id} ended {ex.state}: {ex.error}")
    run = ex.task_runs[0]
    attempt = run.attempts[0] if run.attempts else None
    if run.worker_group != GROUP or attempt is None or None in (attempt.start, attempt.end, run.started, ex.ended):
        raise bench.BenchError(f"task run {run.id}: group {run.worker_group!r}, attempts {run.attempts}")
    start, end = attempt.start, attempt.end
    sent = clock.sent.pop(run.id, None)
    if sent is None:
        raise bench.BenchError(f"task run {run.id} was not sent from this process")
    return Sample(
        dispatch_ms=bench.ms(start - run.created),
        step_ms=(sent - run.created.timestamp()) * 1000,
        transit_ms=(start.timestamp() - sent) * 1000,
        started_ms=bench.ms(run.started - run.created),
        e2e_ms=e2e * 1000,
        submit_ms=(ex.created.timestamp() - wall0) * 1000,
        start_ms=bench.ms(run.created - ex.created),
        work_ms=bench.ms(end - start),
        poll_ms=(wall1 - end.timestamp()) * 1000,
    )


def raw_sample(stamp: Any) -> RawSample:
    sent = time.time()
    body_started = stamp.apply_async().get(timeout=60)
    done = time.time()
    return RawSample((body_started - sent) * 1000, (done - sent) * 1000)


def measure(client: Any, stamp: Any, args: argparse.Namespace,
            log: Callable[[str], None]) -> tuple[list[Sample], list[RawSample]]:
    clock = SendClock()
    log(f"warm-up ({args.warmup} of each)")
    for _ in range(args.warmup):
        raw_sample(stamp)
        celestra_sample(client, clock)
    ours: list[Sample] = []
    raw: list[RawSample] = []
    for i in range(args.runs):  # interleaved: both sides see the same machine load
        raw.append(raw_sample(stamp))
        ours.append(celestra_sample(client, clock))
        if (i + 1) % 50 == 0:
            log(f"  {i + 1}/{args.runs}")
    return ours, raw


def report(ours: list[Sample], raw: list[RawSample], args: argparse.Namespace, ready_s: float,
           header: str) -> None:
    def p(values: list[float], pct: float) -> float:
        return bench.percentile(values, pct)

    def col(name: str) -> list[float]:
        return [getattr(s, name) for s in ours]

    one_way = [s.one_way_ms for s in raw]
    round_trip = [s.round_trip_ms for s in raw]
    dispatch = col("dispatch_ms")
    width = 108
    print()
    print("=" * width)
    print(header)
    print(f"worker group '{GROUP}': 1 Celestra worker (-Q {GROUP} -c 1 --pool solo), 1 raw worker (-c 1 --pool "
          f"solo); cluster ready in {ready_s:.1f} s; {args.runs} runs each (+{args.warmup} warm-up), interleaved")
    print(bench.machine_note())
    print("-" * width)
    row = "{:<64} {:>10} {:>10} {:>10} {:>10}"
    print(row.format("measurement", "p50", "p99", "mean", "max"))

    def line(label: str, values: list[float]) -> None:
        print(row.format(label, f"{p(values, 50):.2f} ms", f"{p(values, 99):.2f} ms",
                         f"{statistics.fmean(values):.2f} ms", f"{max(values):.1f} ms"))

    line("celestra dispatch: task run created -> attempt start", dispatch)
    line("  created -> send_task_runs (route, liveness, insert, commit)", col("step_ms"))
    line("  send_task_runs -> attempt start (publish, broker, claim)", col("transit_ms"))
    line("  created -> task run `started` (claim UPDATE's clock)", col("started_ms"))
    line("raw celery one-way: send -> task body starts", one_way)
    line("raw celery round trip: send -> result", round_trip)
    line("celestra 1-task flow, Client.run end to end", col("e2e_ms"))
    line("  Client.run -> execution created (parse, validate)", col("submit_ms"))
    line("  execution created -> task run created (insert, lock, load)", col("start_ms"))
    line("  dispatch (as above)", dispatch)
    line("  attempt start -> end (claim, context, Return, finish load)", col("work_ms"))
    line("  attempt end -> Client.run returned (commit, wait polling)", col("poll_ms"))
    print("-" * width)
    ratio = p(dispatch, 50) / p(one_way, 50)
    print(f"ratio p50 celestra dispatch / raw one-way: {bench.fmt_ratio(ratio, TARGET_RATIO)} "
          f"(target <= {TARGET_RATIO}x); p99: {bench.fmt_ratio(p(dispatch, 99) / p(one_way, 99))}")
    print(f"ratio p50 celestra dispatch / raw round trip: {bench.fmt_ratio(p(dispatch, 50) / p(round_trip, 50))}; "
          f"celestra e2e / raw round trip: {bench.fmt_ratio(p(col('e2e_ms'), 50) / p(round_trip, 50))}")
    print("=" * width)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="50 runs instead of 200.")
    parser.add_argument("--runs", type=int, help="Measured runs of each side (default 200, quick 50).")
    parser.add_argument("--warmup", type=int, help="Unmeasured runs of each side (default 10, quick 5).")
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres", help="Celestra's store.")
    parser.add_argument("--keep", action="store_true", help="Keep the temporary folder (logs, storage).")
    args = parser.parse_args(argv)
    args.runs = args.runs or (50 if args.quick else 200)
    args.warmup = args.warmup if args.warmup is not None else (5 if args.quick else 10)
    return args


def run(args: argparse.Namespace) -> None:
    token = secrets.token_hex(4)
    host = socket.gethostname()
    tmp = Path(tempfile.mkdtemp(prefix="celestra-bench-groups-"))
    try:
        with bench.environment(args, token, tmp) as urls:
            from app import Client, runtime
            from app.celery_app import get_celery
            from app.settings import Settings

            def log(message: str) -> None:
                print(f"[bench] {message}", file=sys.stderr, flush=True)

            log(f"redis dbs {urls['redis_dbs']}; store {urls['database_url']}; tmp {tmp}")
            config = tmp / "celestra.yaml"
            config.write_text(f"worker_groups:\n  {GROUP}: {{}}\n")
            settings = Settings.model_validate({
                "broker_url": urls["broker_url"], "database_url": urls["database_url"],
                "storage_url": urls["storage_url"], "home": tmp / "home", "worker_groups": {GROUP: {}},
            })
            client = Client(settings=settings)
            runtime.store()  # migrate once here, before the subprocesses race to do it
            raw = bench.load_raw_app(urls["raw_url"], urls["raw_url"])
            celestra_env = bench.child_env({
                "CELESTRA_CONFIG": str(config),
                "CELESTRA_BROKER_URL": urls["broker_url"],
                "CELESTRA_DATABASE_URL": urls["database_url"],
                "CELESTRA_STORAGE_URL": urls["storage_url"],
            })
            raw_env = bench.child_env({
                "BENCH_RAW_BROKER_URL": urls["raw_url"], "BENCH_RAW_BACKEND_URL": urls["raw_url"],
                "BENCH_RAW_QUEUE": bench.RAW_QUEUE,
                "PYTHONPATH": os.pathsep.join(filter(None, [str(BENCH_DIR), os.environ.get("PYTHONPATH")])),
            })
            procs = bench.Processes(tmp)
            gpu_name, raw_name = f"{GROUP}@{host}", f"raw-{token}@{host}"
            try:
                started = time.monotonic()
                procs.start("server", bench.command("celestra", "server"), celestra_env)
                procs.start(f"worker-{GROUP}", bench.command(
                    "celery", "-A", "app", "worker", "-Q", GROUP, "-n", gpu_name, "-c", "1", "--pool", "solo",
                    "--loglevel", "WARNING"), celestra_env)
                procs.start("raw-worker", bench.command(
                    "celery", "-A", "raw_app", "worker", "-Q", bench.RAW_QUEUE, "-n", raw_name, "-c", "1",
                    "--pool", "solo", "--loglevel", "WARNING"), raw_env)
                log("waiting for server, gpu worker and raw worker")
                bench.wait_ready(get_celery(), [f"server@{host}", gpu_name], procs)
                bench.wait_ready(raw.app, [raw_name], procs)
                ready = time.monotonic() - started
                ours, theirs = measure(client, raw.stamp, args, log)
            except BaseException:
                for proc in procs.procs:
                    log(f"--- tail of {proc.log}\n{proc.tail(10)}")
                raise
            finally:
                procs.stop_all()
                with contextlib.suppress(Exception):
                    raw.app.close()
                    get_celery().close()
            header = (f"Worker-group dispatch: Celestra vs raw Celery, one run, one Redis {bench.REDIS_HOST}:"
                      f"{bench.REDIS_PORT} (dbs {urls['redis_dbs']})\nstore {args.db}; Celery "
                      f"{bench._version('celery')}, kombu {bench._version('kombu')}")
            report(ours, theirs, args, ready, header)
    finally:
        if args.keep:
            print(f"logs kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    return bench.main(argv, parse=parse_args, body=run)


if __name__ == "__main__":
    sys.exit(main())
