"""The task-runner conformance suite (Kestra's AbstractTaskRunnerTest): every runner's test class subclasses it.

    class TestProcessRunner(RunnerConformance):
        def make_runner(self) -> TaskRunner:
            return runner_for("process")

The class has no `Test` prefix, so pytest collects its tests only through subclasses. Commands are
`["/bin/sh", "-c", "..."]` run in a fresh temporary working directory. Runners that do not run local processes
override `live_processes` (what of the command is still running, given its external id).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from runners.base import CommandSpec, RunControl, RunResult, Stream, TaskRunner, collect_outputs

OUTPUTS_LINE = '::{"outputs":{"a":1}}::'


class ListSink:
    """A thread-safe sink recording `(line, stream)` and when each line arrived."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.lines: list[tuple[str, Stream]] = []
        self.arrived: list[float] = []  # time.monotonic() of each line
        self.changed = threading.Condition(self.lock)

    def __call__(self, line: str, stream: Stream) -> None:
        with self.lock:
            self.lines.append((line, stream))
            self.arrived.append(time.monotonic())
            self.changed.notify_all()

    def stream(self, name: Stream) -> list[str]:
        with self.lock:
            return [line for line, stream in self.lines if stream == name]

    def wait_for(self, line: str, timeout: float) -> bool:
        """True once `line` has arrived (on any stream), False after `timeout` seconds."""
        with self.changed:
            return self.changed.wait_for(lambda: any(seen == line for seen, _ in self.lines), timeout)


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes whose process group is `pgid`, from a /proc scan."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # ended while we scanned
            continue
        fields = stat[stat.rfind(")") + 2:].split()  # after "pid (comm) ": state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry))
    return members


def wait_until(condition: Callable[[], bool], timeout: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)
    return True


class RunnerConformance:
    """What every task runner must do. Subclasses implement `make_runner`."""

    def make_runner(self) -> TaskRunner:
        raise NotImplementedError("a runner test class must implement make_runner()")

    def live_processes(self, external_id: str) -> list[int]:
        """What still runs of the command with this external id (a local runner: its process group)."""
        return group_members(int(external_id))

    # -- fixtures / helpers ------------------------------------------------------------------------------------
    @pytest.fixture
    def runner(self) -> TaskRunner:
        return self.make_runner()

    @pytest.fixture
    def workdir(self, tmp_path: Path) -> Path:
        folder = tmp_path / "work"
        folder.mkdir()
        return folder

    @staticmethod
    def spec(workdir: Path, script: str, **kwargs: object) -> CommandSpec:
        return CommandSpec(command=["/bin/sh", "-c", script], working_dir=workdir, **kwargs)  # type: ignore[arg-type]

    def run(self, runner: TaskRunner, spec: CommandSpec, control: RunControl | None = None
            ) -> tuple[RunResult, ListSink, float]:
        sink = ListSink()
        started = time.monotonic()
        result = runner.run(spec, sink, control or RunControl())
        return result, sink, time.monotonic() - started

    @staticmethod
    def kill_later(control: RunControl, after: float) -> threading.Thread:
        def kill() -> None:
            time.sleep(after)
            control.kill.set()

        thread = threading.Thread(target=kill, daemon=True)
        thread.start()
        return thread

    # -- the contract ------------------------------------------------------------------------------------------
    def test_plain_run(self, runner: TaskRunner, workdir: Path) -> None:
        result, sink, _ = self.run(runner, self.spec(workdir, "echo hello from the runner"))
        assert result.exit_code == 0
        assert not result.timed_out and not result.killed
        assert ("hello from the runner", "stdout") in sink.lines

    def test_failure_exit_code(self, runner: TaskRunner, workdir: Path) -> None:
        result, sink, _ = self.run(runner, self.spec(workdir, "echo before; exit 3"))
        assert result.exit_code == 3
        assert not result.timed_out and not result.killed
        assert sink.stream("stdout") == ["before"]

    def test_env(self, runner: TaskRunner, workdir: Path) -> None:
        env = {"CELESTRA_CONFORMANCE_VAR": "value with spaces 42", "OTHER_VAR": "x=y"}
        result, sink, _ = self.run(
            runner, self.spec(workdir, 'echo "[$CELESTRA_CONFORMANCE_VAR]"; echo "[$OTHER_VAR]"', env=env)
        )
        assert result.exit_code == 0
        assert sink.stream("stdout") == ["[value with spaces 42]", "[x=y]"]

    def test_input_files(self, runner: TaskRunner, workdir: Path) -> None:
        (workdir / "input.txt").write_text("payload line\n")
        (workdir / "nested" / "deeper").mkdir(parents=True)
        (workdir / "nested" / "deeper" / "data.csv").write_text("a,b\n1,2\n")
        result, sink, _ = self.run(runner, self.spec(workdir, "cat input.txt; cat nested/deeper/data.csv"))
        assert result.exit_code == 0
        assert sink.stream("stdout") == ["payload line", "a,b", "1,2"]

    def test_output_files(self, runner: TaskRunner, workdir: Path) -> None:
        script = "\n".join([
            "echo out > out.txt",
            "echo ignored > ignored.log",
            "mkdir -p data && echo 1,2 > data/a.csv",
            'mkdir -p "_outputs/sub" && echo report > _outputs/report.json && echo deep > _outputs/sub/deep.txt',
        ])
        spec = self.spec(workdir, script, output_files=["*.txt", "data/*.csv"])
        result, _, _ = self.run(runner, spec)
        assert result.exit_code == 0
        expected = {"out.txt": "out\n", "data/a.csv": "1,2\n", "report.json": "report\n", "sub/deep.txt": "deep\n"}
        assert set(result.output_files) == set(expected)
        assert set(result.output_files) == set(collect_outputs(spec))  # the names collect_outputs gives them
        assert {name: path.read_text() for name, path in result.output_files.items()} == expected

    def test_output_dir_exists_before_the_command(self, runner: TaskRunner, workdir: Path) -> None:
        spec = self.spec(workdir, "test -d _outputs && echo present > _outputs/marker.txt")
        result, _, _ = self.run(runner, spec)
        assert result.exit_code == 0, "the runner must create the output dir before the command starts"
        assert result.output_files["marker.txt"].read_text() == "present\n"

    def test_outputs_from_logs_reach_the_sink_verbatim(self, runner: TaskRunner, workdir: Path) -> None:
        result, sink, _ = self.run(runner, self.spec(workdir, f"echo '{OUTPUTS_LINE}'"))
        assert result.exit_code == 0
        assert sink.lines == [(OUTPUTS_LINE, "stdout")]  # parsing it is the script task's job

    def test_stderr(self, runner: TaskRunner, workdir: Path) -> None:
        result, sink, _ = self.run(runner, self.spec(workdir, "echo to-out; echo to-err >&2"))
        assert result.exit_code == 0
        assert sink.stream("stderr") == ["to-err"]
        assert sink.stream("stdout") == ["to-out"]

    def test_ordering_and_nothing_lost_at_the_end(self, runner: TaskRunner, workdir: Path) -> None:
        script = 'i=1; while [ "$i" -le 1000 ]; do echo "line $i"; i=$((i+1)); done; printf "no newline at end"'
        result, sink, _ = self.run(runner, self.spec(workdir, script))
        assert result.exit_code == 0
        assert sink.stream("stdout") == [f"line {i}" for i in range(1, 1001)] + ["no newline at end"]

    def test_lines_arrive_while_the_command_runs(self, runner: TaskRunner, workdir: Path) -> None:
        sink = ListSink()
        started = time.monotonic()
        result = runner.run(self.spec(workdir, "echo first; sleep 3; echo second"), sink, RunControl())
        ended = time.monotonic()
        assert result.exit_code == 0
        assert [line for line, _ in sink.lines] == ["first", "second"]
        # Streaming means 'first' arrives while the command still sleeps. Measured against the second line
        # rather than against run()'s start, so that a slow start-up on a loaded machine is not mistaken for
        # buffering; a runner that hands lines over at the end delivers both within milliseconds.
        gap = sink.arrived[1] - sink.arrived[0]
        assert gap > 1.5, f"'first' arrived only {gap:.2f}s before 'second': not streamed"
        assert sink.arrived[0] - started < 10.0
        assert ended - sink.arrived[0] > 1.5

    def test_timeout(self, runner: TaskRunner, workdir: Path) -> None:
        result, _, elapsed = self.run(runner, self.spec(workdir, "sleep 30", timeout=1))
        assert result.timed_out is True
        assert result.killed is False
        assert result.exit_code != 0
        assert elapsed < 3.0, f"a 1s timeout took {elapsed:.2f}s"

    def test_timeout_not_hit(self, runner: TaskRunner, workdir: Path) -> None:
        result, sink, elapsed = self.run(runner, self.spec(workdir, "echo quick", timeout=10))
        assert result.exit_code == 0
        assert result.timed_out is False
        assert sink.stream("stdout") == ["quick"]
        assert elapsed < 5.0

    def test_timeout_on_a_command_ignoring_sigterm(self, runner: TaskRunner, workdir: Path) -> None:
        result, _, elapsed = self.run(runner, self.spec(workdir, "trap '' TERM; sleep 30", timeout=1))
        assert result.timed_out is True
        assert elapsed < 4.0, f"a command ignoring SIGTERM was stopped only after {elapsed:.2f}s"
        assert result.external_id is not None
        assert wait_until(lambda: not self.live_processes(result.external_id or ""), 1.0)

    def test_cancel(self, runner: TaskRunner, workdir: Path) -> None:
        control = RunControl()
        killer = self.kill_later(control, 0.5)
        result, _, elapsed = self.run(runner, self.spec(workdir, "sleep 30"), control)
        killer.join()
        assert result.killed is True
        assert result.timed_out is False
        assert elapsed < 3.0, f"a cancel 0.5s in returned after {elapsed:.2f}s"

    def test_cancel_requested_before_start(self, runner: TaskRunner, workdir: Path) -> None:
        control = RunControl()
        control.kill.set()
        result, _, elapsed = self.run(runner, self.spec(workdir, "sleep 30"), control)
        assert result.killed is True
        assert elapsed < 3.0

    def test_no_orphan_left_after_cancel(self, runner: TaskRunner, workdir: Path) -> None:
        control = RunControl()
        seen: list[tuple[str, list[int]]] = []  # (external id, what ran of it when it was reported)
        reported = threading.Event()

        def on_external_id(external_id: str) -> None:
            seen.append((external_id, self.live_processes(external_id)))
            reported.set()

        control.on_external_id = on_external_id
        sink = ListSink()

        def kill_when_started() -> None:
            reported.wait(5.0)
            sink.wait_for("started", 5.0)  # the background child exists by then
            time.sleep(0.2)
            control.kill.set()

        killer = threading.Thread(target=kill_when_started, daemon=True)
        killer.start()
        started = time.monotonic()
        result = runner.run(self.spec(workdir, "sleep 300 & echo started; sleep 300"), sink, control)
        elapsed = time.monotonic() - started
        killer.join()
        assert result.killed is True
        assert elapsed < 4.0
        assert seen, "on_external_id was never called"
        external_id, running_then = seen[0]
        assert result.external_id == external_id
        assert running_then, "on_external_id was called when the command was not running (or names nothing)"
        assert wait_until(lambda: not self.live_processes(external_id), 1.0), (
            f"left behind after cancel: {self.live_processes(external_id)}"
        )

    # A leader that exits while a background child still holds stdout/stderr open: the runner must not wait for
    # that child past the timeout or a cancel, and must not leave it running.
    LINGERING = "sleep 6 & echo leader done"

    def test_timeout_with_a_background_child_holding_the_output(self, runner: TaskRunner, workdir: Path) -> None:
        ids: list[str] = []
        control = RunControl(on_external_id=ids.append)
        _, sink, elapsed = self.run(runner, self.spec(workdir, self.LINGERING, timeout=1), control)
        assert ("leader done", "stdout") in sink.lines
        assert elapsed < 3.5, f"timeout=1 but run() returned after {elapsed:.2f}s (waited for the background child)"
        assert ids and wait_until(lambda: not self.live_processes(ids[0]), 1.0), "the background child outlived run()"

    def test_cancel_with_a_background_child_holding_the_output(self, runner: TaskRunner, workdir: Path) -> None:
        ids: list[str] = []
        control = RunControl(on_external_id=ids.append)
        killer = self.kill_later(control, 0.5)
        _, sink, elapsed = self.run(runner, self.spec(workdir, self.LINGERING), control)
        killer.join()
        assert ("leader done", "stdout") in sink.lines
        assert elapsed < 3.5, f"cancel after 0.5s but run() returned after {elapsed:.2f}s"
        assert ids and wait_until(lambda: not self.live_processes(ids[0]), 1.0), "the background child outlived run()"
