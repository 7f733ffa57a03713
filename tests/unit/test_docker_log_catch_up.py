"""The Docker runner's catch-up read: what a follow missed at the container's end is delivered once, nothing twice.

The engine-level case (a final unterminated line after 1000 lines) runs in the runner conformance suite on a real
engine; here a stand-in container replays the engine's two answers exactly, to pin down the skipping rules.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from runners.base import RunControl
from runners.docker import _epoch_ns, _follow_stream, _logged_until_ns

T1 = b"2026-11-29T07:03:58.000000001Z"
T2 = b"2026-11-29T07:03:58.000000002Z"
T3 = b"2026-11-29T07:03:59.000000000Z"


class Engine:
    """Answers a follow with `followed` and the catch-up read with every entry since the requested second."""

    def __init__(self, entries: list[bytes], followed: int):
        self.entries, self.followed = entries, followed
        self.since: list[int | None] = []

    def logs(self, *, stream: bool, follow: bool, timestamps: bool, since: int | None = None, **which: bool) -> Any:
        assert stream and timestamps and which["stdout"] and not which["stderr"]
        if follow:
            return iter(self.entries[: self.followed])
        self.since.append(since)
        return iter(self.entries)  # the engine's filter is by whole seconds: an earlier entry may come again


def lines(entries: list[bytes], followed: int) -> tuple[list[str], Engine]:
    got: list[str] = []
    engine = Engine(entries, followed)
    _follow_stream(engine, "stdout", lambda line, stream: got.append(line))
    return got, engine


def test_a_missed_unterminated_last_line_is_caught_up() -> None:
    got, engine = lines([T1 + b" a\n", T2 + b" b\n", T3 + b" tail without newline"], followed=2)
    assert got == ["a", "b", "tail without newline"]
    assert engine.since == [1795935838]


def test_entries_sharing_a_timestamp_are_neither_lost_nor_repeated() -> None:
    got, _ = lines([T1 + b" a\n", T2 + b" b\n", T2 + b" c\n", T2 + b" d\n"], followed=3)
    assert got == ["a", "b", "c", "d"]


def test_a_complete_follow_adds_nothing() -> None:
    got, _ = lines([T1 + b" a\n", T2 + b" part of a long ", T2 + b" line\n"], followed=3)
    assert got == ["a", "part of a long line"]


def test_a_follow_that_saw_nothing_reads_everything() -> None:
    got, engine = lines([T1 + b" only\n"], followed=0)
    assert got == ["only"] and engine.since == [None]


# -- a takeover: what the dead worker stored (printed up to `logged_until`) is replayed, the rest logged ---------
def taken_over(entries: list[bytes], logged_until: int) -> tuple[list[str], list[str]]:
    logged: list[str] = []
    replayed: list[str] = []
    _follow_stream(Engine(entries, followed=len(entries)), "stdout", lambda line, stream: logged.append(line),
                   lambda line, stream: replayed.append(line), logged_until)
    return logged, replayed


def test_the_boundary_is_exact_to_the_nanosecond() -> None:
    at_t2 = _epoch_ns(T2)
    assert at_t2 == 1795935838 * 10**9 + 2
    logged, replayed = taken_over([T1 + b" a\n", T2 + b" b\n", T3 + b" c\n"], at_t2)
    assert (replayed, logged) == (["a", "b"], ["c"])
    logged, replayed = taken_over([T1 + b" a\n", T2 + b" b\n", T3 + b" c\n"], at_t2 - 1)
    assert (replayed, logged) == (["a"], ["b", "c"])


def test_a_line_completed_after_the_boundary_is_logged_whole() -> None:
    logged, replayed = taken_over([T1 + b" a\n", T2 + b" start of a long ", T3 + b" line\n"], _epoch_ns(T2))
    assert (replayed, logged) == (["a"], ["start of a long line"])


def test_the_workers_moment_becomes_nanoseconds() -> None:
    moment = datetime(2026, 11, 29, 7, 3, 58, 295592, tzinfo=UTC)
    assert _logged_until_ns(RunControl(logged_until=lambda: moment)) == _epoch_ns(b"2026-11-29T07:03:58.295592000Z")
    assert _logged_until_ns(RunControl()) is None
