"""AWS Batch runner: the command runs as an AWS Batch job (ECS Fargate or EC2) of the task's image.

Design: one single-container job (`containerProperties`) per task run, from a job definition registered for that
run. Kestra's runner uses multi-container `ecsProperties` jobs with before/after sidecars; moto 5.2.5 only runs
`containerProperties` (and multinode) jobs, so this design is the one that runs on both real AWS and moto.
- The job's command is a small POSIX-sh bootstrap, then the task's argv. The bootstrap fetches the input files,
  creates the output dir, runs the argv in the working dir and sends the output files back, using only a shell,
  tar, base64 and whichever of curl, python3 or wget the image has: no aws-cli and no credentials in the job.
- Files (with `bucket`): the runner uploads the working dir as one tar under a per-task-run prefix and gives the
  job a presigned GET URL for it and a presigned POST form for the outputs (the whole working dir when output
  globs are set, else the output dir), sent as base64 because busybox wget posts text only. The runner extracts
  them into the local working dir, where `collect_outputs` finds them. Without `bucket`, files are refused.
- Logs: GetLogEvents on the job's CloudWatch stream (/aws/batch/job, named by DescribeJobs) with the forward
  token, while the job runs and once after: nothing twice, nothing lost. Batch keeps one stream per container,
  so stderr lines reach the sink as "stdout" (as with Kestra's runner).
- Kill and timeout: TerminateJob, a short wait for the job to stop, then cleanup: the job definition is
  deregistered and the run's S3 objects deleted (unless `delete: false`). As in Kestra, the run waits for the
  task's `timeout` when it has one, else for `waitUntilCompletion`; a job still running at that point is
  terminated (a timeout, or a failure naming waitUntilCompletion). SubmitJob also gets that wait + 60 s as Batch's
  own attempt timeout, so the job stops even if the worker dies.
- Without `jobQueueArn`, a queue `celestra-<compute environment name>` is created once and reused; it is never
  deleted (other task runs may be using it).
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import io
import logging
import re
import tarfile
import time
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from runners.aws_logs import CloudWatchLines, log_stream
from runners.base import CommandSpec, LogSink, RunControl, RunnerError, RunResult, TaskRunner, collect_outputs

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError as exc:  # runner_for turns this into an install hint
    raise ImportError(f"boto3 is required by the AWS Batch task runner: {exc}") from exc

log = logging.getLogger("celestra.runners.aws_batch")
WORKDIR = "/celestra/work"
TERMINAL = ("SUCCEEDED", "FAILED")
TICK = 0.1  # seconds between checks of the kill request and the deadline
LOG_POLL_MAX = 1.0  # seconds between CloudWatch reads while the job runs
KILL_WAIT = 10.0  # seconds to wait for a terminated job to stop (moto: < 1 s; ECS may take its stop timeout)
QUEUE_WAIT = 120.0  # seconds to wait for a created job queue to become VALID
# The job's command: a POSIX-sh bootstrap around the task's argv (see the script's header).
BOOTSTRAP = (resources.files("runners") / "aws_batch_bootstrap.sh").read_text().replace("__WORKDIR__", WORKDIR)


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cpu: str = "1"  # vCPU, as Batch's VCPU resource requirement ("0.25", "1", ...)
    memory: str = "2048"  # MiB


class Resources(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request: Request = Field(default_factory=Request)


class BatchOptions(BaseModel):
    """Kestra's AWS Batch task-runner properties."""

    model_config = ConfigDict(extra="forbid")
    accessKeyId: str | None = None
    secretKeyId: str | None = None
    sessionToken: str | None = None
    region: str | None = None
    endpointOverride: str | None = None
    stsRoleArn: str | None = None
    stsRoleExternalId: str | None = None
    stsRoleSessionName: str | None = None
    stsRoleSessionDuration: datetime.timedelta = datetime.timedelta(minutes=15)
    stsEndpointOverride: str | None = None
    computeEnvironmentArn: str
    jobQueueArn: str | None = None
    executionRoleArn: str | None = None
    taskRoleArn: str | None = None
    bucket: str | None = None
    resources: Resources = Field(default_factory=Resources)
    sidecarResources: Resources | None = None  # Kestra's sidecars: refused, there is no sidecar here
    waitUntilCompletion: datetime.timedelta = datetime.timedelta(hours=1)
    completionCheckInterval: datetime.timedelta = datetime.timedelta(seconds=5)
    delete: bool = True
    resume: bool = True


class AwsBatchRunner(TaskRunner):
    supports_resume: ClassVar[bool] = True
    container_workdir: ClassVar[str] = WORKDIR

    def __init__(self, **properties: Any):
        try:
            self.options = BatchOptions(**properties)
        except Exception as exc:
            raise RunnerError(f"Invalid AWS Batch task runner properties: {exc}") from exc
        if self.options.sidecarResources is not None:
            raise RunnerError("sidecarResources is not supported yet: this runner moves files inside the job's own "
                              "container (no sidecar container); size that one with resources.request")
        self._clients: dict[str, Any] = {}

    # -- the contract ---------------------------------------------------------------------------------------
    def run(self, spec: CommandSpec, sink: LogSink, control: RunControl) -> RunResult:
        if control.kill.is_set():  # nothing submitted yet: nothing to stop
            return RunResult(exit_code=-1, killed=True)
        self._check_files(spec)
        name = _job_name(spec.name)
        job_def = None
        job_id = None
        try:
            environment = self._compute_environment()
            queue = self._queue(environment)
            left = self._left_behind(queue, name) if self.options.resume else None
            if left is not None:  # started by a worker that died: follow it rather than start a duplicate
                log.warning("AWS Batch job %s of this task run is still active: following it", left["jobId"])
                control.on_external_id(left["jobId"])
                job_def = left["jobDefinition"]
                return self._follow(left["jobId"], spec, sink, control)
            urls = self._stage_inputs(spec, name) if self.options.bucket else {}
            job_def = self._register(spec, name, environment, urls)
            if control.kill.is_set():
                return RunResult(exit_code=-1, killed=True)
            job_id = self._submit(spec, name, queue, job_def)
            control.on_external_id(job_id)
            return self._follow(job_id, spec, sink, control)
        except (BotoCoreError, ClientError) as exc:
            if job_id is not None:  # we lose track of it: stop it rather than let it run unobserved
                with contextlib.suppress(BotoCoreError, ClientError):
                    self._client("batch").terminate_job(jobId=job_id, reason="Celestra runner error")
            raise RunnerError(f"AWS Batch error: {_reason(exc, self.options.endpointOverride)}") from exc
        finally:
            self._cleanup(job_def, name)

    def resume(self, external_id: str, spec: CommandSpec, sink: LogSink, control: RunControl) -> RunResult:
        try:
            job = self._describe(external_id)
            try:
                return self._follow(external_id, spec, sink, control)
            finally:
                self._cleanup(job["jobDefinition"], job["jobName"])
        except (BotoCoreError, ClientError) as exc:
            raise RunnerError(f"AWS Batch error: {_reason(exc, self.options.endpointOverride)}") from exc

    # -- AWS clients ----------------------------------------------------------------------------------------
    def _session(self) -> Any:
        opts = self.options
        session = boto3.session.Session(aws_access_key_id=opts.accessKeyId, aws_secret_access_key=opts.secretKeyId,
                                        aws_session_token=opts.sessionToken, region_name=opts.region)
        if not opts.stsRoleArn:
            return session
        # Kestra's STS properties: act as that role (once per runner: every client shares the credentials)
        endpoint = opts.stsEndpointOverride or opts.endpointOverride
        config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5)
        sts = session.client("sts", endpoint_url=endpoint, config=config)
        extra = {"ExternalId": opts.stsRoleExternalId} if opts.stsRoleExternalId else {}
        try:
            creds = sts.assume_role(RoleArn=opts.stsRoleArn, RoleSessionName=opts.stsRoleSessionName or "celestra",
                                    DurationSeconds=int(opts.stsRoleSessionDuration.total_seconds()),
                                    **extra)["Credentials"]
        except (BotoCoreError, ClientError) as exc:
            raise RunnerError(f"AWS STS could not give the role {opts.stsRoleArn}: {_reason(exc, endpoint)}") from exc
        return boto3.session.Session(aws_access_key_id=creds["AccessKeyId"],
                                     aws_secret_access_key=creds["SecretAccessKey"],
                                     aws_session_token=creds["SessionToken"], region_name=opts.region)

    def _client(self, service: str) -> Any:
        client = self._clients.get(service)
        if client is None:
            opts = self.options
            if "session" not in self._clients:
                self._clients["session"] = self._session()
            session = self._clients["session"]
            # Few retries and a short connect timeout: an unreachable endpoint must fail in seconds, not minutes.
            config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60,
                            signature_version="s3v4" if service == "s3" else None,
                            s3={"addressing_style": "path"} if opts.endpointOverride else None)
            client = session.client(service, endpoint_url=opts.endpointOverride, config=config)
            self._clients[service] = client
        return client

    # -- steps ----------------------------------------------------------------------------------------------
    def _check_files(self, spec: CommandSpec) -> None:
        if self.options.bucket:
            return
        has_inputs = any(p.is_file() for p in spec.working_dir.rglob("*")) if spec.working_dir.exists() else False
        if has_inputs or spec.output_files:
            raise RunnerError("The AWS Batch task runner needs `bucket` for input files, namespace files, scripts "
                              "and output files: set the `bucket` property")

    def _compute_environment(self) -> dict[str, Any]:
        arn = self.options.computeEnvironmentArn
        found = self._client("batch").describe_compute_environments(computeEnvironments=[arn])["computeEnvironments"]
        if not found:
            raise RunnerError(f"AWS Batch compute environment {arn} not found")
        return found[0]  # type: ignore[no-any-return]

    def _queue(self, environment: dict[str, Any]) -> str:
        batch = self._client("batch")
        if self.options.jobQueueArn:
            if not batch.describe_job_queues(jobQueues=[self.options.jobQueueArn])["jobQueues"]:
                raise RunnerError(f"AWS Batch job queue {self.options.jobQueueArn} not found")
            return self.options.jobQueueArn
        name = _job_name(f"celestra-{environment['computeEnvironmentName']}")
        deadline = time.monotonic() + QUEUE_WAIT
        while True:
            found = batch.describe_job_queues(jobQueues=[name])["jobQueues"]
            if not found:
                with contextlib.suppress(ClientError):  # created meanwhile by another worker: fine
                    batch.create_job_queue(jobQueueName=name, state="ENABLED", priority=1, computeEnvironmentOrder=[
                        {"order": 1, "computeEnvironment": environment["computeEnvironmentArn"]}])
            elif found[0].get("status") == "VALID":
                return found[0]["jobQueueArn"]  # type: ignore[no-any-return]
            elif found[0].get("status") == "INVALID" or time.monotonic() > deadline:
                raise RunnerError(f"AWS Batch job queue {name} is not usable: {found[0].get('statusReason')}")
            time.sleep(1.0)

    def _left_behind(self, queue: str, name: str) -> dict[str, Any] | None:
        batch = self._client("batch")
        summaries = batch.list_jobs(jobQueue=queue, filters=[{"name": "JOB_NAME", "values": [name]}])["jobSummaryList"]
        active = [s["jobId"] for s in summaries if s.get("status") not in TERMINAL]
        jobs = batch.describe_jobs(jobs=active[:1])["jobs"] if active else []
        return jobs[0] if jobs else None

    def _prefix(self, name: str) -> str:
        return f"celestra/{name}/"  # deterministic per attempt: a resumed run finds the same objects

    def _stage_inputs(self, spec: CommandSpec, name: str) -> dict[str, str]:
        s3, bucket, prefix = self._client("s3"), self.options.bucket, self._prefix(name)
        expires = int(min(self._wait(spec) + 900, 7 * 24 * 3600))
        env: dict[str, str] = {"BUCKET_PATH": f"s3://{bucket}/{prefix}".rstrip("/")}
        if spec.working_dir.exists() and any(spec.working_dir.iterdir()):
            s3.put_object(Bucket=bucket, Key=prefix + "inputs.tar", Body=_tar_of(spec.working_dir))
            env["CELESTRA_INPUTS_URL"] = s3.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": prefix + "inputs.tar"}, ExpiresIn=expires)
        post = s3.generate_presigned_post(bucket, prefix + "outputs.tar.b64", ExpiresIn=expires)
        env["CELESTRA_OUTPUTS_URL"] = post["url"]
        env["CELESTRA_OUTPUTS_FORM"] = "\n".join(f"{k}={v}" for k, v in post["fields"].items())
        env["CELESTRA_OUTPUTS_PATHS"] = "." if spec.output_files else spec.output_dir
        return env

    def _register(self, spec: CommandSpec, name: str, environment: dict[str, Any], extra_env: dict[str, str]) -> str:
        opts = self.options
        fargate = environment.get("computeResources", {}).get("type") in ("FARGATE", "FARGATE_SPOT")
        props: dict[str, Any] = {
            "image": spec.container_image or "ubuntu",
            "command": ["/bin/sh", "-c", BOOTSTRAP, "celestra", *spec.command],
            "environment": [{"name": k, "value": v} for k, v in {**spec.env, **extra_env}.items()],
            "resourceRequirements": [{"type": "VCPU", "value": opts.resources.request.cpu},
                                     {"type": "MEMORY", "value": opts.resources.request.memory}],
        }
        if opts.executionRoleArn:
            props["executionRoleArn"] = opts.executionRoleArn
        if opts.taskRoleArn:
            props["jobRoleArn"] = opts.taskRoleArn
        if fargate:  # a public IP lets a job in a public subnet pull its image and reach S3
            props["networkConfiguration"] = {"assignPublicIp": "ENABLED"}
            props["fargatePlatformConfiguration"] = {"platformVersion": "LATEST"}
        response = self._client("batch").register_job_definition(
            jobDefinitionName=name, type="container", containerProperties=props, tags=_tags(spec.labels),
            platformCapabilities=["FARGATE" if fargate else "EC2"])
        return response["jobDefinitionArn"]  # type: ignore[no-any-return]

    def _submit(self, spec: CommandSpec, name: str, queue: str, job_def: str) -> str:
        kwargs: dict[str, Any] = {"jobName": name, "jobQueue": queue, "jobDefinition": job_def,
                                  "tags": _tags(spec.labels)}
        # Batch's own backstop, should this worker die (Batch's minimum is 60 s)
        kwargs["timeout"] = {"attemptDurationSeconds": max(60, int(self._wait(spec)) + 60)}
        return self._client("batch").submit_job(**kwargs)["jobId"]  # type: ignore[no-any-return]

    def _wait(self, spec: CommandSpec) -> float:
        """How long a run waits for its job, as Kestra's: the task's timeout if it has one, else waitUntilCompletion."""
        return spec.timeout or self.options.waitUntilCompletion.total_seconds()

    def _follow(self, job_id: str, spec: CommandSpec, sink: LogSink, control: RunControl) -> RunResult:
        """Poll the job and its log stream until it ends, the kill request, or the deadline; then bring files back."""
        interval = max(self.options.completionCheckInterval.total_seconds(), TICK)
        deadline = time.monotonic() + self._wait(spec)
        lines = CloudWatchLines(self._client("logs"), sink)
        killed = timed_out = False
        job: dict[str, Any] = {}
        next_check = next_read = 0.0
        while True:
            now = time.monotonic()
            if now >= next_check:
                job = self._describe(job_id)
                lines.stream = log_stream(job) or lines.stream
                next_check = now + interval
                if job["status"] in TERMINAL:
                    break
            if now >= next_read:
                lines.read()
                next_read = now + min(interval, LOG_POLL_MAX)
            if control.kill.is_set() or now >= deadline:
                killed, timed_out = control.kill.is_set(), not control.kill.is_set()
                job = self._terminate(job_id, "killed by Celestra" if killed else "timed out in Celestra")
                break
            time.sleep(TICK)
        lines.stream = log_stream(job) or lines.stream
        lines.read()  # the rest, once: the token makes it exactly what was not delivered yet
        exit_code = self._exit_code(job)
        if exit_code is None and not (killed or timed_out):
            reason = _job_reason(job)
            sink(f"AWS Batch job {job_id} failed before its command ran: {reason}", "stderr")
            raise RunnerError(f"AWS Batch job {job_id} ({job.get('jobName')}) failed: {reason}")
        if exit_code is None:
            exit_code = -1
        if timed_out and not spec.timeout:
            wait = self.options.waitUntilCompletion
            raise RunnerError(f"AWS Batch job {job_id} did not complete within waitUntilCompletion "
                              f"({wait.total_seconds():g} s): it was terminated")
        if killed or timed_out:
            return RunResult(exit_code=exit_code, external_id=job_id, killed=killed, timed_out=timed_out)
        if self.options.bucket:
            self._bring_back(spec, job.get("jobName") or _job_name(spec.name))
        return RunResult(exit_code=exit_code, external_id=job_id, output_files=collect_outputs(spec))

    def _describe(self, job_id: str) -> dict[str, Any]:
        jobs = self._client("batch").describe_jobs(jobs=[job_id])["jobs"]
        if not jobs:  # Batch forgets jobs some days after they ended
            raise RunnerError(f"AWS Batch job {job_id} no longer exists")
        return jobs[0]  # type: ignore[no-any-return]

    def _terminate(self, job_id: str, reason: str) -> dict[str, Any]:
        self._client("batch").terminate_job(jobId=job_id, reason=reason)
        until = time.monotonic() + KILL_WAIT
        while True:  # a short wait, so the job's last lines and exit code are read and its container is gone
            job = self._describe(job_id)
            if job["status"] in TERMINAL or time.monotonic() > until:
                return job
            time.sleep(TICK)

    def _exit_code(self, job: dict[str, Any]) -> int | None:
        code = job.get("container", {}).get("exitCode")
        if code is None and job.get("status") in TERMINAL:
            # moto's DescribeJobs drops the exit code that its ListJobs summary keeps; real AWS returns both
            with contextlib.suppress(BotoCoreError, ClientError, KeyError):
                summaries = self._client("batch").list_jobs(
                    jobQueue=job["jobQueue"], filters=[{"name": "JOB_NAME", "values": [job["jobName"]]}])
                for summary in summaries["jobSummaryList"]:
                    if summary["jobId"] == job["jobId"]:
                        code = summary.get("container", {}).get("exitCode")
        return int(code) if code is not None else None

    def _bring_back(self, spec: CommandSpec, name: str) -> None:
        try:
            body = self._client("s3").get_object(Bucket=self.options.bucket, Key=self._prefix(name) + "outputs.tar.b64")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return  # the bootstrap said why in the job's log
            raise
        with tarfile.open(fileobj=io.BytesIO(base64.b64decode(body["Body"].read()))) as tar:
            tar.extractall(spec.working_dir, filter="data")  # refuses absolute paths, `..` and links out

    def _cleanup(self, job_def: str | None, name: str) -> None:
        if not self.options.delete:
            return
        try:
            if job_def:
                self._client("batch").deregister_job_definition(jobDefinition=job_def)
            if self.options.bucket:
                s3, prefix = self._client("s3"), self._prefix(name)
                listed = s3.list_objects_v2(Bucket=self.options.bucket, Prefix=prefix).get("Contents", [])
                if listed:
                    s3.delete_objects(Bucket=self.options.bucket,
                                      Delete={"Objects": [{"Key": o["Key"]} for o in listed], "Quiet": True})
        except (BotoCoreError, ClientError, RunnerError) as exc:  # never hide the run's own result or error
            log.warning("AWS Batch cleanup of %s failed: %s", name, exc)


def _job_reason(job: dict[str, Any]) -> str:
    reasons = [job.get("statusReason"), job.get("container", {}).get("reason")]
    reasons += [a.get("statusReason") or a.get("container", {}).get("reason") for a in job.get("attempts", [])]
    found = [r for r in reasons if r]
    return "; ".join(dict.fromkeys(found)) if found else "no exit code and no reason given by AWS Batch"


def _job_name(name: str) -> str:
    """Batch names: 1-128 letters, digits, hyphens and underscores, starting with a letter or digit."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]", "-", name).lstrip("-_") or "celestra"
    return cleaned[:128]


def _tags(labels: dict[str, str]) -> dict[str, str]:
    allowed = re.compile(r"^[\w.:/=+\-@ ]*$")
    return {k[:128]: v[:256] for k, v in labels.items() if allowed.match(k) and allowed.match(v)}


def _tar_of(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)
    return buffer.getvalue()


def _reason(exc: Exception, endpoint: str | None) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code')}: {error.get('Message')}"
    if isinstance(exc, BotoCoreError) and "Connect" in type(exc).__name__:
        return f"cannot reach the AWS endpoint {endpoint or '(default for the region)'}: {exc}"
    return str(exc)


__all__ = ["AwsBatchRunner", "BatchOptions"]
