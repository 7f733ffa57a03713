"""Fan-out and long flows: Celestra against raw Celery, measured in one run on the same Redis server.

    .venv/bin/python bench/bench_fanout.py [--sizes 100,1000,10000] [--sequential 1000] [--db postgres|sqlite]
                                           [--no-chain]

Starts `celestra server`, one Celestra worker and one raw-Celery worker with the same pool settings
(`-c 2 --pool prefork` unless --pool says otherwise), then measures, interleaved:
  * a ForEach of N no-op Return tasks (`concurrencyLimit: 0`) end to end, against raw Celery running N no-op tasks
    as a `group` (apply_async().get()), for each N of --sizes: seconds, tasks/s, and the throughput ratio;
  * a sequential flow of --sequential Return tasks against as many sequential raw round trips, with the claim-to-
    claim cycle of its first 10 and last 10 tasks and its fitted growth per task run already stored;
and the peak resident memory of each Celestra worker process during the largest fan-out.
It prints figures, not pass/fail: this is not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent))

import run as bench  # noqa: E402  (bench/run.py: services, subprocesses, breakdowns)


def foreach_flow(size: int) -> str:
    values = ", ".join(str(i) for i in range(size))
    return (f"id: fanout_{size}\nnamespace: {bench.NAMESPACE}\ntasks:\n  - id: each\n"
            f"    type: io.kestra.plugin.core.flow.ForEach\n    concurrencyLimit: 0\n    values: [{values}]\n"
            "    tasks:\n      - id: noop\n        type: io.kestra.plugin.core.debug.Return\n        format: x\n")


class PeakRss:
    """Samples the resident memory of a process and its children (a prefork worker's pool) every 0.2 s."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peak: dict[int, int] = {}
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakRss:
        self.thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.stopped.set()
        self.thread.join(2)

    def _pids(self) -> list[int]:
        pids = [self.pid]
        with contextlib.suppress(OSError):
            pids += [int(p) for p in Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()]
        return pids

    def _run(self) -> None:
        while not self.stopped.wait(0.2):
            for pid in self._pids():
                with contextlib.suppress(OSError, ValueError):
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmRSS:"):
                            self.peak[pid] = max(self.peak.get(pid, 0), int(line.split()[1]) * 1024)


@dataclass
class FanOut:
    size: int
    celestra_s: float
    raw_s: float
    runs: int


def fan_out(client: Any, raw: Any, size: int, log: Callable[[str], None]) -> FanOut:
    from celery import group

    from app.model.states import State

    t0 = time.perf_counter()
    group(raw.noop.s() for _ in range(size)).apply_async().get(timeout=3600)
    raw_s = time.perf_counter() - t0
    flow = foreach_flow(size)
    t0 = time.perf_counter()
    ex = client.run(flow, wait=True, timeout=3600)
    celestra_s = time.perf_counter() - t0
    if ex.state != State.SUCCESS:
        raise bench.BenchError(f"fan-out of {size}: execution {ex.id} ended {ex.state}: {ex.error}")
    children = [r for r in ex.task_runs if r.parent_id]
    starts = sorted(r.started for r in children if r.started)
    ends = sorted(r.ended for r in children if r.ended)
    log(f"  fan-out {size}: celestra {celestra_s:.2f} s, raw group {raw_s:.2f} s, {len(ex.task_runs)} task runs; "
        f"stored: first step {(min(r.created for r in children) - ex.created).total_seconds():.2f} s, "
        f"first claim +{(starts[0] - ex.created).total_seconds():.2f} s, last claim "
        f"+{(starts[-1] - ex.created).total_seconds():.2f} s, "
        f"last end +{(ends[-1] - ex.created).total_seconds():.2f} s, "
        f"execution end +{(ex.ended - ex.created).total_seconds():.2f} s")
    return FanOut(size, celestra_s, raw_s, len(ex.task_runs))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,1000,10000", help="Fan-out sizes (comma-separated).")
    parser.add_argument("--sequential", type=int, default=1000, help="Tasks of the sequential flow (0: skip).")
    parser.add_argument("--pool", default="prefork", choices=["prefork", "solo", "threads"])
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres", help="Celestra's store.")
    parser.add_argument("--no-chain", action="store_true",
                        help="Every task run through the broker (CELESTRA_CHAIN_INLINE_FOR=0 for the worker).")
    parser.add_argument("--keep", action="store_true", help="Keep the temporary folder (logs, storage).")
    args = parser.parse_args(argv)
    args.size_list = [int(x) for x in args.sizes.split(",") if x.strip()]
    return args


def report(results: list[FanOut], sequential: tuple[Any, float] | None, peak: dict[int, int],
           args: argparse.Namespace, header: str) -> None:
    width = 104
    print()
    print("=" * width)
    print(header)
    print(f"pools: -c {args.concurrency} --pool {args.pool} on both sides")
    print(bench.machine_note())
    print("-" * width)
    row = "{:<40} {:>14} {:>14} {:>14} {:>16}"
    print(row.format("ForEach (concurrencyLimit 0) vs group", "celestra", "raw group", "throughput", "task runs"))
    for r in results:
        print(row.format(f"  N = {r.size}", f"{r.celestra_s:.2f} s ({r.size / r.celestra_s:.0f}/s)",
                         f"{r.raw_s:.2f} s ({r.size / r.raw_s:.0f}/s)", f"{r.raw_s / r.celestra_s:.3f}x",
                         str(r.runs)))
    by_size = {r.size: r for r in results}
    if 1000 in by_size and 10000 in by_size:
        print(f"  10,000 took {by_size[10000].celestra_s / by_size[1000].celestra_s:.1f}x the 1,000 time "
              f"(raw group {by_size[10000].raw_s / by_size[1000].raw_s:.1f}x)")
    if peak:
        print("  peak RSS of the Celestra worker's processes during the largest fan-out: "
              + ", ".join(f"{rss / 2**20:.0f} MB" for _, rss in sorted(peak.items())))
    if sequential is not None:
        ex, raw_s = sequential
        breakdown = bench.Breakdown.of(ex)
        seconds = (ex.ended - ex.created).total_seconds()
        n = len(ex.task_runs)
        print("-" * width)
        print(row.format(f"{n}-task sequential flow (stored)", f"{seconds:.2f} s", f"{raw_s:.2f} s",
                         f"{seconds / raw_s:.2f}x time", ""))
        print(f"  claim-to-claim cycle: first 10 {breakdown.cycle_first_ms:.2f} ms, last 10 "
              f"{breakdown.cycle_last_ms:.2f} ms ({breakdown.cycle_last_ms / breakdown.cycle_first_ms:.2f}x); "
              f"fitted growth {breakdown.cycle_slope_us:+.2f} us per task run already stored")
    print("=" * width)


def run(args: argparse.Namespace) -> None:
    token = secrets.token_hex(4)
    host = socket.gethostname()
    tmp = Path(tempfile.mkdtemp(prefix="celestra-bench-fanout-"))
    try:
        with bench.environment(args, token, tmp) as urls:
            from app import Client, runtime
            from app.celery_app import get_celery
            from app.settings import Settings

            def log(message: str) -> None:
                print(f"[bench] {message}", file=sys.stderr, flush=True)

            log(f"redis dbs {urls['redis_dbs']}; store {urls['database_url']}; tmp {tmp}")
            settings = Settings(broker_url=urls["broker_url"], database_url=urls["database_url"],
                                storage_url=urls["storage_url"], home=tmp / "home")
            client = Client(settings=settings)
            runtime.store()  # migrate once here, before the subprocesses race to do it
            raw = bench.load_raw_app(urls["raw_url"], urls["raw_url"])
            celestra_env = bench.child_env({
                "CELESTRA_BROKER_URL": urls["broker_url"],
                "CELESTRA_DATABASE_URL": urls["database_url"],
                "CELESTRA_STORAGE_URL": urls["storage_url"],
                **({"CELESTRA_CHAIN_INLINE_FOR": "0"} if args.no_chain else {}),
            })
            raw_env = bench.child_env({
                "BENCH_RAW_BROKER_URL": urls["raw_url"], "BENCH_RAW_BACKEND_URL": urls["raw_url"],
                "BENCH_RAW_QUEUE": bench.RAW_QUEUE,
                "PYTHONPATH": os.pathsep.join(filter(None, [str(BENCH_DIR), os.environ.get("PYTHONPATH")])),
            })
            pool = ["-c", str(args.concurrency), "--pool", args.pool, "--loglevel", "WARNING"]
            procs = bench.Processes(tmp)
            worker_name, raw_name = f"w-{token}@{host}", f"raw-{token}@{host}"
            results: list[FanOut] = []
            sequential = None
            peak: dict[int, int] = {}
            try:
                procs.start("server", bench.command("celestra", "server"), celestra_env)
                worker = procs.start("worker", bench.command(
                    "celery", "-A", "app", "worker", "-Q", settings.default_queue, "-n", worker_name, *pool),
                    celestra_env)
                procs.start("raw-worker", bench.command(
                    "celery", "-A", "raw_app", "worker", "-Q", bench.RAW_QUEUE, "-n", raw_name, *pool), raw_env)
                log("waiting for server, worker and raw worker")
                bench.wait_ready(get_celery(), [f"server@{host}", worker_name], procs)
                bench.wait_ready(raw.app, [raw_name], procs)
                fan_out(client, raw, 20, lambda _: None)  # warm-up
                for size in args.size_list:
                    if size == max(args.size_list):
                        with PeakRss(worker.popen.pid) as sampler:
                            results.append(fan_out(client, raw, size, log))
                        peak = sampler.peak
                    else:
                        results.append(fan_out(client, raw, size, log))
                if args.sequential:
                    raw_s = bench.raw_round_trips(raw.noop, args.sequential)
                    sample = bench.run_flow(client, bench.sequential_flow(f"sequential_{args.sequential}",
                                                                          args.sequential))
                    log(f"  sequential {args.sequential}: celestra {sample.store_seconds:.2f} s, raw {raw_s:.2f} s")
                    sequential = (sample.execution, raw_s)
            except BaseException:
                for proc in procs.procs:
                    log(f"--- tail of {proc.log}\n{proc.tail(10)}")
                raise
            finally:
                procs.stop_all()
                with contextlib.suppress(Exception):
                    raw.app.close()
                    get_celery().close()
            header = (f"Fan-out and long flows: Celestra vs raw Celery, one run, one Redis {bench.REDIS_HOST}:"
                      f"{bench.REDIS_PORT}\nstore {args.db}; Celery {bench._version('celery')}")
            report(results, sequential, peak, args, header)
    finally:
        if args.keep:
            print(f"logs kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    return bench.main(argv, parse=parse_args, body=run)


if __name__ == "__main__":
    sys.exit(main())
