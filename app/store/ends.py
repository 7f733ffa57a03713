"""Execution ends are announced on PostgreSQL (NOTIFY, sent when the ending transaction commits), so a client
waiting for an execution wakes at once instead of polling the database (SQLite: clients poll).

A process listens on one connection of its own, read by one thread that wakes whoever waits for the execution
announced (`EndWatcher`): a wait costs no LISTEN/UNLISTEN round trips and no pooled connection, however many
threads wait at once. The thread and its connection end after a minute with nobody waiting. A notification can be
lost (the connection dropped during an outage), so waiters also read the state again every second.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger("celestra.ends")
CHANNEL = "celestra_execution_ended"
RECONNECT_DELAY = 1.0
IDLE_EXIT = 60.0  # seconds without a waiter before the watcher lets its connection go


def announce(conn: Connection, execution_id: str) -> None:
    """In the transaction that ends the execution: delivered only if it commits."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_notify(:channel, :id)"), {"channel": CHANNEL, "id": execution_id})


class EndWatcher:
    """One LISTEN connection and the thread that reads it, started by the first wait and ended after IDLE_EXIT
    seconds without a waiter, or when its connection fails with nobody waiting (a database dropped)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.lock = threading.Lock()
        self.waiters: dict[str, set[threading.Event]] = {}
        self.listening = threading.Event()
        self.thread: threading.Thread | None = None
        self.idle_since = time.monotonic()

    @contextmanager
    def waiting(self, execution_id: str, ready_within: float = 1.0) -> Iterator[threading.Event]:
        """An event set when `execution_id` is announced. Registered before the caller reads the state, so an end
        committed after that read cannot be missed; waits up to `ready_within` for the LISTEN to be in place."""
        woken = threading.Event()
        with self.lock:
            self.waiters.setdefault(execution_id, set()).add(woken)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, daemon=True, name="celestra-end-watcher")
                self.thread.start()
        try:
            self.listening.wait(ready_within)
            yield woken
        finally:
            with self.lock:
                events = self.waiters.get(execution_id)
                if events is not None:
                    events.discard(woken)
                    if not events:
                        del self.waiters[execution_id]
                        self.idle_since = time.monotonic()

    def _run(self) -> None:
        while True:
            connection: Any = None
            try:
                proxy = self.engine.raw_connection()
                proxy.detach()  # its own for as long as it listens: never handed back to the pool
                connection = proxy.dbapi_connection
                connection.autocommit = True
                connection.execute(f"LISTEN {CHANNEL}")
                self.listening.set()
                while True:
                    for note in connection.notifies(timeout=1.0):
                        self._wake(note.payload)
                    with self.lock:
                        if not self.waiters and time.monotonic() - self.idle_since > IDLE_EXIT:
                            self.thread = None
                            self.listening.clear()
                            return
            except Exception as exc:  # noqa: BLE001 - the connection failed: waiters fall back on reading the state
                self.listening.clear()
                log.debug("end watcher lost its connection: %s", exc)
            finally:
                if connection is not None:
                    with contextlib.suppress(Exception):  # already broken
                        connection.close()
            with self.lock:
                if not self.waiters:
                    self.thread = None
                    return
            time.sleep(RECONNECT_DELAY)

    def _wake(self, execution_id: str) -> None:
        with self.lock:
            for woken in self.waiters.get(execution_id, ()):
                woken.set()


_watchers: weakref.WeakValueDictionary[int, EndWatcher] = weakref.WeakValueDictionary()  # kept by their threads
_watchers_lock = threading.Lock()


def watcher(engine: Engine) -> EndWatcher | None:
    """This process's watcher of `engine`'s database (None on SQLite: clients poll)."""
    if engine.dialect.name != "postgresql":
        return None
    with _watchers_lock:
        found = _watchers.get(id(engine))
        if found is None or found.engine is not engine:
            found = _watchers[id(engine)] = EndWatcher(engine)
        return found


def _after_fork() -> None:
    global _watchers, _watchers_lock
    _watchers = weakref.WeakValueDictionary()  # a child has none of its parent's threads
    _watchers_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork)
