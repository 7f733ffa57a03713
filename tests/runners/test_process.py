"""The process runner against the runner conformance suite, plus what only a local process runner promises."""

from __future__ import annotations

import os
import statistics
import subprocess
import threading
import time
from pathlib import Path

import pytest
from runner_conformance import RunnerConformance  # tests/runners/ is on sys.path (pytest's rootdir-less import)

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
