"""Polling triggers at scale: N HTTP Triggers at a 1 s interval on one worker group, against a raw Celery beat-like
loop sending the same HTTP GETs as tasks, measured in one run on the same Redis server.

    .venv/bin/python bench/bench_polling.py [--triggers 200] [--seconds 30] [--warmup 10] [--db postgres|sqlite]

Starts (reusing run.py's helpers) `celestra server` and a worker of group `poll` (`-c 2 --pool prefork`), a raw
Celery worker with the same pool, and an HTTP server in this process that records when each request arrives. The
Celestra side deploys N HTTP Triggers (`interval: PT1S`, `workerGroup: {key: poll}`, a responseCondition that is
false, so nothing fires: the bench measures evaluations). Kestra's semantics: the next evaluation is due one interval
after the previous one ended, so a trigger's evaluation lag is the gap between two of its requests minus the
interval (it includes the short evaluation itself). The raw side sends, from one loop, one `bench.poll(url)` task
per trigger every second at fixed times; its lag is arrival - scheduled time. Prints p50/p99 of both lags, the
evaluations per second each side achieved, and the share of the ideal rate. Figures, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import os
import secrets
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent))

import run as bench  # noqa: E402  (bench/run.py: services, subprocesses, percentile)

GROUP = "poll"
PER_FLOW = 10  # triggers per deployed flow


class Arrivals(http.server.ThreadingHTTPServer):
    """Answers every GET with 204 and records (path, arrival time)."""

    daemon_threads = True

    def __init__(self) -> None:
        self.seen: dict[str, list[float]] = defaultdict(list)
        self.lock = threading.Lock()
        self.recording = False
        super().__init__(("127.0.0.1", 0), _Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Arrivals

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        moment = time.time()
        if self.server.recording:
            with self.server.lock:
                self.server.seen[self.path].append(moment)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def flows(count: int, url: str) -> list[str]:
    sources = []
    for first in range(0, count, PER_FLOW):
        triggers = "".join(f"""\
  - id: t{i}
    type: io.kestra.plugin.core.http.Trigger
    uri: {url}/c/{i}
    interval: PT1S
    responseCondition: "{{{{ response.statusCode == 299 }}}}"
    workerGroup: {{key: {GROUP}}}
""" for i in range(first, min(first + PER_FLOW, count)))
        sources.append(f"""id: polled_{first // PER_FLOW}
namespace: {bench.NAMESPACE}
tasks:
  - {{id: never, type: io.kestra.plugin.core.debug.Return, format: "x"}}
triggers:
{triggers}""")
    return sources


def raw_beat(poll: Any, url: str, count: int, stop: threading.Event) -> None:
    """One task per trigger per second, at fixed times; the scheduled time travels in the path."""
    tick = time.time() + 0.5
    while not stop.is_set():
        delay = tick - time.time()
        if delay > 0:
            time.sleep(delay)
        for i in range(count):
            poll.apply_async(args=[f"{url}/r/{i}/{tick:.6f}"], queue=bench.RAW_QUEUE)
        tick += 1.0


def report(server: Arrivals, args: argparse.Namespace, header: str) -> None:
    ours = [max(0.0, (b - a - 1.0) * 1000) for path, times in server.seen.items() if path.startswith("/c/")
            for a, b in zip(times, times[1:], strict=False)]
    raw = [(times[0] - float(path.rsplit("/", 1)[1])) * 1000 for path, times in server.seen.items()
           if path.startswith("/r/")]
    ours_count = sum(len(t) for p, t in server.seen.items() if p.startswith("/c/"))
    raw_count = sum(len(t) for p, t in server.seen.items() if p.startswith("/r/"))
    print(header)
    print(bench.machine_note())
    print(f"{args.triggers} triggers, interval 1 s, one worker group (-c 2 --pool prefork each side), "
          f"{args.seconds} s measured after {args.warmup} s")
    for label, lags, count in (("celestra", ours, ours_count), ("raw celery", raw, raw_count)):
        if not lags:
            print(f"{label:>11}: no evaluations recorded")
            continue
        rate = count / args.seconds
        print(f"{label:>11}: lag p50 {bench.percentile(lags, 50):7.1f} ms  p99 {bench.percentile(lags, 99):7.1f} ms"
              f"  max {max(lags):7.1f} ms; {rate:6.1f} evaluations/s ({rate / args.triggers:.0%} of one per "
              f"trigger per second)")
    if ours and raw:
        ratio = bench.percentile(ours, 50) / max(bench.percentile(raw, 50), 0.1)
        print(f"ratio p50 celestra / raw: {bench.fmt_ratio(ratio)}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--triggers", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30.0, help="Measured window.")
    parser.add_argument("--warmup", type=float, default=10.0, help="Seconds before measuring.")
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres", help="Celestra's store.")
    parser.add_argument("--keep", action="store_true", help="Keep the temporary folder (logs).")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> None:
    token = secrets.token_hex(4)
    host = socket.gethostname()
    tmp = Path(tempfile.mkdtemp(prefix="celestra-bench-polling-"))
    server = Arrivals()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with bench.environment(args, token, tmp) as urls:
            from app import Client, runtime
            from app.celery_app import get_celery
            from app.settings import Settings

            def log(message: str) -> None:
                print(f"[bench] {message}", file=sys.stderr, flush=True)

            config = tmp / "celestra.yaml"
            config.write_text(f"worker_groups:\n  {GROUP}: {{}}\n")
            settings = Settings.model_validate({
                "broker_url": urls["broker_url"], "database_url": urls["database_url"],
                "storage_url": urls["storage_url"], "home": tmp / "home", "worker_groups": {GROUP: {}}})
            client = Client(settings=settings)
            runtime.store()
            raw = bench.load_raw_app(urls["raw_url"], urls["raw_url"])
            celestra_env = bench.child_env({
                "CELESTRA_CONFIG": str(config), "CELESTRA_BROKER_URL": urls["broker_url"],
                "CELESTRA_DATABASE_URL": urls["database_url"], "CELESTRA_STORAGE_URL": urls["storage_url"]})
            raw_env = bench.child_env({
                "BENCH_RAW_BROKER_URL": urls["raw_url"], "BENCH_RAW_BACKEND_URL": urls["raw_url"],
                "BENCH_RAW_QUEUE": bench.RAW_QUEUE,
                "PYTHONPATH": os.pathsep.join(filter(None, [str(BENCH_DIR), os.environ.get("PYTHONPATH")]))})
            procs = bench.Processes(tmp)
            worker_name, raw_name = f"{GROUP}@{host}", f"raw-{token}@{host}"
            stop = threading.Event()
            try:
                procs.start("server", bench.command("celestra", "server"), celestra_env)
                procs.start("worker", bench.command("celery", "-A", "app", "worker", "-Q", GROUP, "-n", worker_name,
                                                    "-c", "2", "--pool", "prefork", "--loglevel", "WARNING"),
                            celestra_env)
                procs.start("raw-worker", bench.command("celery", "-A", "raw_app", "worker", "-Q", bench.RAW_QUEUE,
                                                        "-n", raw_name, "-c", "2", "--pool", "prefork",
                                                        "--loglevel", "WARNING"), raw_env)
                bench.wait_ready(get_celery(), [f"server@{host}", worker_name], procs)
                bench.wait_ready(raw.app, [raw_name], procs)
                for source in flows(args.triggers, server.url):
                    client.deploy(source)
                log(f"{args.triggers} triggers deployed; raw beat started; warming up {args.warmup:g} s")
                beat = threading.Thread(target=raw_beat, args=(raw.poll, server.url, args.triggers, stop),
                                        daemon=True)
                beat.start()
                time.sleep(args.warmup)
                server.recording = True
                time.sleep(args.seconds)
                server.recording = False
                procs.check_alive()
            except BaseException:
                for proc in procs.procs:
                    log(f"--- tail of {proc.log}\n{proc.tail(10)}")
                raise
            finally:
                stop.set()
                procs.stop_all()
                with contextlib.suppress(Exception):
                    raw.app.close()
                    get_celery().close()
            report(server, args, f"Polling triggers: Celestra vs raw Celery, one Redis {bench.REDIS_HOST}:"
                                 f"{bench.REDIS_PORT} (dbs {urls['redis_dbs']}), store {args.db}")
    finally:
        server.shutdown()
        if args.keep:
            print(f"logs kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    return bench.main(argv, parse=parse_args, body=run)


if __name__ == "__main__":
    sys.exit(main())
