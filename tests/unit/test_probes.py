"""`celestra probe` against the file a loop records (app/engine/probes.py), run as a container runs it: alive while
the loop turns, ready only while its last round reached the store, dead once the loop stopped for --max-age."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from app import runtime
from app.engine import probes
from app.settings import Settings, configured, load_settings

CELESTRA = str(Path(sys.executable).parent / "celestra")


def probe(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELESTRA_")} | {"CELESTRA_PROBE_DIR": str(folder)}
    return subprocess.run([CELESTRA, "probe", *args], env=env, capture_output=True, text=True, timeout=60,
                          check=False)


def test_alive_ready_and_dead(tmp_path: Path) -> None:
    previous = configured()
    runtime.configure(Settings(home=tmp_path / "home", probe_dir=tmp_path))
    try:
        host = socket.gethostname()
        missing = probe(tmp_path, "worker", "--worker-group", "gpu")
        assert missing.returncode == 1 and f"gpu@{host}: no probe file" in missing.stderr

        probes.record(f"gpu@{host}", True)
        assert probe(tmp_path, "worker", "--worker-group", "gpu", "--ready").stdout == f"gpu@{host}: ready\n"

        probes.record(f"gpu@{host}", False, "heartbeat failed: connection refused")
        assert probe(tmp_path, "worker", "--worker-group", "gpu").returncode == 0  # alive: nothing to restart
        not_ready = probe(tmp_path, "worker", "--worker-group", "gpu", "--ready")
        assert not_ready.returncode == 1 and "not ready: heartbeat failed: connection refused" in not_ready.stderr

        probes.record(f"server@{host}", True)
        old = time.time() - 300
        os.utime(probes.probe_file(f"server@{host}"), (old, old))
        dead = probe(tmp_path, "server")
        assert dead.returncode == 1 and "last turned 30" in dead.stderr and "(more than 120s)" in dead.stderr
        assert probe(tmp_path, "server", "--max-age", "600").returncode == 0

        probes.record("w1@elsewhere", True)
        assert probe(tmp_path, "worker", "--node", "w1@elsewhere", "--ready").returncode == 0
        assert probe(tmp_path, "server", "--node", "x").returncode == 2
    finally:
        runtime.configure(previous if previous is not None else load_settings())
