"""Process runner: the command runs as a local process group in the worker's host (Kestra's default runner).

The group dies with the worker process that started it (a SIGKILL, the OOM killer): a task run resent after its
worker died must not find the first attempt's script still running (side effects twice).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import IO

from runners.base import CommandSpec, LogSink, RunControl, RunnerError, RunResult, Stream, TaskRunner, collect_outputs

KILL_GRACE = 1.0  # seconds between SIGTERM and SIGKILL
POLL = 0.05  # seconds between checks for a kill request or the timeout
READER_GRACE = 5.0  # seconds to drain the pipes once the process group is gone

# The guard of one run: a shell outside the command's group, reading a pipe whose write end only the worker keeps
# (as its stdin: dash redirects no descriptor above 9). The command is started through PRELUDE with that write end
# as its stdin: it writes its group id there, drops the pipe and execs the command, so the pipe is never without a
# writer before the guard knows the group. End-of-file means the worker process is gone, whichever way it died, and
# the group goes with it. A shell costs a millisecond and a megabyte, a Python interpreter twenty of each.
GUARD_SCRIPT = 'read -r group || exit 0; while read -r _; do :; done; kill -s KILL -- "-$group"'
PRELUDE = 'echo "$$" >&0 && exec 0</dev/null && exec "$@"'


class ProcessRunner(TaskRunner):
    def run(self, spec: CommandSpec, sink: LogSink, control: RunControl) -> RunResult:
        (spec.working_dir / spec.output_dir).mkdir(parents=True, exist_ok=True)
        # A clean environment: the allowed part of the worker's, then the task's own (never the worker's secrets).
        env = {**self.policy.inherited(os.environ), **spec.env}
        _check_executable(spec.command[0], env.get("PATH", os.defpath), spec.working_dir)
        with _Guard() as guard:
            try:
                # No preexec_fn: it would make subprocess fork() the whole worker (~50 ms per GB of its memory)
                # instead of vfork(); the prelude does in the child what the guard needs.
                process = subprocess.Popen(
                    ["/bin/sh", "-c", PRELUDE, "celestra-process", *spec.command], cwd=spec.working_dir, env=env,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=guard.write_end,
                    start_new_session=True,  # its own process group: we kill all of it
                )
            except OSError as exc:
                raise RunnerError(f"Cannot start {spec.command[0]!r}: {exc.strerror}") from exc
            try:
                return self._follow(process, spec, sink, control)
            except BaseException:  # run() gives up on it (on_external_id failed, ...): it must not run on alone
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                raise

    def _follow(self, process: subprocess.Popen[bytes], spec: CommandSpec, sink: LogSink,
                control: RunControl) -> RunResult:
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
        try:
            process.wait()
        finally:
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


def _check_executable(program: str, path: str, cwd: Path) -> None:
    """The error the command would give, before the prelude runs it (the shell would only say "not found").
    Relative PATH entries are the working directory's, as for the shell. A file without a `#!` line runs as a shell
    script (POSIX `exec` in the prelude), where a direct exec would refuse it."""
    if os.sep in program:
        target = cwd / program
        if not target.is_file():
            raise RunnerError(f"Cannot start {program!r}: No such file or directory")
        if not os.access(target, os.X_OK):
            raise RunnerError(f"Cannot start {program!r}: Permission denied")
    elif shutil.which(program, path=os.pathsep.join(str(cwd / entry) for entry in path.split(os.pathsep))) is None:
        raise RunnerError(f"Cannot start {program!r}: No such file or directory")


class _Guard:
    """Kills the command's process group when the worker process that started it dies (see GUARD_SCRIPT).

    Why a pipe rather than PR_SET_PDEATHSIG: that signal reaches only the direct child (the script's `sleep 100 &`
    would live on), it fires when the *thread* that forked exits, not the process, and setting it needs code in the
    child between fork and exec (a preexec_fn, which costs a full fork of the worker). The kernel closes the pipe
    when the process dies, from whichever thread the runner was called, on any POSIX system.
    A limit: a process forked from the worker without exec (multiprocessing's fork) holds a copy of the write end,
    so the guard acts only once that copy is gone too; subprocesses never keep it (close-on-exec).
    """

    def __enter__(self) -> _Guard:
        # Both ends are close-on-exec: no program started meanwhile by another thread inherits the write end. The
        # worker keeps the read end open as well, so the prelude's write can never meet a closed pipe.
        self.read_end, self.write_end = os.pipe()
        try:
            self.shell = subprocess.Popen(
                ["/bin/sh", "-c", GUARD_SCRIPT], stdin=self.read_end, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, cwd="/", env={},
                start_new_session=True,  # out of the command's group and of the worker's terminal: only EOF stops it
            )
        except OSError as exc:
            self._close()
            raise RunnerError(f"Cannot start the process guard (/bin/sh): {exc.strerror}") from exc
        return self

    def __exit__(self, *exc_info: object) -> None:
        # run() has made sure the group is dead. The guard is killed before the pipe closes, so that it never
        # signals a group id that some new process may have taken since.
        self.shell.kill()
        self.shell.wait()
        self._close()

    def _close(self) -> None:
        os.close(self.write_end)
        os.close(self.read_end)
