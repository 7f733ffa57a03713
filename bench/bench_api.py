"""REST API latency: `GET /api/v1/main/executions/{id}` of an execution of 1,000 task runs, through a real
`celestra webserver` process (embedded: SQLite under a temp folder), against the same execution read in-process
with `Client.get` in the same run (the floor: the store read alone, without HTTP and JSON shaping).

    .venv/bin/python bench/bench_api.py                 # 1,000 task runs, 200 requests
    .venv/bin/python bench/bench_api.py --runs 500 --requests 100

It prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

CELESTRA = str(Path(sys.executable).parent / "celestra")
AUTH = ("bench", "bench")


def flow(runs: int) -> str:
    # A ForEach over `runs` values, one Return each: runs + 1 task runs (the ForEach's own).
    return f"""id: wide
namespace: bench.api
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: "{{{{ range(0, {runs - 1}) | list }}}}"
    concurrencyLimit: 0
    tasks:
      - id: item
        type: io.kestra.plugin.core.debug.Return
        format: "{{{{ taskrun.value }}}}"
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000, help="task runs of the execution read")
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="celestra-bench-api-"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELESTRA_")}
    env.update(CELESTRA_HOME=str(home), CELESTRA_API_PORT=str(port), CELESTRA_API_BASIC_AUTH=":".join(AUTH))
    server = subprocess.Popen([CELESTRA, "webserver"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, auth=AUTH, timeout=600) as http:
            while True:
                try:
                    if http.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            http.post("/api/v1/main/flows", content=flow(args.runs), headers={"Content-Type": "application/x-yaml"})
            started = time.perf_counter()
            ex = http.post("/api/v1/main/executions/bench.api/wide", params={"wait": "true"}).json()
            print(f"execution of {len(ex['taskRunList'])} task runs, {ex['state']['current']}, "
                  f"ran in {time.perf_counter() - started:.1f} s")
            timings = []
            for _ in range(args.requests):
                began = time.perf_counter()
                answer = http.get(f"/api/v1/main/executions/{ex['id']}")
                timings.append((time.perf_counter() - began) * 1000)
                assert answer.status_code == 200
            size = len(answer.content)
        os.environ.update(CELESTRA_HOME=str(home))
        from app.client import Client

        client = Client()
        floor = []
        for _ in range(args.requests):
            began = time.perf_counter()
            client.get(ex["id"])
            floor.append((time.perf_counter() - began) * 1000)
        p50, floor_p50 = statistics.median(timings), statistics.median(floor)
        print(f"GET /api/v1/main/executions/{{id}} ({size / 1024:.0f} KiB): p50 {p50:.1f} ms, "
              f"p99 {percentile(timings, 0.99):.1f} ms over {args.requests} requests")
        print(f"Client.get in-process (store read only): p50 {floor_p50:.1f} ms; API / store read: "
              f"{p50 / floor_p50:.2f}x")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
