"""A prefork worker's pool process is SIGKILLed while a Shell task runs on the Process runner: the script and the
child it put in the background die with it. Left running, they would run beside the attempt resent after the
worker's death: the script's side effects twice."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # tests/integration/conftest.py; `import conftest` at run time may find tests/unit's
    from conftest import Cluster

pytestmark = pytest.mark.integration

FLOW = """\
id: dies_with_its_worker
namespace: celestra.it.process
tasks:
  - id: script
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - sleep 300 &
      - echo "$$ $! $PPID" > {pids}.tmp && mv {pids}.tmp {pids}
      - sleep 300
"""


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_the_script_dies_with_the_pool_process_running_it(cluster: Cluster, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    ex = cluster.client.run(FLOW.format(pids=pids), wait=False)
    leader = 0
    try:
        deadline = time.monotonic() + 60
        while not pids.exists():
            cluster.check_alive()
            assert time.monotonic() < deadline, "the script never started"
            time.sleep(0.1)
        leader, child, pool = (int(pid) for pid in pids.read_text().split())
        worker = next(service for service in cluster.services if service.name == "worker")
        assert pool != worker.process.pid, "a prefork pool process runs the task, not the main process"
        assert alive(leader) and alive(child) and os.getpgid(child) == leader

        os.kill(pool, signal.SIGKILL)  # the pool process only: the main process lives on and forks another

        assert wait_for(lambda: not alive(leader) and not alive(child), 5.0), (
            f"outlived the pool process {pool}: {[pid for pid in (leader, child) if alive(pid)]}")
        assert worker.alive
    finally:
        cluster.client.cancel(ex.id)
        if leader:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(leader, signal.SIGKILL)  # whatever a failure left behind
