"""The newest revision of each deployed flow, parsed once per revision: what schedules and flow triggers watch."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass

from app import runtime
from app.model.flow import Flow
from app.model.loader import parse_flow

log = logging.getLogger("celestra.deployed")
LIST_TTL = 1.0  # seconds a listing of deployed flows is reused: a deploy is seen within that delay


@dataclass(frozen=True)
class Deployed:
    namespace: str
    flow_id: str
    revision: int
    source: str
    flow: Flow


class DeployedFlows:
    def __init__(self) -> None:
        self._parsed: dict[tuple[str, str, int], Deployed | None] = {}  # a saved revision never changes
        self._listed: tuple[float, list[Deployed]] | None = None
        self._lock = threading.Lock()
        # A prefork worker forks pool processes while its heartbeat thread may hold the lock (resending a dead
        # process's run ends executions, which asks who watches them): a child must not inherit it held.
        os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()

    def all(self) -> list[Deployed]:
        with self._lock:
            if self._listed is not None and time.monotonic() - self._listed[0] < LIST_TTL:
                return self._listed[1]
        found: list[Deployed] = []
        for row in runtime.store().list_flows():
            key = (row["namespace"], row["id"], int(row["revision"]))
            if key not in self._parsed:
                self._parsed[key] = _parse(*key)
            deployed = self._parsed[key]
            if deployed is not None:
                found.append(deployed)
        with self._lock:
            self._listed = (time.monotonic(), found)
        return found

    def forget_listing(self) -> None:
        """The next `all` lists again (after a deploy in this process, or in tests)."""
        with self._lock:
            self._listed = None


def _parse(namespace: str, flow_id: str, revision: int) -> Deployed | None:
    _, source = runtime.store().get_flow(namespace, flow_id, revision)
    try:
        return Deployed(namespace, flow_id, revision, source, parse_flow(source))
    except Exception:
        log.exception("deployed flow %s.%s revision %d no longer parses", namespace, flow_id, revision)
        return None
