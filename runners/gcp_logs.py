"""Following a GCP Batch job's output through Cloud Logging (the runner in runners/gcp_batch.py polls it)."""

from __future__ import annotations

import datetime
import json
import logging

from google.api_core import exceptions as gexc
from google.cloud import logging as gcp_logging
from requests import RequestException

from runners.base import LogSink, Stream

log = logging.getLogger("celestra.runners.gcp_batch")
LATE_LOGS = datetime.timedelta(seconds=10)  # re-read window: Cloud Logging may list an entry after newer ones


class LogTail:
    """Cloud Logging entries of one job, each given once to the sink, in timestamp order as far as listed.

    Each poll lists from a little before the newest timestamp seen (entries can be listed late) and skips the
    insertIds it already gave. Batch writes stdout as severity INFO and stderr as ERROR.
    """

    def __init__(self, client: gcp_logging.Client, project: str, job_uid: str, since: datetime.datetime | None):
        self.client, self.project = client, project
        self.filter = f'logName="projects/{project}/logs/batch_task_logs" AND labels.job_uid="{job_uid}"'
        start = since or datetime.datetime.now(datetime.UTC)
        self.newest = start.astimezone(datetime.UTC) - datetime.timedelta(seconds=1)
        self.seen: dict[str, datetime.datetime] = {}
        self.warned = False

    def poll(self, sink: LogSink) -> int:
        since = self.newest - LATE_LOGS
        query = f'{self.filter} AND timestamp>="{since.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}"'
        given = 0
        try:
            for entry in self.client.list_entries(resource_names=[f"projects/{self.project}"], filter_=query,
                                                  order_by=gcp_logging.ASCENDING, page_size=1000):
                if entry.insert_id in self.seen:
                    continue
                stamp = entry.timestamp or datetime.datetime.now(datetime.UTC)
                self.seen[entry.insert_id] = stamp
                self.newest = max(self.newest, stamp)
                payload = entry.payload
                text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
                stream: Stream = "stderr" if entry.severity in ("ERROR", "CRITICAL", "ALERT", "EMERGENCY") else "stdout"
                sink(text.rstrip("\n"), stream)
                given += 1
        except (gexc.GoogleAPIError, RequestException) as exc:  # a log hiccup must not fail the task
            if not self.warned:
                log.warning("cannot list Cloud Logging entries (%s); retrying at the next poll", exc)
                self.warned = True
            return given
        horizon = self.newest - LATE_LOGS
        self.seen = {key: stamp for key, stamp in self.seen.items() if stamp >= horizon}
        return given
