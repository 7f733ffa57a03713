"""The process runner against the runner conformance suite, plus what only a local process runner promises."""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from runner_conformance import ListSink, RunnerConformance, group_members, wait_until  # tests/runners/ is on sys.path

from runners import RunnerError, TaskRunner, runner_for
from runners.base import CommandSpec, RunControl
from runners.process import ProcessRunner


class TestProcessRunner(RunnerConformance):
    def make_runner(self) -> TaskRunner:
        return runner_for("process")

    def test_runner_for_aliases(self) -> None:
        assert isinstance(self.make_runner(), ProcessRunner)
        assert isinstance(runner_for("io.kestra.plugin.core.runner.Process"), ProcessRunner)
        assert isinstance(runner_for("Process"), ProcessRunner)

    def test_unknown_runner_type_is_named(self) -> None:
        with pytest.raises(RunnerError, match="io.example.NoSuchRunner"):
            runner_for("io.example.NoSuchRunner")

    def test_external_id_is_the_leader_pid(self, runner: TaskRunner, workdir: Path) -> None:
        reported: list[tuple[str, int]] = []

        def on_external_id(external_id: str) -> None:
            reported.append((external_id, os.getpgid(int(external_id))))  # raises if the process is gone already

        result, sink, _ = self.run(runner, self.spec(workdir, "echo $$"), RunControl(on_external_id=on_external_id))
        assert result.exit_code == 0
        assert reported == [(result.external_id, int(result.external_id or 0))]  # its own group: pgid == pid
        assert sink.stream("stdout") == [result.external_id]  # the shell's own pid

    def test_missing_executable_raises_runner_error(self, runner: TaskRunner, workdir: Path) -> None:
        with pytest.raises(RunnerError, match="no-such-binary"):
            runner.run(CommandSpec(command=["/no/such/dir/no-such-binary"], working_dir=workdir),
                       lambda *_: None, RunControl())

    def test_non_utf8_output_is_replaced_not_fatal(self, runner: TaskRunner, workdir: Path) -> None:
        result, sink, _ = self.run(runner, self.spec(workdir, r"printf 'caf\351\n'; echo after"))
        assert result.exit_code == 0
        assert sink.stream("stdout") == ["caf\ufffd", "after"]

    def test_sink_called_from_reader_threads_only_while_running(self, runner: TaskRunner, workdir: Path) -> None:
        calls_after_return: list[str] = []
        returned = threading.Event()

        def sink(line: str, stream: str) -> None:
            if returned.is_set():
                calls_after_return.append(line)

        result = runner.run(self.spec(workdir, "echo a; echo b >&2; echo c"), sink, RunControl())
        returned.set()
        assert result.exit_code == 0
        assert calls_after_return == []

    def test_returns_promptly_once_the_command_ends(self, runner: TaskRunner, workdir: Path) -> None:
        bare, ran = [], []
        for _ in range(5):
            started = time.perf_counter()
            subprocess.run(["/bin/sh", "-c", "sleep 0.01"], check=True)
            bare.append(time.perf_counter() - started)
            started = time.perf_counter()
            assert runner.run(self.spec(workdir, "sleep 0.01"), lambda *_: None, RunControl()).exit_code == 0
            ran.append(time.perf_counter() - started)
        extra = statistics.median(ran) - statistics.median(bare)
        assert extra < 0.025, f"run() took {extra * 1000:.0f} ms more than subprocess.run (median of 5)"

    def test_the_command_has_no_stdin_and_no_guard_pipe(self, runner: TaskRunner, workdir: Path) -> None:
        """The prelude hands the guard its group id on stdin, then gives the command /dev/null: a `cat` ends at
        once, and none of the command's descriptors is the guard's pipe."""
        sink = ListSink()
        # No pipeline to count with: while the shell forks its stages it holds that pipeline's own pipe.
        script = "cat; echo read-done; ls -l /proc/$$/fd > fds.txt; grep -c pipe: fds.txt || true"
        result = runner.run(self.spec(workdir, script), sink, RunControl())
        assert result.exit_code == 0
        assert sink.stream("stdout")[0] == "read-done"
        assert sink.stream("stdout")[1] == "2"  # its stdout and stderr, read by the worker; no third pipe


# A worker in miniature: a Python process whose run() (in its main thread, or in another one as in the threads pool
# of the embedded mode) starts a script that backgrounds a child and sleeps. The test SIGKILLs that process.
DYING_WORKER = """
import os, sys, threading
from pathlib import Path
from runners.base import CommandSpec, RunControl
from runners.process import ProcessRunner

busy = [os.open(os.devnull, os.O_RDONLY) for _ in range(12)]  # a worker's descriptors: the runner's land above 9
script = "sleep 300 & echo $! > child.pid; echo $$ > leader.pid; sleep 300"
spec = CommandSpec(command=["/bin/sh", "-c", script], working_dir=Path(sys.argv[1]))
run = lambda: ProcessRunner().run(spec, lambda line, stream: None, RunControl())
if sys.argv[2] == "thread":
    threading.Thread(target=run, name="pool-thread").start()
else:
    run()
"""


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


@pytest.mark.parametrize("caller", ["main", "thread"])
def test_the_script_dies_with_the_worker_process(tmp_path: Path, caller: str) -> None:
    worker = subprocess.Popen([sys.executable, "-c", DYING_WORKER, str(tmp_path), caller],
                              start_new_session=True)
    pids = tmp_path / "leader.pid", tmp_path / "child.pid"
    leader = 0
    try:
        assert wait_until(lambda: all(p.exists() and p.read_text().endswith("\n") for p in pids), 10.0)
        leader, child = (int(p.read_text()) for p in pids)
        assert alive(leader) and alive(child) and os.getpgid(child) == leader
        os.kill(worker.pid, signal.SIGKILL)  # no finally, no atexit: only the kernel knows it is gone
        worker.wait(5)
        assert wait_until(lambda: not alive(leader) and not alive(child), 3.0), (
            f"outlived their worker: {[pid for pid in (leader, child) if alive(pid)]}")
        assert group_members(leader) == []
    finally:
        for group in (worker.pid, leader):
            with contextlib.suppress(ProcessLookupError):
                if group:
                    os.killpg(group, signal.SIGKILL)
        worker.wait(5)


def test_nothing_runs_on_when_run_gives_up(tmp_path: Path) -> None:
    leaders: list[int] = []

    def on_external_id(external_id: str) -> None:  # e.g. the store is unreachable: the attempt fails here
        leaders.append(int(external_id))
        raise RuntimeError("cannot record the external id")

    spec = CommandSpec(command=["/bin/sh", "-c", "sleep 300 & sleep 300"], working_dir=tmp_path)
    with pytest.raises(RuntimeError, match="external id"):
        ProcessRunner().run(spec, lambda *_: None, RunControl(on_external_id=on_external_id))
    assert leaders and wait_until(lambda: group_members(leaders[0]) == [], 1.0), group_members(leaders[0])
