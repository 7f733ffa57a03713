"""What a container probe reads of a server or worker (`celestra probe`): each round of the process's own loop (the
server's timer scan, a worker's heartbeat) rewrites a small file named after its Celery node.

A file, not a port: a worker serves nothing, and a probe that asked the broker or the database would restart every
process of the cluster during an outage the engine rides out. So the two questions are kept apart:
- alive: the loop turned within `max_age` (a stuck or dead loop: restart the process);
- ready: its last round reached the store too (during an outage: not ready, yet alive, so nothing is restarted).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import tempfile
import time
from pathlib import Path

from app import runtime

READY = "ready"
log = logging.getLogger("celestra.probes")


def node_name(role: str, host: str | None = None) -> str:
    """The Celery node name `celestra server` (server@host) and `celestra worker --worker-group G` (G@host) take."""
    return f"{role}@{host or socket.gethostname()}"


def probe_file(node: str) -> Path:
    # Per node (several workers of one host never share a file), under `probe_dir` or the temporary folder.
    folder = runtime.settings().probe_dir or Path(tempfile.gettempdir())
    return folder / f"celestra-probe-{re.sub(r'[^A-Za-z0-9@._-]', '_', node)}"


def record(node: str, reached_store: bool, detail: str = "") -> None:
    """One round of the loop of `node`: `reached_store` when it read or wrote the store."""
    path = probe_file(node)
    scratch = path.with_name(f"{path.name}.{os.getpid()}")
    try:
        scratch.write_text(READY if reached_store else f"not ready: {detail or 'the store was unreachable'}")
        scratch.replace(path)  # whole: a probe never reads half a file
    except OSError as exc:  # never stops the loop that records: its work matters more than its probe
        log.warning("could not write the probe file %s: %s", path, exc)


def check(node: str, max_age: float, ready: bool) -> str | None:
    """None if `node` is alive (and, with `ready`, ready); otherwise why not."""
    path = probe_file(node)
    try:
        age = time.time() - path.stat().st_mtime
        state = path.read_text()
    except OSError:
        return f"{node}: no probe file {path} (not started, or not on this host)"
    if age > max_age:
        return f"{node}: its loop last turned {age:.0f}s ago (more than {max_age:.0f}s)"
    if ready and state != READY:
        return f"{node}: {state}"
    return None
