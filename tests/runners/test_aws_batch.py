"""The AWS Batch runner against moto's real server: jobs run as containers on the local Docker engine.

Needs DOCKER_HOST (`.ci/start-dockerd` prints it), the local images of deploy/images/build.sh and `moto[server]`.
Skips locally when one is missing; fails in CI. The services: tests/runners/aws_services.py.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from runner_conformance import ListSink, RunnerConformance, wait_until  # tests/runners/ is on sys.path

from runners import RunnerError, TaskRunner, runner_for
from runners.base import CommandSpec, RunControl

try:
    from aws_services import (
        PYTHON_IMAGE,
        REGION,
        RUN_LABEL,
        SHELL_IMAGE,
        Aws,
        active_job_definitions,
        assert_nothing_left,
        definition_status,
        free_port,
        job_containers,
        objects_left,
    )

    from runners.aws_batch import AwsBatchRunner
except ImportError as exc:
    if os.environ.get("CI"):
        raise  # CI installs `.[dev]`: a missing boto3, docker or moto is a failure there
    pytest.skip(f"boto3, docker SDK or moto missing: {exc}", allow_module_level=True)


def kill_on(sink: ListSink, line: str, control: RunControl) -> None:
    """Cancel once `line` has reached the sink (the job runs by then)."""
    if sink.wait_for(line, 30.0):
        control.kill.set()


class TestAwsBatchRunner(RunnerConformance):  # type: ignore[misc]
    @pytest.fixture(autouse=True)
    def _nothing_left(self, aws: Aws) -> Iterator[None]:
        self.aws = aws
        yield
        assert_nothing_left(aws)

    def make_runner(self) -> TaskRunner:
        return runner_for("aws_batch", self.aws.properties())

    def spec(self, workdir: Path, script: str, **kwargs: object) -> CommandSpec:  # type: ignore[override]
        kwargs.setdefault("container_image", SHELL_IMAGE)
        kwargs.setdefault("labels", {"celestra.taskrun": uuid.uuid4().hex})
        kwargs.setdefault("name", f"celestra-test-{RUN_LABEL}-{uuid.uuid4().hex[:8]}")
        return CommandSpec(command=["/bin/sh", "-c", script], working_dir=workdir, **kwargs)  # type: ignore[arg-type]

    def live_processes(self, external_id: str) -> list[int]:
        """A job counts as live while Batch has not stopped it or its container still exists."""
        jobs = self.aws.client("batch").describe_jobs(jobs=[external_id])["jobs"]
        running = bool(jobs) and jobs[0]["status"] not in ("SUCCEEDED", "FAILED")
        return [1] if running or job_containers(self.aws.engine, external_id) else []

    # -- conformance cases that cannot hold as written on Batch ------------------------------------------------
    def test_stderr(self, runner: TaskRunner, workdir: Path) -> None:
        """Batch's awslogs driver writes stdout and stderr into one CloudWatch stream, which does not say which
        stream a line came from: both lines arrive as "stdout" (Kestra's Batch runner does the same). Their order
        across the two streams is not kept either: the engine reads the two pipes independently."""
        result, sink, _ = self.run(runner, self.spec(workdir, "echo to-out; echo to-err >&2"))
        assert result.exit_code == 0
        assert sorted(sink.lines) == [("to-err", "stdout"), ("to-out", "stdout")]

    # Batch cannot stop a job while its container is being created: moto (like ECS) stops it once it started. The
    # suite's 1 s timeout and 0.5 s cancel fall in that window (~1-2 s here, more when the engine is busy), so the
    # bounds below are the suite's plus STARTUP; every other assertion is the suite's.
    STARTUP = 3.0

    def test_timeout(self, runner: TaskRunner, workdir: Path) -> None:
        result, _, elapsed = self.run(runner, self.spec(workdir, "sleep 30", timeout=1))
        assert result.timed_out is True and result.killed is False and result.exit_code != 0
        assert elapsed < 3.0 + self.STARTUP, f"a 1s timeout took {elapsed:.2f}s"

    def test_timeout_on_a_command_ignoring_sigterm(self, runner: TaskRunner, workdir: Path) -> None:
        result, _, elapsed = self.run(runner, self.spec(workdir, "trap '' TERM; sleep 30", timeout=1))
        assert result.timed_out is True
        assert elapsed < 4.0 + self.STARTUP, f"a command ignoring SIGTERM was stopped only after {elapsed:.2f}s"
        assert result.external_id is not None
        assert wait_until(lambda: not self.live_processes(result.external_id or ""), 1.0)

    def test_cancel(self, runner: TaskRunner, workdir: Path) -> None:
        control = RunControl()
        killer = self.kill_later(control, 0.5)
        result, _, elapsed = self.run(runner, self.spec(workdir, "sleep 30"), control)
        killer.join()
        assert result.killed is True and result.timed_out is False
        assert elapsed < 3.0 + self.STARTUP, f"a cancel 0.5s in returned after {elapsed:.2f}s"

    def test_timeout_with_a_background_child_holding_the_output(self, runner: TaskRunner, workdir: Path) -> None:
        """As the suite's with a 4 s timeout instead of 1 s: the job must have started and printed before the
        timeout for the case to mean anything, and starting takes ~1-2 s here (see above)."""
        ids: list[str] = []
        control = RunControl(on_external_id=ids.append)
        _, sink, elapsed = self.run(runner, self.spec(workdir, self.LINGERING, timeout=4), control)
        assert ("leader done", "stdout") in sink.lines
        assert elapsed < 5.5, f"run() returned after {elapsed:.2f}s (waited for the background child's sleep 6)"
        assert ids and wait_until(lambda: not self.live_processes(ids[0]), 5.0), "the job outlived run()"

    def test_cancel_with_a_background_child_holding_the_output(self, runner: TaskRunner, workdir: Path) -> None:
        """As the suite's, but the cancel comes when the leader has printed rather than 0.5 s after run(): 0.5 s
        in, the job's container does not exist yet (see above), so there would be no leader to speak of."""
        ids: list[str] = []
        control = RunControl(on_external_id=ids.append)
        sink = ListSink()
        threading.Thread(target=kill_on, args=(sink, "leader done", control), daemon=True).start()
        started = time.monotonic()
        runner.run(self.spec(workdir, self.LINGERING), sink, control)
        elapsed = time.monotonic() - started
        assert ("leader done", "stdout") in sink.lines
        assert elapsed < 5.5, f"run() returned after {elapsed:.2f}s (waited for the background child's sleep 6)"
        assert ids and wait_until(lambda: not self.live_processes(ids[0]), 5.0), "the job outlived run()"

    # -- only a Batch runner ---------------------------------------------------------------------------------
    def test_the_command_really_runs_in_a_container_of_a_batch_job(self, runner: TaskRunner, workdir: Path) -> None:
        ids: list[str] = []
        script = 'test -f /.dockerenv && echo in-docker; echo "job $AWS_BATCH_JOB_ID"; pwd'
        result, sink, _ = self.run(runner, self.spec(workdir, script), RunControl(on_external_id=ids.append))
        assert result.exit_code == 0
        assert ids == [result.external_id]
        assert sink.stream("stdout") == ["in-docker", f"job {ids[0]}", AwsBatchRunner.container_workdir]

    def test_python_image_files_both_ways(self, runner: TaskRunner, workdir: Path) -> None:
        """The python image has python3 (the bootstrap's HTTP client there); the busybox one has only wget."""
        (workdir / "in.json").write_text('{"n": 41}')
        spec = self.spec(workdir, "", container_image=PYTHON_IMAGE, output_files=["result.txt"])
        spec.command = ["python3", "-c", "import json; n = json.load(open('in.json'))['n']; print('n', n);"
                        "open('result.txt', 'w').write(str(n + 1))"]
        result, sink, _ = self.run(runner, spec)
        assert result.exit_code == 0, sink.lines
        assert sink.stream("stdout") == ["n 41"]
        assert result.output_files["result.txt"].read_text() == "42"

    def test_lines_are_followed_live(self, runner: TaskRunner, workdir: Path) -> None:
        sink = ListSink()
        ended = threading.Event()
        seen_before_end: list[bool] = []

        def watch() -> None:
            seen_before_end.append(sink.wait_for("first", 20.0) and not ended.is_set())

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        result = runner.run(self.spec(workdir, "echo first; sleep 3; echo second"), sink, RunControl())
        ended.set()
        watcher.join()
        assert result.exit_code == 0
        assert [line for line, _ in sink.lines] == ["first", "second"]
        assert seen_before_end == [True], "'first' reached the sink only after the job ended"
        assert sink.arrived[1] - sink.arrived[0] > 1.5

    def test_cancel_terminates_the_job(self, runner: TaskRunner, workdir: Path) -> None:
        sink = ListSink()
        control = RunControl()
        ids: list[str] = []
        control.on_external_id = ids.append
        threading.Thread(target=kill_on, args=(sink, "up", control), daemon=True).start()
        started = time.monotonic()
        result = runner.run(self.spec(workdir, "echo up; sleep 60"), sink, control)
        assert result.killed and time.monotonic() - started < 20
        job = self.aws.client("batch").describe_jobs(jobs=ids)["jobs"][0]
        assert job["status"] == "FAILED" and "killed by Celestra" in job.get("statusReason", "")

    def test_without_bucket_files_are_refused(self, workdir: Path) -> None:
        runner = runner_for("aws_batch", self.aws.properties(bucket=None))
        (workdir / "in.txt").write_text("x")
        with pytest.raises(RunnerError, match="bucket"):
            runner.run(self.spec(workdir, "cat in.txt"), lambda *_: None, RunControl())
        (workdir / "in.txt").unlink()
        with pytest.raises(RunnerError, match="bucket"):
            runner.run(self.spec(workdir, "true", output_files=["*.txt"]), lambda *_: None, RunControl())

    def test_without_bucket_a_plain_command_runs(self, workdir: Path) -> None:
        runner = runner_for("aws_batch", self.aws.properties(bucket=None))
        result, sink, _ = self.run(runner, self.spec(workdir, "echo no files"))
        assert result.exit_code == 0 and sink.stream("stdout") == ["no files"]

    def test_missing_image_is_a_clear_error(self, runner: TaskRunner, workdir: Path) -> None:
        sink = ListSink()
        with pytest.raises(RunnerError, match="failed"):
            runner.run(self.spec(workdir, "true", container_image="no-such/image:1"), sink, RunControl())
        assert any("failed before its command ran" in line for line, _ in sink.lines)

    def test_a_queue_is_created_when_none_is_given(self, workdir: Path) -> None:
        runner = runner_for("aws_batch", self.aws.properties(jobQueueArn=None))
        result, sink, _ = self.run(runner, self.spec(workdir, "echo queued"))
        assert result.exit_code == 0 and sink.stream("stdout") == ["queued"]
        queues = self.aws.client("batch").describe_job_queues(jobQueues=["celestra-celestra-fargate"])["jobQueues"]
        assert queues and queues[0]["status"] == "VALID"  # kept for the next runs, on purpose

    def test_missing_compute_environment_property(self) -> None:
        with pytest.raises(RunnerError, match="computeEnvironmentArn"):
            runner_for("aws_batch", {k: v for k, v in self.aws.properties().items() if k != "computeEnvironmentArn"})

    def test_unknown_compute_environment_or_queue(self, workdir: Path) -> None:
        for override, name in (({"computeEnvironmentArn": "arn:aws:batch:us-east-1:123456789012:"
                                 "compute-environment/nope"}, "compute environment"),
                               ({"jobQueueArn": "arn:aws:batch:us-east-1:123456789012:job-queue/nope"}, "job queue")):
            runner = runner_for("aws_batch", self.aws.properties(**override))
            with pytest.raises(RunnerError, match=f"{name} .* not found"):
                runner.run(self.spec(workdir, "true"), lambda *_: None, RunControl())

    def test_unreachable_endpoint_is_a_clear_error(self, workdir: Path) -> None:
        runner = runner_for("aws_batch", self.aws.properties(endpointOverride=f"http://127.0.0.1:{free_port()}"))
        started = time.monotonic()
        with pytest.raises(RunnerError, match="cannot reach the AWS endpoint"):
            runner.run(self.spec(workdir, "true"), lambda *_: None, RunControl())
        assert time.monotonic() - started < 15

    def test_sts_role_is_assumed(self, workdir: Path) -> None:
        runner = runner_for("aws_batch", self.aws.properties(stsRoleArn=self.aws.role, stsRoleSessionName="celestra-t"))
        assert isinstance(runner, AwsBatchRunner)
        assert runner._session().get_credentials().access_key != "test", "still the static keys, not the role's"
        result, sink, _ = self.run(runner, self.spec(workdir, "echo as the role"))
        assert result.exit_code == 0 and sink.stream("stdout") == ["as the role"]

    def test_unknown_property_is_rejected(self) -> None:
        with pytest.raises(RunnerError, match="bucketName"):
            runner_for("aws_batch", self.aws.properties(bucketName="x"))

    def test_delete_false_keeps_definition_and_objects(self, workdir: Path) -> None:
        runner = runner_for("aws_batch", self.aws.properties(delete=False))
        (workdir / "in.txt").write_text("kept")
        result, _, _ = self.run(runner, self.spec(workdir, "cat in.txt"))
        assert result.exit_code == 0
        definitions, keys = active_job_definitions(self.aws), objects_left(self.aws)
        assert definitions and any(key.endswith("inputs.tar") for key in keys)
        batch, s3 = self.aws.client("batch"), self.aws.client("s3")  # tidy up for the leftover check
        for arn in definitions:
            batch.deregister_job_definition(jobDefinition=arn)
        s3.delete_objects(Bucket=self.aws.bucket, Delete={"Objects": [{"Key": k} for k in keys]})

    def test_log_reader_pages_through_a_long_stream_once(self) -> None:
        """More events than one GetLogEvents page (10,000), some arriving between reads: each exactly once."""
        from runners.aws_logs import LOG_GROUP, CloudWatchLines

        logs, stream = self.aws.client("logs"), f"celestra-test-{RUN_LABEL}/default/{uuid.uuid4().hex}"
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            logs.create_log_group(logGroupName=LOG_GROUP)
        logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
        now = int(time.time() * 1000)

        def put(first: int, count: int) -> None:
            for start in range(first, first + count, 5000):
                batch = range(start, min(start + 5000, first + count))
                logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=stream,
                                    logEvents=[{"timestamp": now + i, "message": f"event {i}"} for i in batch])

        sink = ListSink()
        reader = CloudWatchLines(logs, sink)
        reader.stream = stream
        put(0, 12_000)
        reader.read()
        put(12_000, 5)
        reader.read()
        reader.read()
        assert sink.stream("stdout") == [f"event {i}" for i in range(12_005)]

    def _orphan(self, name: str, script: str) -> str:
        """A job as a worker that died would have left it: submitted, running, never followed."""
        batch = self.aws.client("batch")
        definition = batch.register_job_definition(
            jobDefinitionName=name, type="container", platformCapabilities=["FARGATE"],
            containerProperties={"image": SHELL_IMAGE, "command": ["/bin/sh", "-c", script],
                                 "resourceRequirements": [{"type": "VCPU", "value": "0.25"},
                                                          {"type": "MEMORY", "value": "512"}]})
        job = batch.submit_job(jobName=name, jobQueue=self.aws.queue, jobDefinition=definition["jobDefinitionArn"])
        return str(job["jobId"])

    def test_resume_follows_a_job_of_a_dead_worker(self, runner: TaskRunner, workdir: Path) -> None:
        spec = self.spec(workdir, "echo duplicate")
        job_id = self._orphan(spec.name, "echo started; sleep 2; echo finished")
        assert runner.supports_resume
        result, sink, _ = self.run_resume(runner, job_id, spec)
        assert result.exit_code == 0 and result.external_id == job_id
        assert sink.stream("stdout") == ["started", "finished"]

    def test_run_follows_a_left_behind_job_instead_of_a_duplicate(self, runner: TaskRunner, workdir: Path) -> None:
        spec = self.spec(workdir, "echo duplicate")
        job_id = self._orphan(spec.name, "echo started; sleep 2; echo finished")
        ids: list[str] = []
        result, sink, _ = self.run(runner, spec, RunControl(on_external_id=ids.append))
        assert ids == [job_id] and result.external_id == job_id
        assert sink.stream("stdout") == ["started", "finished"]  # the orphan's output, not a new run's

    @staticmethod
    def run_resume(runner: TaskRunner, job_id: str, spec: CommandSpec) -> tuple[Any, ListSink, float]:
        sink = ListSink()
        started = time.monotonic()
        result = runner.resume(job_id, spec, sink, RunControl())
        return result, sink, time.monotonic() - started


# -- the seed flow, end to end (embedded Celestra, the worker's script task on this runner) --------------------
SEED_FLOW = Path(__file__).resolve().parents[2] / "flows" / "aws_ecs_fargate_python.yaml"


def test_seed_flow_runs_as_a_batch_job(aws: Aws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """flows/aws_ecs_fargate_python.yaml as shipped, pointed at moto: only its variables, the image (no registry
    here) and the endpoint change. Its credentials come through `secret()`, so rendering the runner's properties
    on the worker is part of what this proves."""
    import base64

    import yaml

    from app.client import Client
    from app.settings import Settings

    flow = yaml.safe_load(SEED_FLOW.read_text())
    flow["variables"].update(region=REGION, computeEnvironmentArn=aws.compute_environment, jobQueueArn=aws.queue,
                             executionRoleArn=aws.role, taskRoleArn=aws.role, bucket=aws.bucket)
    task = flow["tasks"][0]
    task["containerImage"] = PYTHON_IMAGE
    task["taskRunner"].update(endpointOverride=aws.endpoint, completionCheckInterval="PT0.2S")
    for name, value in (("AWS_ACCESS_KEY_ID", "celestra-key-id"), ("AWS_SECRET_ACCESS_KEY", "celestra-secret")):
        monkeypatch.setenv(f"SECRET_{name}", base64.b64encode(value.encode()).decode())
    client = Client(settings=Settings(home=tmp_path / "home"))
    ex = client.run(yaml.safe_dump(flow, sort_keys=False), timeout=120)
    lines = [row["message"] for row in client.logs(ex.id)]
    assert ex.state.value == "SUCCESS", (ex.to_json(), lines)
    run = ex.task_runs[0]
    assert "Hello from AWS Batch and Celestra!" in lines
    assert f"AWS Batch job: {run.external_id}" in lines  # the job id the worker saved on the task run
    assert run.outputs["vars"] == {"count": 3, "total": 49}
    assert ex.outputs["total"] == 49  # the flow output is typed INT
    assert client.download(run.outputs["outputFiles"]["summary.json"]) == b'{"count": 3, "total": 49}'
    wait_until(lambda: not job_containers(aws.engine, run.external_id or "?"), 5.0, step=0.1)
    assert not job_containers(aws.engine, run.external_id or "?")
    assert definition_status(aws, run.external_id or "?") == "INACTIVE", "the job definition is still registered"
    assert not objects_left(aws)


def test_cancelling_the_execution_terminates_the_job(aws: Aws, tmp_path: Path) -> None:
    """Celestra's cancel reaches the runner's kill request: the Batch job is terminated, nothing is left."""
    import yaml

    from app.client import Client
    from app.settings import Settings

    runner = {"type": "io.kestra.plugin.ee.aws.runner.Batch", **aws.properties()}
    flow = {"id": "batch_cancel", "namespace": "company.team", "tasks": [{
        "id": "py", "type": "io.kestra.plugin.scripts.python.Script", "containerImage": PYTHON_IMAGE,
        "taskRunner": runner, "script": "import time\nprint('up', flush=True)\ntime.sleep(60)"}]}
    client = Client(settings=Settings(home=tmp_path / "home"))
    ex = client.run(yaml.safe_dump(flow), wait=False)
    assert wait_until(lambda: any(row["message"] == "up" for row in client.logs(ex.id)), 60, step=0.2)
    cancelled = time.monotonic()
    client.cancel(ex.id)
    ended = client.wait(ex.id, timeout=60)
    assert ended.state.value == "KILLED" and time.monotonic() - cancelled < 15
    job_id = ended.task_runs[0].external_id
    job = aws.client("batch").describe_jobs(jobs=[job_id])["jobs"][0]
    assert job["status"] == "FAILED" and job["statusReason"] == "killed by Celestra"
    assert wait_until(lambda: not job_containers(aws.engine, job_id or "?"), 5.0, step=0.1)
    assert definition_status(aws, job_id or "?") == "INACTIVE" and not objects_left(aws)
