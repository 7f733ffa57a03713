"""jq programs run in a child process, so that one that never ends or fills memory cannot take the worker with it.

libjq runs a program to its end in C: `repeat(1)`, `[range(1e10)]` or `def f: f; f` cannot be interrupted from the
thread that called it. Each thread that renders (in a Celery pool process, the server's or the embedded runtime's
threads) keeps one small child (`python -c`, importing only jq) that reads a program and its input per line; past
the rendering's deadline the child is killed and the next call starts a new one. The child's address space is
capped, so a program that allocates without end dies alone, and so is its CPU time per request, so that it does not
outlive a parent killed mid-program. A round trip costs ~0.1 ms; compiled programs are cached in the child.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import threading
import time
import weakref
from typing import Any

from app.templating import budget

MEMORY_BYTES = 1 << 30  # the child's address space: what one jq call may use before it dies on its own

_CHILD = """
import functools, json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[1]), int(sys.argv[1])))
import jq
compiled = functools.lru_cache(maxsize=256)(jq.compile)
for line in sys.stdin:
    request = json.loads(line)
    # The kernel ends this process (SIGXCPU) once the request has had its seconds of CPU: the parent kills it at
    # the deadline, but if the parent is gone (SIGKILL, OOM) nobody would, and an orphan must not spin for ever.
    used = resource.getrusage(resource.RUSAGE_SELF)
    allowed = int(used.ru_utime + used.ru_stime + request["seconds"]) + 2
    resource.setrlimit(resource.RLIMIT_CPU, (allowed, resource.RLIM_INFINITY))
    try:
        reply = {"results": list(compiled(request["program"]).input_value(request["input"]).all())}
    except MemoryError:
        reply = {"error": "the jq program ran out of memory"}
    except Exception as exc:
        reply = {"error": str(exc)}
    sys.stdout.write(json.dumps(reply, ensure_ascii=False) + "\\n")
    sys.stdout.flush()
"""


def _close(process: subprocess.Popen[bytes], owner: int) -> None:
    if owner != os.getpid():
        return  # a forked copy: the child is the parent's
    for pipe in (process.stdin, process.stdout):
        if pipe is not None:
            pipe.close()
    process.kill()
    process.wait()


class JqError(Exception):
    """The program did not compile, failed, ran out of time or memory; the message says which."""


class _Child:
    """One thread's jq child: each thread has its own, so a slow program holds up only its own rendering."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.owner = 0  # the pid that started it: after a fork the child belongs to the parent, not to us

    def _ensure(self) -> subprocess.Popen[bytes]:
        if self.process is None or self.owner != os.getpid() or self.process.poll() is not None:
            command = [sys.executable, "-I", "-c", _CHILD, str(MEMORY_BYTES)]
            self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={})
            self.owner = os.getpid()
            # When this thread ends and its _Child is collected, the child must go too: Popen's own finalizer
            # keeps a running child's pipes open, so the child would wait on its stdin for ever.
            weakref.finalize(self, _close, self.process, self.owner)
        return self.process

    def _stop(self) -> None:
        if self.process is not None and self.owner == os.getpid():
            self.process.kill()
            self.process.wait()
        self.process = None

    def run(self, program: str, data: Any, left: float, seconds: float, max_bytes: int) -> list[Any]:
        request = json.dumps({"program": program, "input": data, "seconds": seconds},
                             ensure_ascii=False).encode() + b"\n"
        process = self._ensure()
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(request)
            process.stdin.flush()
            line = self._read_line(process, time.monotonic() + left, max_bytes, seconds)
        except BaseException:
            self._stop()  # a half-read reply or a stuck program: nothing of this child can be trusted
            raise
        reply = json.loads(line)
        if "error" in reply:
            raise JqError(reply["error"])
        return list(reply["results"])

    def _read_line(self, process: subprocess.Popen[bytes], deadline: float, max_bytes: int,
                   seconds: float) -> bytes:
        assert process.stdout is not None
        fd = process.stdout.fileno()
        chunks: list[bytes] = []
        size = 0
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    raise JqError(f"the jq program ran for more than {seconds:g} s "
                                  "(limits.template_seconds, CELESTRA_LIMITS__TEMPLATE_SECONDS)")
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    raise JqError("the jq program ran out of memory")  # the child died under its memory cap
                chunks.append(chunk)
                size += len(chunk)
                if chunk.endswith(b"\n"):
                    return b"".join(chunks)
                if size > max_bytes:
                    raise budget.too_long(size)


_children = threading.local()  # a thread that ends drops its _Child, whose finalizer ends the child


def _forget_children() -> None:
    """In a forked process: the children are the parent's; this process starts its own when it needs one."""
    global _children
    _children = threading.local()


os.register_at_fork(after_in_child=_forget_children)


def run(program: str, data: Any) -> list[Any]:
    """All results of `program` on `data`, within the current rendering's budget (10 s and 10 MB outside one)."""
    child = getattr(_children, "child", None)
    if child is None:
        child = _children.child = _Child()
    left, seconds, chars = budget.remaining()
    return child.run(program, data, left, seconds, chars * 4 + 1024)
