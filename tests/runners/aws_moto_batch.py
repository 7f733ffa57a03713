"""Make moto's Batch jobs write their CloudWatch log events while they run, as real Batch (awslogs driver) does.

moto 5.2.5 runs a job's container for real but puts the container's whole output into the job's log stream
(/aws/batch/job, `<job definition>/default/<job id>`) only after the container exited, and names the stream in
DescribeJobs only then. Real AWS names the stream once the job runs and its lines appear within seconds. Without
this a test cannot tell a runner that follows the stream live from one that reads it once at the end.

`live_cloudwatch_logs()` wraps moto's `Job.run` (in this process: ThreadedMotoServer): a thread follows the job's
container with the Docker SDK and puts each line into the stream as it is written, naming the stream as soon as
the container exists; moto's own put at the end then only adds the events the thread had not put yet. The events
(timestamps, messages as moto strips them) are the same as without it; only *when* they appear changes.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

from moto.batch import models as batch_models
from moto.core.parse import default_timestamp_parser
from moto.core.utils import unix_time_millis

LOG_GROUP = "/aws/batch/job"


class _Tail(threading.Thread):
    def __init__(self, job: Any):
        super().__init__(daemon=True, name=f"moto-batch-tail-{job.job_id}")
        self.job, self.backend = job, job._log_backend
        self.put: collections.Counter[tuple[int, str]] = collections.Counter()  # what this thread delivered
        self.lock = threading.Lock()

    def run(self) -> None:
        job, name = self.job, f"{self.job.job_name}-{self.job.job_id.replace(':', '-')}"
        container = None
        while container is None and not job.job_stopped:
            with contextlib.suppress(Exception):
                container = job.docker_client.containers.get(name)
            time.sleep(0.05)
        if container is None:
            return
        stream = job._stream_name
        self.backend.ensure_log_group(LOG_GROUP)
        self.backend.ensure_log_stream(LOG_GROUP, stream)
        job.log_stream_name = stream  # DescribeJobs names the stream from now on, as on real AWS
        if job.latest_attempt:
            job.latest_attempt["container"]["logStreamName"] = stream
        rest = b""
        with contextlib.suppress(Exception):  # the container is removed: the stream just ends
            for chunk in container.logs(stdout=True, stderr=True, stream=True, follow=True, timestamps=True):
                *lines, rest = (rest + chunk).split(b"\n")
                self._put(stream, lines)
        self._put(stream, [rest] if rest else [])

    def _put(self, stream: str, lines: list[bytes]) -> None:
        keys: list[tuple[int, str]] = []
        events: list[dict[str, Any]] = []
        for raw in lines:
            stamp, _, message = raw.decode("utf-8", "replace").partition(" ")
            millis = unix_time_millis(default_timestamp_parser(stamp))
            events.append({"timestamp": millis, "message": message.strip()})
            keys.append((int(millis), message.strip()))
        if events:
            with self.lock:
                self.backend.put_log_events(LOG_GROUP, stream, events)
                self.put.update(keys)


class _OnlyWhatTheTailMissed:
    """moto's logs backend for one job: its end-of-job put skips the events the tail thread already put."""

    def __init__(self, backend: Any, tail: _Tail):
        self._backend, self._tail = backend, tail

    def put_log_events(self, group: str, stream: str, events: list[dict[str, Any]]) -> Any:
        self._tail.join(10)  # the container ended: the thread is delivering its last lines
        with self._tail.lock:
            seen = collections.Counter(self._tail.put)
            missing = []
            for event in events:
                key = (int(event["timestamp"]), event["message"])
                if seen[key] > 0:
                    seen[key] -= 1
                else:
                    missing.append(event)
            return self._backend.put_log_events(group, stream, missing) if missing else None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


@contextlib.contextmanager
def live_cloudwatch_logs() -> Iterator[None]:
    original = batch_models.Job.run

    def run(job: Any) -> None:
        tail = _Tail(job)
        job._log_backend = _OnlyWhatTheTailMissed(job._log_backend, tail)
        tail.start()
        original(job)

    batch_models.Job.run = run  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        batch_models.Job.run = original  # type: ignore[method-assign]
