"""Following an AWS Batch job's output in CloudWatch Logs (the runner in runners/aws_batch.py polls it)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from runners.base import LogSink

LOG_GROUP = "/aws/batch/job"


class CloudWatchLines:
    """A log stream, read forward from its head: the forward token makes each event delivered exactly once."""

    def __init__(self, client: Any, sink: LogSink):
        self.client, self.sink = client, sink
        self.stream: str | None = None
        self.token: str | None = None

    def read(self) -> None:
        while self.stream:
            kwargs: dict[str, Any] = {"logGroupName": LOG_GROUP, "logStreamName": self.stream, "startFromHead": True}
            if self.token:
                kwargs["nextToken"] = self.token
            try:
                page = self.client.get_log_events(**kwargs)
            except ClientError as exc:  # the stream does not exist yet, or we were throttled: next poll
                if exc.response.get("Error", {}).get("Code") in ("ResourceNotFoundException", "ThrottlingException"):
                    return
                raise
            for event in page.get("events", []):
                self.sink(event["message"].rstrip("\r\n"), "stdout")
            token = page.get("nextForwardToken")
            if not page.get("events") or token == self.token:  # the end of the stream, for now
                self.token = token or self.token
                return
            self.token = token


def log_stream(job: dict[str, Any]) -> str | None:
    """The job's CloudWatch stream, once Batch names it (the job runs)."""
    stream = job.get("container", {}).get("logStreamName")
    if not stream and job.get("attempts"):
        stream = job["attempts"][-1].get("container", {}).get("logStreamName")
    return stream or None
