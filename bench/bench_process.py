"""Process task runner figures, in embedded mode (in-memory broker, in-process worker, SQLite in a temp folder).

    .venv/bin/python bench/bench_process.py [--runs 30] [--warmup 3] [--log-seconds 3]

(a) Task overhead: a flow with one `shell.Commands` task running `true`, run --runs times; the task run's stored
    attempt (claim -> finish) against a bare `subprocess.run(["/bin/sh", "-c", "true"])` timed in the same loop,
    and `ProcessRunner.run()` alone on the same command, to show where the difference goes. Target: the attempt
    takes at most 15 ms more than the bare subprocess (medians).
(b) Live log delay: a script prints `time.time()` every 200 ms (flushing) for --log-seconds; a thread follows
    `Client.logs(follow=True)` and records read time - printed time. Target: p50 <= 250 ms.

Prints figures; not a test, never fails on a target.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.client import Client  # noqa: E402
from app.model.states import State  # noqa: E402
from app.settings import Settings  # noqa: E402
from runners.base import CommandSpec, RunControl  # noqa: E402
from runners.process import ProcessRunner  # noqa: E402

COMMAND_FLOW = """
id: bench_process_command
namespace: bench.process
tasks:
  - id: t
    type: io.kestra.plugin.scripts.shell.Commands
    warningOnStdErr: false
    commands:
      - "{command}"
"""
COMMANDS = ["true", "python -c pass"]  # a command that ends at once, and one taking a few tens of ms

LOG_FLOW = """
id: bench_process_logs
namespace: bench.process
tasks:
  - id: t
    type: io.kestra.plugin.scripts.python.Script
    script: |
      import time
      end = time.time() + {seconds}
      while time.time() < end:
          print("t=%.6f" % time.time(), flush=True)
          time.sleep(0.2)
"""


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bare_subprocess(command: str) -> float:
    started = time.perf_counter()
    subprocess.run(["/bin/sh", "-c", command], check=True)
    return time.perf_counter() - started


def runner_alone(command: str, folder: Path) -> float:
    started = time.perf_counter()
    result = ProcessRunner().run(CommandSpec(["/bin/sh", "-c", command], folder), lambda *_: None, RunControl())
    assert result.exit_code == 0
    return time.perf_counter() - started


def task_overhead(client: Client, command: str, runs: int, warmup: int) -> None:
    attempts: list[float] = []
    bare: list[float] = []
    runner: list[float] = []
    end_to_end: list[float] = []
    flow = COMMAND_FLOW.format(command=command)
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(warmup + runs):
            bare_time = bare_subprocess(command)
            runner_time = runner_alone(command, Path(tmp))
            started = time.perf_counter()
            ex = client.run(flow, timeout=60)
            total = time.perf_counter() - started
            assert ex.state == State.SUCCESS, ex.to_json()
            attempt = ex.task_runs[0].attempts[-1]
            assert attempt.start is not None and attempt.end is not None
            if i >= warmup:
                bare.append(bare_time)
                runner.append(runner_time)
                attempts.append((attempt.end - attempt.start).total_seconds())
                end_to_end.append(total)
    print(f"(a) process-runner task overhead, shell.Commands `{command}`, {runs} runs (+{warmup} warm-up), "
          "medians [p90]")
    for name, values in [("bare subprocess.run(sh -c ...)", bare), ("ProcessRunner.run alone", runner),
                         ("task attempt (claim -> finish)", attempts), ("Client.run end to end", end_to_end)]:
        print(f"    {name:34} {ms(statistics.median(values))}  [{ms(percentile(values, 0.9))}]")
    difference = statistics.median(attempts) - statistics.median(bare)
    print(f"    attempt - bare subprocess          {ms(difference)}  (target <= 15 ms: "
          f"{'met' if difference <= 0.015 else 'NOT met'})")
    print(f"    runner - bare subprocess           {ms(statistics.median(runner) - statistics.median(bare))}")


def live_log_delay(client: Client, seconds: float) -> None:
    ex = client.run(textwrap.dedent(LOG_FLOW.format(seconds=seconds)), wait=False)
    delays: list[float] = []

    def follow() -> None:
        for row in client.logs(ex.id, follow=True):
            if row["message"].startswith("t="):
                delays.append(time.time() - float(row["message"][2:]))

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    follower.join(seconds + 30)
    ended = client.wait(ex.id, 30)
    assert ended.state == State.SUCCESS, ended.to_json()
    assert delays, "no line read"
    print(f"(b) print -> readable through Client.logs(follow=True), {len(delays)} lines over {seconds:.0f} s")
    print(f"    p50 {ms(percentile(delays, 0.5))}   p95 {ms(percentile(delays, 0.95))}   "
          f"max {ms(max(delays))}   (target p50 <= 250 ms: "
          f"{'met' if percentile(delays, 0.5) <= 0.25 else 'NOT met'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--log-seconds", type=float, default=3.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="celestra-bench-process-") as home:
        client = Client(settings=Settings(home=Path(home)))
        for command in COMMANDS:
            task_overhead(client, command, args.runs, args.warmup)
        live_log_delay(client, args.log_seconds)
        from app.services import embedded

        embedded.shutdown()


if __name__ == "__main__":
    main()
