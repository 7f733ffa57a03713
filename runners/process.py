"""Process runner: the command runs as a local process group in the worker's host (Kestra's default runner)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from typing import IO

from runners.base import CommandSpec, LogSink, RunControl, RunnerError, RunResult, Stream, TaskRunner, collect_outputs

KILL_GRACE = 1.0  # seconds between SIGTERM and SIGKILL


class ProcessRunner(TaskRunner):
    def run(self, spec: CommandSpec, sink: LogSink, control: RunControl) -> RunResult:
        (spec.working_dir / spec.output_dir).mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **spec.env}
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
        timed_out = killed = False
        while process.poll() is None:
            if control.kill.wait(0.05):
                killed = True
            elif deadline is not None and time.monotonic() >= deadline:
                timed_out = True
            if killed or timed_out:
                self._kill_group(process)
                break
        process.wait()
        for reader in readers:
            reader.join()  # every line is in the sink before we return (no line lost at the end)
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
