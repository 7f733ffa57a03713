"""Docker task runner wall time against `docker run --rm`, measured in one run on the same Docker engine.

    DOCKER_HOST=unix:///var/lib/celestra-docker/docker.sock .venv/bin/python bench/bench_docker.py [--runs 5]

One-line Python command, `python -c "print(1)"` in celestra/python:3.11 (local image, pullPolicy NEVER), timed
several ways in each round, alternating so all see the same machine and engine load:
  * baseline: `docker run --rm celestra/python:3.11 python -c "print(1)"` (subprocess, same DOCKER_HOST);
  * (a) the runner alone: `runner_for("docker", {"pullPolicy": "NEVER"}).run(CommandSpec(...))` wall time;
  * (b) a flow with one python.Commands task, `taskRunner: docker`, run through the embedded Client: the task run's
    stored attempt (claim -> finish) and Client.run end to end;
  * (c) the same as a python.Script task (`script: print(1)`): its script file goes into the container first.
Prints medians and ratios against the baseline (target <= 1.1x); the paired ratio (each round against its own
docker run, then the median) is the steadiest on a shared machine. With --trace, one more runner run prints each Docker
API call it makes (time from the start of `run`, duration), to show where the runner's time goes. Figures, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.client import Client  # noqa: E402
from app.model.states import State  # noqa: E402
from app.settings import Settings  # noqa: E402
from runners import CommandSpec, RunControl, runner_for  # noqa: E402

DEFAULT_DOCKER_HOST = "unix:///var/lib/celestra-docker/docker.sock"
IMAGE = "celestra/python:3.11"
ARGV = ["python", "-c", "print(1)"]
TARGET_RATIO = 1.1
FLOW = f"""
id: bench_docker
namespace: bench.docker
tasks:
  - id: t
    type: io.kestra.plugin.scripts.python.Commands
    containerImage: {IMAGE}
    taskRunner:
      type: io.kestra.plugin.scripts.runner.docker.Docker
      pullPolicy: NEVER
    commands:
      - python -c "print(1)"
"""
SCRIPT_FLOW = f"""
id: bench_docker_script
namespace: bench.docker
tasks:
  - id: t
    type: io.kestra.plugin.scripts.python.Script
    containerImage: {IMAGE}
    taskRunner:
      type: io.kestra.plugin.scripts.runner.docker.Docker
      pullPolicy: NEVER
    script: print(1)
"""


def docker_run() -> float:
    started = time.perf_counter()
    done = subprocess.run(["docker", "run", "--rm", IMAGE, *ARGV], capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0 or done.stdout.strip() != "1":
        raise RuntimeError(f"docker run failed ({done.returncode}): {done.stdout}{done.stderr}")
    return elapsed


def runner_alone(folder: Path, name: str) -> float:
    lines: list[tuple[str, str]] = []
    spec = CommandSpec(command=ARGV, working_dir=folder, container_image=IMAGE, name=name)
    started = time.perf_counter()
    result = runner_for("docker", {"pullPolicy": "NEVER"}).run(spec, lambda line, stream: lines.append((line, stream)),
                                                                RunControl())
    elapsed = time.perf_counter() - started
    if result.exit_code != 0 or ("1", "stdout") not in lines:
        raise RuntimeError(f"runner: exit {result.exit_code}, lines {lines}")
    return elapsed


def flow_run(client: Client, flow: str = FLOW) -> tuple[float, float]:
    """(attempt seconds, Client.run seconds)."""
    started = time.perf_counter()
    ex = client.run(flow, timeout=120)
    elapsed = time.perf_counter() - started
    if ex.state != State.SUCCESS:
        raise RuntimeError(f"flow ended {ex.state}: {ex.to_json()}")
    attempt = ex.task_runs[0].attempts[-1]
    assert attempt.start is not None and attempt.end is not None
    return (attempt.end - attempt.start).total_seconds(), elapsed


@contextlib.contextmanager
def api_trace() -> Iterator[list[tuple[float, float, str]]]:
    """Every Docker API request made meanwhile: (start, duration, 'METHOD /path'), times from perf_counter."""
    import requests

    calls: list[tuple[float, float, str]] = []
    original: Callable[..., Any] = requests.Session.request

    def request(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(self, method, url, *args, **kwargs)
        finally:
            path = urlsplit(url).path
            if path.startswith("/v1."):
                path = "/" + path.split("/", 2)[2]  # no API version
            path = re.sub(r"[0-9a-f]{64}", lambda m: m.group()[:12], path)  # short container ids
            calls.append((started, time.perf_counter() - started, f"{method} {path}"))

    requests.Session.request = request  # type: ignore[method-assign,assignment]
    try:
        yield calls
    finally:
        requests.Session.request = original  # type: ignore[method-assign]


def trace_once(what: str, run: Callable[[], Any]) -> None:
    with api_trace() as calls:
        started = time.perf_counter()
        run()
        total = time.perf_counter() - started
    print(f"  {what}, traced: {total * 1000:.0f} ms; its Docker API calls (offset from the start, duration):")
    for start, duration, call in sorted(calls):
        print(f"    +{(start - started) * 1000:7.1f} ms  {duration * 1000:7.1f} ms  {call[:80]}")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="Measured rounds (each times every way).")
    parser.add_argument("--warmup", type=int, default=1, help="Unmeasured rounds first.")
    parser.add_argument("--trace", action="store_true", help="Also trace the Docker API calls of one runner run.")
    args = parser.parse_args()
    os.environ.setdefault("DOCKER_HOST", DEFAULT_DOCKER_HOST)
    results: dict[str, list[float]] = {"docker run --rm": [], "(a) runner alone": [], "(b) task attempt": [],
                                       "(b) Client.run end to end": [], "(c) Script task attempt": []}
    home = Path(tempfile.mkdtemp(prefix="celestra-bench-docker-"))
    try:
        client = Client(settings=Settings(home=home / "home"))
        for i in range(args.warmup + args.runs):
            folder = home / f"runner-{i}"
            folder.mkdir()
            name = f"celestra-bench-docker-{os.getpid()}-{i}"
            # Alternate the order each round so no side always follows the same one.
            steps: list[tuple[str, Callable[[], Any]]] = [
                ("docker run --rm", docker_run),
                ("(a) runner alone", functools.partial(runner_alone, folder, name)),
                ("(b)", lambda: flow_run(client)),
                ("(c)", lambda: flow_run(client, SCRIPT_FLOW)),
            ]
            if i % 2:
                steps.reverse()
            for label, step in steps:
                value = step()
                if i < args.warmup:
                    continue
                if label == "(b)":
                    results["(b) task attempt"].append(value[0])
                    results["(b) Client.run end to end"].append(value[1])
                elif label == "(c)":
                    results["(c) Script task attempt"].append(value[0])
                else:
                    results[label].append(value)
            print(f"[bench] round {i + 1}/{args.warmup + args.runs}" + (" (warm-up)" if i < args.warmup else ""),
                  file=sys.stderr, flush=True)
        baseline = results["docker run --rm"]
        print(f"Docker runner vs docker run --rm, `{' '.join(ARGV)}` in {IMAGE}, DOCKER_HOST="
              f"{os.environ['DOCKER_HOST']}")
        print(f"{args.runs} rounds (+{args.warmup} warm-up), order alternating; machine: {os.cpu_count()} cores, "
              f"load avg {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print("Ratios: median of the per-round ratios (each against the docker run of the same round, target "
              f"<= {TARGET_RATIO}x), then ratio of medians, then of minimums.")
        print(f"  {'':28} {'median':>11} {'min':>11} {'max':>11}   {'paired':>7} {'medians':>8} {'mins':>6}")
        for label, values in results.items():
            row = f"  {label:28} {ms(statistics.median(values))} {ms(min(values))} {ms(max(values))}"
            if label != "docker run --rm":
                paired = statistics.median(v / b for v, b in zip(values, baseline, strict=True))
                row += (f"   {paired:6.2f}x {statistics.median(values) / statistics.median(baseline):7.2f}x "
                        f"{min(values) / min(baseline):5.2f}x  " + ("ok" if paired <= TARGET_RATIO else "OVER"))
            print(row)
        if args.trace:  # log streams and waits run in threads: their requests overlap the main sequence
            folder = home / "trace"
            folder.mkdir()
            trace_once("(a) one runner run", lambda: runner_alone(folder, f"celestra-bench-docker-{os.getpid()}-t"))
            trace_once("(b) one flow run, Client.run", lambda: flow_run(client))
        from app.services import embedded

        embedded.shutdown()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
