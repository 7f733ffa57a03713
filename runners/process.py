"""Process runner: the command runs as a local process group in the worker's host (Kestra's default runner)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from typing import IO

from runners.base import CommandSpec, LogSink, RunControl, RunnerError, RunResult, Stream, TaskRunner, collect_outputs

KILL_GRACE = 1.0  # seconds between SIGTERM and SIGKILL
POLL = 0.05  # seconds between checks for a kill request or the timeout
READER_GRACE = 5.0  # seconds to drain the pipes once the process group is gone


class ProcessRunner(TaskRunner):
    def run(self, spec: CommandSpec, sink: LogSink, control: RunControl) -> RunResult:
        (spec.working_dir / spec.output_dir).mkdir(parents=True, exist_ok=True)
        # A clean environment: the allowed part of the worker's, then the task's own (never the worker's secrets).
        env = {**self.policy.inherited(os.environ), **spec.env}
        try:
            process = subprocess.Popen(
                spec.command, cwd=spec.working_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL, start_new_session=True,  # its own process group: we kill all of it
            )
        except OSError as exc:
            raise RunnerError(f"Cannot start {spec.command[0]!r}: {exc.strerror}") from exc
        control.on_external_id(str(process.pid))
        readers = [self._reader(process.stdout, "stdout", sink), self._reader(process.stderr, "stderr", sink)]
        deadline = time.monotonic() + spec.timeout if spec.timeout else None
        ended = threading.Event()
        stopped: list[str] = []  # "killed" or "timeout", set by the watcher

        def watch() -> None:
            # A blocking wait below notices the exit at once; this thread alone handles kill and timeout.
            while not ended.is_set():
                if control.kill.wait(POLL):
                    stopped.append("killed")
                elif deadline is not None and time.monotonic() >= deadline:
                    stopped.append("timeout")
                else:
                    continue
                self._kill_group(process)
                return

        watcher = threading.Thread(target=watch, daemon=True, name="celestra-process-watch")
        watcher.start()
        process.wait()
        ended.set()
        if stopped:
            watcher.join()  # it is still making sure of the group; otherwise it ends by itself within POLL
        killed, timed_out = "killed" in stopped, "timeout" in stopped
        # The leader is done: anything it left in its group (a background child holding our pipes) is an orphan.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        for reader in readers:
            reader.join(READER_GRACE)  # every line is in the sink before we return (no line lost at the end)
        return RunResult(exit_code=process.returncode, external_id=str(process.pid),
                         output_files=collect_outputs(spec), timed_out=timed_out, killed=killed)

    @staticmethod
    def _reader(pipe: IO[bytes] | None, stream: Stream, sink: LogSink) -> threading.Thread:
        def read() -> None:
            assert pipe is not None
            with pipe:
                for raw in iter(pipe.readline, b""):
                    sink(raw.decode("utf-8", "replace").rstrip("\r\n"), stream)

        thread = threading.Thread(target=read, daemon=True, name=f"celestra-{stream}")
        thread.start()
        return thread

    @staticmethod
    def _kill_group(process: subprocess.Popen[bytes]) -> None:
        for sig, wait in ((signal.SIGTERM, KILL_GRACE), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                return
            try:
                process.wait(wait)
                # The leader is gone; children in its group may linger: make sure of them too.
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            except subprocess.TimeoutExpired:
                continue
