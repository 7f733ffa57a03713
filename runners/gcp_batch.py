"""GCP Batch runner: the command runs as a one-task Google Cloud Batch job (Kestra's `ee.gcp.runner.Batch`).

The job has one container runnable (the task's image and command, its env), logs to Cloud Logging, and, when a
`bucket` is set, a GCS volume holding the working directory: the worker uploads it under a per-attempt prefix, the
container sees it at `container_workdir`, and output files come back from the same prefix after the job.
Logs are followed by polling Cloud Logging (`entries.list` on the job's uid, with a timestamp cursor) at
`completionCheckInterval`, the same tick that polls the job's state. The job id is derived from the attempt's name,
so a worker that restarts finds the job instead of creating a duplicate (`resume`), and the job name is saved as the
external id as soon as the job exists. Kill and timeout delete the job (cancel it with `delete: false`).

Endpoints can be redirected for emulators and tests (operator settings, not flow properties):
CELESTRA_GCP_BATCH_ENDPOINT, CELESTRA_GCP_LOGGING_ENDPOINT and CELESTRA_GCP_STORAGE_ENDPOINT (or the storage
client's own STORAGE_EMULATOR_HOST), and CELESTRA_GCP_IAM_ENDPOINT for impersonation's generateAccessToken. A
redirected client uses anonymous credentials unless the flow gives `serviceAccount` or
`impersonatedServiceAccount`: those are always used, so what they do can be seen on an emulator too.
"""

from __future__ import annotations

import datetime
import fnmatch
import hashlib
import json
import logging
import os
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, ClassVar

import google.cloud.storage as storage
from google.api_core import exceptions as gexc
from google.api_core import retry as gretry
from google.api_core.future import polling
from google.auth.credentials import AnonymousCredentials, Credentials
from google.auth.exceptions import GoogleAuthError
from google.cloud import batch_v1
from google.cloud import logging as gcp_logging
from pydantic import BaseModel, ConfigDict, Field
from requests import RequestException

from runners.base import CommandSpec, LogSink, RunControl, RunnerError, RunResult, TaskRunner, collect_outputs
from runners.gcp_logs import LogTail

log = logging.getLogger("celestra.runners.gcp_batch")
MOUNT_PATH = "/mnt/disks/share"  # where the GCS volume is mounted on the VM (as Kestra does)
WORKDIR = "/celestra/work"  # where the container sees it
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
MAX_RUN_DURATION_EXIT = 50005  # Batch's reserved exit code: the task ran past maxRunDuration
NO_EXIT_CODE = -1  # killed or timed out: the job was stopped, no exit code exists
CALL_TIMEOUT = 30.0  # seconds per API call
# Transient errors are retried for a bounded time; the first call of a run fails fast (unreachable endpoint).
RETRY = gretry.Retry(initial=0.2, maximum=2.0, multiplier=2, timeout=20.0,
                     predicate=gretry.if_exception_type(gexc.ServiceUnavailable, gexc.TooManyRequests,
                                                        gexc.InternalServerError))
OPERATION_POLLING = polling.DEFAULT_POLLING.with_delay(initial=0.1, maximum=1.0).with_timeout(60.0)
STORAGE_RETRY = storage.retry.DEFAULT_RETRY.with_timeout(20.0)
State = batch_v1.JobStatus.State
TERMINAL = {State.SUCCEEDED, State.FAILED, State.CANCELLED, State.DELETION_IN_PROGRESS}
STOPPED = {State.CANCELLED, State.DELETION_IN_PROGRESS, State.CANCELLATION_IN_PROGRESS}  # by someone: a kill


class ComputeResource(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cpu: str | int | None = None  # milliCPU, e.g. 2000 = 2 vCPU
    memory: str | int | None = None  # "2GB", "512MiB" or a number of MiB
    bootDisk: str | int | None = None


class NetworkInterface(BaseModel):
    model_config = ConfigDict(extra="forbid")
    network: str
    subnetwork: str | None = None


class GcpBatchOptions(BaseModel):
    """Kestra's GCP Batch task-runner properties."""

    model_config = ConfigDict(extra="forbid")
    projectId: str | None = None
    region: str | None = None
    serviceAccount: str | None = None  # a service account key, as JSON text
    impersonatedServiceAccount: str | None = None
    scopes: list[str] = Field(default_factory=lambda: [CLOUD_PLATFORM])
    bucket: str | None = None  # "bucket" or "bucket/folder"
    machineType: str = "e2-medium"
    reservation: str | None = None
    computeResource: ComputeResource | None = None
    networkInterfaces: list[NetworkInterface] | None = None
    entryPoint: list[str] | None = None
    waitUntilCompletion: datetime.timedelta = datetime.timedelta(hours=1)
    completionCheckInterval: datetime.timedelta = datetime.timedelta(seconds=5)
    waitForLogInterval: datetime.timedelta = datetime.timedelta(seconds=5)
    delete: bool = True
    resume: bool = True


@dataclass
class _Clients:
    batch: batch_v1.BatchServiceClient
    logging: gcp_logging.Client
    storage: storage.Client | None


class GcpBatchRunner(TaskRunner):
    supports_resume: ClassVar[bool] = True
    container_workdir: ClassVar[str] = WORKDIR

    def __init__(self, **properties: Any):
        try:
            self.options = GcpBatchOptions(**properties)
        except Exception as exc:
            raise RunnerError(f"Invalid GCP Batch task runner properties: {exc}") from exc
        missing = [name for name in ("projectId", "region") if not getattr(self.options, name)]
        if missing:
            raise RunnerError(f"GCP Batch task runner: {' and '.join(missing)} must be set")
        self.project, self.region = str(self.options.projectId), str(self.options.region)

    # -- the contract ---------------------------------------------------------------------------------------
    def run(self, spec: CommandSpec, sink: LogSink, control: RunControl) -> RunResult:
        self._check_files(spec)
        if control.kill.is_set():  # nothing was created yet: nothing to stop
            return RunResult(exit_code=NO_EXIT_CODE, killed=True)
        clients = self._clients()
        # One job id per attempt, so a restarted worker finds its job; `resume: false` always starts a new one.
        attempt = spec.name if self.options.resume else f"{spec.name}-{uuid.uuid4().hex[:8]}"
        name = f"projects/{self.project}/locations/{self.region}/jobs/{job_id_for(attempt)}"
        job = self._existing(clients, name) if self.options.resume else None
        if job is not None:  # left by a worker that died: follow it rather than start a duplicate
            log.warning("Batch job %s of this attempt already exists: following it", name)
        else:
            if self.options.bucket:
                self._upload(clients, spec, name)
            try:
                job = self._create(clients, spec, name)
            except RunnerError:
                self._cleanup(clients, name, job_deleted=True)  # the uploaded prefix
                raise
        control.on_external_id(job.name)
        return self._follow(clients, job, spec, sink, control)

    def resume(self, external_id: str, spec: CommandSpec, sink: LogSink, control: RunControl) -> RunResult:
        clients = self._clients()
        job = self._existing(clients, external_id)
        if job is None:
            raise RunnerError(f"Batch job {external_id} no longer exists")
        return self._follow(clients, job, spec, sink, control)

    # -- steps ----------------------------------------------------------------------------------------------
    def _check_files(self, spec: CommandSpec) -> None:
        inputs = any(p.is_file() for p in spec.working_dir.rglob("*")) if spec.working_dir.exists() else False
        if not self.options.bucket and (inputs or spec.output_files):
            what = "input files" if inputs else "outputFiles"
            raise RunnerError(f"GCP Batch task runner: set `bucket` to use {what} (they travel through GCS)")

    def _clients(self) -> _Clients:
        """REST clients (one code path for GCP and emulators); a redirected one uses anonymous credentials."""
        urls = {kind: os.environ.get(f"CELESTRA_GCP_{kind.upper()}_ENDPOINT") for kind in ("batch", "logging")}
        urls["storage"] = os.environ.get("CELESTRA_GCP_STORAGE_ENDPOINT") or os.environ.get("STORAGE_EMULATOR_HOST")
        used = ["batch", "logging", "storage"] if self.options.bucket else ["batch", "logging"]
        explicit = bool(self.options.serviceAccount or self.options.impersonatedServiceAccount)
        real = self._credentials() if explicit or not all(urls[kind] for kind in used) else None

        def where(kind: str) -> dict[str, Any]:
            url = urls[kind]
            return {"credentials": AnonymousCredentials() if url and not explicit else real,
                    "client_options": {"api_endpoint": url} if url else None}

        try:
            batch = batch_v1.BatchServiceClient(transport="rest", **where("batch"))
            logs = gcp_logging.Client(project=self.project, _use_grpc=False, **where("logging"))
            gcs = storage.Client(project=self.project, **where("storage")) if self.options.bucket else None
        except Exception as exc:
            raise RunnerError(f"Cannot create the GCP clients: {exc}") from exc
        return _Clients(batch, logs, gcs)

    def _credentials(self) -> Credentials:
        import google.auth
        from google.auth import impersonated_credentials
        from google.oauth2 import service_account

        opts = self.options
        try:
            if opts.serviceAccount:
                creds: Credentials = service_account.Credentials.from_service_account_info(
                    json.loads(opts.serviceAccount), scopes=opts.scopes)
            else:
                creds, _ = google.auth.default(scopes=opts.scopes)
            if opts.impersonatedServiceAccount:
                target = opts.impersonatedServiceAccount
                iam = os.environ.get("CELESTRA_GCP_IAM_ENDPOINT", "").rstrip("/")
                override = f"{iam}/v1/projects/-/serviceAccounts/{target}:generateAccessToken" if iam else None
                creds = impersonated_credentials.Credentials(
                    source_credentials=creds, target_principal=target, target_scopes=opts.scopes,
                    iam_endpoint_override=override)
        except Exception as exc:
            raise RunnerError(f"GCP credentials: {exc}") from exc
        return creds

    def _existing(self, clients: _Clients, name: str) -> batch_v1.Job | None:
        try:  # the run's first call: no retry, so an unreachable endpoint fails at once
            return clients.batch.get_job(name=name, retry=None, timeout=CALL_TIMEOUT)
        except gexc.NotFound:
            return None
        except (gexc.Unauthorized, gexc.Forbidden, GoogleAuthError) as exc:
            raise RunnerError(f"GCP Batch refused the credentials for {name}: {exc}") from exc
        except (gexc.GoogleAPIError, RequestException) as exc:
            raise RunnerError(f"Cannot reach GCP Batch for {name}: {exc}") from exc

    def _create(self, clients: _Clients, spec: CommandSpec, name: str) -> batch_v1.Job:
        parent, _, job_id = name.rpartition("/jobs/")
        try:
            return clients.batch.create_job(parent=parent, job=self._job(spec, name), job_id=job_id, retry=None,
                                            timeout=CALL_TIMEOUT)
        except gexc.AlreadyExists:  # another worker created it between our get and create: follow that one
            return clients.batch.get_job(name=name, retry=RETRY, timeout=CALL_TIMEOUT)
        except (gexc.GoogleAPIError, RequestException, GoogleAuthError) as exc:
            raise RunnerError(f"GCP Batch did not create job {name}: {exc}") from exc

    def _job(self, spec: CommandSpec, name: str) -> batch_v1.Job:
        opts = self.options
        container = batch_v1.Runnable.Container(
            image_uri=spec.container_image or "ubuntu", commands=spec.command,
            options=f"--workdir {WORKDIR}")  # run in the working dir, as the other runners do
        if opts.entryPoint is not None:
            container.entrypoint = " ".join(opts.entryPoint)
        if opts.bucket:
            container.volumes = [f"{MOUNT_PATH}:{WORKDIR}"]
        # proto-plus copies a message given to a constructor: `container` is complete from here on
        env = dict(spec.env)
        if opts.bucket:  # Kestra's BUCKET_PATH: the task run's folder in the bucket
            env["BUCKET_PATH"] = f"gs://{_remote_path(opts.bucket, name)}"
        max_run = spec.timeout or opts.waitUntilCompletion.total_seconds()
        task = batch_v1.TaskSpec(
            runnables=[batch_v1.Runnable(container=container, environment=batch_v1.Environment(variables=env))],
            max_run_duration=datetime.timedelta(seconds=max(1, int(max_run + 0.999))), max_retry_count=0)
        if opts.bucket:
            task.volumes = [batch_v1.Volume(gcs=batch_v1.GCS(remote_path=_remote_path(opts.bucket, name)),
                                            mount_path=MOUNT_PATH)]
        if opts.computeResource:
            res = opts.computeResource
            task.compute_resource = batch_v1.ComputeResource(
                cpu_milli=int(res.cpu or 0), memory_mib=mebibytes(res.memory), boot_disk_mib=mebibytes(res.bootDisk))
        policy = batch_v1.AllocationPolicy.InstancePolicy(machine_type=opts.machineType)
        if opts.reservation:
            policy.reservation = opts.reservation
        allocation = batch_v1.AllocationPolicy(instances=[batch_v1.AllocationPolicy.InstancePolicyOrTemplate(
            policy=policy)])
        if opts.networkInterfaces:
            allocation.network = batch_v1.AllocationPolicy.NetworkPolicy(network_interfaces=[
                batch_v1.AllocationPolicy.NetworkInterface(network=n.network, subnetwork=n.subnetwork or "")
                for n in opts.networkInterfaces])
        return batch_v1.Job(
            task_groups=[batch_v1.TaskGroup(task_count=1, task_spec=task)], allocation_policy=allocation,
            labels=gcp_labels(spec.labels),
            logs_policy=batch_v1.LogsPolicy(destination=batch_v1.LogsPolicy.Destination.CLOUD_LOGGING))

    def _follow(self, clients: _Clients, job: batch_v1.Job, spec: CommandSpec, sink: LogSink,
                control: RunControl) -> RunResult:
        """Poll state and logs until the job ends (deleting it on kill or timeout), then bring the files back."""
        tail = LogTail(clients.logging, self.project, job.uid, job.create_time)
        interval = self.options.completionCheckInterval.total_seconds()
        deadline = time.monotonic() + (spec.timeout or self.options.waitUntilCompletion.total_seconds())
        killed = timed_out = stopped = False
        try:
            while job.status.state not in TERMINAL:
                tail.poll(sink)
                remaining = deadline - time.monotonic()
                if control.kill.wait(max(0.0, min(interval, remaining))):
                    killed = True
                elif time.monotonic() >= deadline:
                    timed_out = True
                if killed or timed_out:
                    stopped = self._stop(clients, job.name)
                    break
                try:
                    job = clients.batch.get_job(name=job.name, retry=RETRY, timeout=CALL_TIMEOUT)
                except gexc.NotFound:  # deleted by someone else: treat as a kill
                    killed = stopped = True
                    break
            # Everything listed so far; after a normal end, keep listing for waitForLogInterval (ingestion delay).
            until = time.monotonic() + (0 if killed or timed_out else self.options.waitForLogInterval.total_seconds())
            while tail.poll(sink) >= 0 and time.monotonic() < until:
                time.sleep(min(0.5, max(0.0, until - time.monotonic())))
            exit_code = NO_EXIT_CODE if killed or timed_out or job.status.state in STOPPED else _exit_code(job)
            timed_out = timed_out or exit_code == MAX_RUN_DURATION_EXIT  # Batch stopped it at maxRunDuration
            if timed_out and not spec.timeout:  # as in Kestra: waitUntilCompletion bounds a run without a timeout
                raise RunnerError(f"Batch job {job.name} did not complete within waitUntilCompletion "
                                  f"({self.options.waitUntilCompletion.total_seconds():g} s): it was stopped")
            if killed or timed_out or job.status.state in STOPPED:
                return RunResult(exit_code=exit_code, external_id=job.name, killed=not timed_out,
                                 timed_out=timed_out)
            if clients.storage is not None:
                self._download(clients, spec, job.name)
            return RunResult(exit_code=exit_code, external_id=job.name, output_files=collect_outputs(spec))
        except (gexc.GoogleAPIError, RequestException, GoogleAuthError) as exc:
            raise RunnerError(f"GCP error while following Batch job {job.name}: {exc}") from exc
        finally:
            self._cleanup(clients, job.name, job_deleted=stopped and self.options.delete)

    def _stop(self, clients: _Clients, name: str) -> bool:
        """Delete (or, with delete: false, cancel) the job and wait until it is gone: nothing runs after run()."""
        try:
            if self.options.delete:
                request = batch_v1.DeleteJobRequest(name=name, reason="Celestra task killed or timed out")
                operation = clients.batch.delete_job(request=request, retry=RETRY, timeout=CALL_TIMEOUT)
            else:
                operation = clients.batch.cancel_job(name=name, retry=RETRY, timeout=CALL_TIMEOUT)
            operation.result(timeout=60, polling=OPERATION_POLLING)
        except gexc.NotFound:
            return True
        except Exception as exc:  # the run still ends; the job may need a manual delete
            log.warning("could not stop Batch job %s: %r", name, exc)
            return False
        return True

    def _cleanup(self, clients: _Clients, name: str, job_deleted: bool) -> None:
        """With `delete`: the job (a finished one: no need to wait for the operation) and the attempt's prefix."""
        try:
            if self.options.delete and not job_deleted:
                clients.batch.delete_job(name=name, retry=RETRY, timeout=CALL_TIMEOUT)
            if self.options.delete and clients.storage is not None and self.options.bucket:
                bucket, prefix = _bucket_and_prefix(self.options.bucket, name)
                for blob in list(clients.storage.list_blobs(bucket, prefix=prefix, retry=STORAGE_RETRY)):
                    blob.delete(retry=STORAGE_RETRY)
        except gexc.NotFound:
            pass
        except Exception as exc:  # the task's result stands; what is left costs storage, not compute
            log.warning("cleanup of Batch job %s incomplete: %r", name, exc)

    # -- files ----------------------------------------------------------------------------------------------
    def _upload(self, clients: _Clients, spec: CommandSpec, name: str) -> None:
        """The working dir under the job's prefix; folders as `name/` placeholders so gcsfuse shows them."""
        assert clients.storage is not None and self.options.bucket
        (spec.working_dir / spec.output_dir).mkdir(parents=True, exist_ok=True)
        bucket_name, prefix = _bucket_and_prefix(self.options.bucket, name)
        bucket = clients.storage.bucket(bucket_name)
        try:
            bucket.blob(prefix).upload_from_string(b"", retry=None, timeout=CALL_TIMEOUT)  # fails fast if unreachable
            for path in sorted(spec.working_dir.rglob("*")):
                rel = path.relative_to(spec.working_dir).as_posix()
                if path.is_dir():
                    bucket.blob(f"{prefix}{rel}/").upload_from_string(b"", retry=STORAGE_RETRY)
                elif path.is_file():
                    bucket.blob(prefix + rel).upload_from_filename(str(path), retry=STORAGE_RETRY)
        except (gexc.GoogleAPIError, RequestException, GoogleAuthError) as exc:
            raise RunnerError(f"Cannot upload the working directory to gs://{bucket_name}/{prefix}: {exc}") from exc

    def _download(self, clients: _Clients, spec: CommandSpec, name: str) -> None:
        """Files matching the output globs, and everything under the output dir, back into the working dir."""
        assert clients.storage is not None and self.options.bucket
        bucket_name, prefix = _bucket_and_prefix(self.options.bucket, name)
        for blob in clients.storage.list_blobs(bucket_name, prefix=prefix, retry=STORAGE_RETRY):
            rel = blob.name[len(prefix):]
            if not rel or rel.endswith("/") or ".." in PurePosixPath(rel).parts:
                continue
            if rel.startswith(spec.output_dir.rstrip("/") + "/") or any(glob_match(rel, p) for p in spec.output_files):
                target = spec.working_dir / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                blob.download_to_filename(str(target), retry=STORAGE_RETRY)


def _exit_code(job: batch_v1.Job) -> int:
    if job.status.state == batch_v1.JobStatus.State.SUCCEEDED:
        return 0
    codes = [e.task_execution.exit_code for e in job.status.status_events if "task_execution" in e]
    if codes:
        return int(codes[-1])
    reasons = "; ".join(e.description for e in job.status.status_events if e.description) or "no reason given"
    raise RunnerError(f"Batch job {job.name} failed before its command ran: {reasons}")


def job_id_for(name: str) -> str:
    """A valid Batch job id (^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$), stable for one attempt's name."""
    text = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    if not text or not text[0].isalpha():
        text = "celestra-" + text
    if len(text) > 63:
        text = text[:54].rstrip("-") + "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return text.rstrip("-")


def gcp_labels(labels: dict[str, str]) -> dict[str, str]:
    """GCP labels allow lowercase letters, digits, `_` and `-` (keys start with a letter), up to 63 chars."""
    def clean(text: str) -> str:
        return re.sub(r"[^a-z0-9_-]", "-", text.lower())[:63]

    return {clean(key): clean(value) for key, value in labels.items() if key and key[0].isalpha()}


def mebibytes(size: str | int | None) -> int:
    """"2GB", "512MiB", "1.5 GiB" (1024-based, as Kestra's sizes) or a plain number of MiB."""
    if size is None:
        return 0
    match = re.fullmatch(r"\s*([\d.]+)\s*([KMGT]?)(?:I?B)?\s*", str(size).upper())
    if match is None:
        raise RunnerError(f"Invalid size {size!r}: use e.g. 512MB or 2GB")
    number, unit = float(match.group(1)), match.group(2) or "M"
    return int(number * 1024 ** "KMGT".index(unit) / 1024)


def glob_match(path: str, pattern: str) -> bool:
    """Whether `path` (relative, `/`-separated) matches `pattern` as Path.glob would (`**` spans folders)."""
    def match(parts: list[str], pats: list[str]) -> bool:
        if not pats:
            return not parts
        if pats[0] == "**":
            return any(match(parts[i:], pats[1:]) for i in range(len(parts) + 1))
        return bool(parts) and fnmatch.fnmatchcase(parts[0], pats[0]) and match(parts[1:], pats[1:])

    return match(path.split("/"), [p for p in pattern.strip("/").split("/") if p not in ("", ".")])


def _bucket_and_prefix(bucket: str, job_name: str) -> tuple[str, str]:
    """`bucket[/folder]` and the job's prefix in it (one per attempt, derived from the job id for resume)."""
    name, _, folder = bucket.partition("/")
    job_id = job_name.rpartition("/")[2]
    return name, "/".join(p for p in (folder.strip("/"), "celestra", job_id) if p) + "/"


def _remote_path(bucket: str, job_name: str) -> str:
    name, prefix = _bucket_and_prefix(bucket, job_name)
    return f"{name}/{prefix.rstrip('/')}"


__all__ = ["GcpBatchRunner", "GcpBatchOptions", "LogTail", "job_id_for", "glob_match", "mebibytes"]
