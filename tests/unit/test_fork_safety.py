"""A prefork worker forks pool processes while its own threads (the heartbeat) may hold a module's lock: a child
must not start with such a lock held, or its first task hangs forever. Real forks, one per lock."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any

import pytest

from app import runtime
from app.model import registry


def _forked_while_held(lock_owner: Any, attribute: str, in_child: Callable[[], None]) -> int:
    """Fork while `lock_owner.<attribute>` is held (as a parent's thread would hold it), run `in_child` there;
    the child's exit status: 0 done, 2 hung."""
    lock = getattr(lock_owner, attribute)
    with lock:
        pid = os.fork()
        if pid == 0:  # the child: a hang is cut short by the alarm
            signal.signal(signal.SIGALRM, lambda *_: os._exit(2))
            signal.alarm(20)
            try:
                in_child()
            except BaseException:  # noqa: BLE001 - anything but a clean run is a failure of the child
                os._exit(1)
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_child_forked_while_the_registry_is_built_builds_its_own() -> None:
    registry.registry()

    def rebuild() -> None:
        registry._registry = None  # the parent's thread had not finished building it
        assert "io.kestra.plugin.core.log.Log" in registry.registry().by_type

    assert _forked_while_held(registry, "_lock", rebuild) == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_child_forked_while_the_store_is_made_makes_its_own() -> None:
    def make_store() -> None:
        runtime._store = None
        runtime.store()

    assert _forked_while_held(runtime, "_lock", make_store) == 0
