"""The AWS Batch runner's connection and job options, each seen taking effect on moto's real server.

Credentials are checked for real: inside `authenticated()` moto verifies every request's SigV4 signature and the
IAM identity behind its keys, so a wrong secret or a missing session token is refused as AWS would refuse it. What
the runner registers and submits is read back from Batch (DescribeJobDefinitions, DescribeJobs). STS requests
pass through a recording proxy to show what AssumeRole was asked. Services: tests/runners/aws_services.py.
"""

from __future__ import annotations

import os
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from runner_conformance import ListSink  # tests/runners/ is on sys.path

from runners import RunnerError, runner_for
from runners.base import CommandSpec, RunControl, RunResult

try:
    import boto3
    from aws_services import REGION, RUN_LABEL, SHELL_IMAGE, Aws, assert_nothing_left, authenticated, create_role
    from recording_proxy import RecordingProxy
except ImportError as exc:
    if os.environ.get("CI"):
        raise  # CI installs `.[dev]`: a missing boto3, docker or moto is a failure there
    pytest.skip(f"boto3, docker SDK or moto missing: {exc}", allow_module_level=True)


@pytest.fixture(autouse=True)
def _nothing_left(aws: Aws) -> Iterator[None]:
    yield
    assert_nothing_left(aws)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def spec(workdir: Path, script: str, **kwargs: Any) -> CommandSpec:
    kwargs.setdefault("name", f"celestra-test-{RUN_LABEL}-{uuid.uuid4().hex[:8]}")
    return CommandSpec(command=["/bin/sh", "-c", script], working_dir=workdir, container_image=SHELL_IMAGE, **kwargs)


def run(properties: dict[str, Any], workdir: Path, script: str, **kwargs: Any) -> tuple[RunResult, ListSink]:
    sink = ListSink()
    return runner_for("aws_batch", properties).run(spec(workdir, script, **kwargs), sink, RunControl()), sink


def submitted(aws: Aws, job_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The job as Batch has it, and the container properties of the job definition it ran from."""
    batch = aws.client("batch")
    job = batch.describe_jobs(jobs=[job_id])["jobs"][0]
    definition = batch.describe_job_definitions(jobDefinitions=[job["jobDefinition"]])["jobDefinitions"][0]
    return job, definition["containerProperties"]


# -- credentials ---------------------------------------------------------------------------------------------------
def test_static_keys_sign_every_request(aws: Aws, workdir: Path) -> None:
    """accessKeyId and secretKeyId are the keys the requests are signed with: an IAM user's work, a wrong secret is
    refused by AWS's signature check, and the moto default "test" keys no longer pass once moto checks them."""
    with authenticated(aws, f"celestra-keys-{uuid.uuid4().hex[:6]}") as keys:
        props = aws.properties(accessKeyId=keys.access_key_id, secretKeyId=keys.secret_access_key, bucket=None)
        result, sink = run(props, workdir, "echo signed")
        assert result.exit_code == 0 and sink.stream("stdout") == ["signed"]
        with pytest.raises(RunnerError, match="SignatureDoesNotMatch"):
            run({**props, "secretKeyId": "not-" + keys.secret_access_key}, workdir, "true")
        with pytest.raises(RunnerError, match="InvalidClientTokenId"):
            run(aws.properties(bucket=None), workdir, "true")


def test_session_token_goes_with_temporary_keys(aws: Aws, workdir: Path) -> None:
    """Temporary keys (from STS) work only with their sessionToken: without it AWS does not know them."""
    role = create_role(aws, f"celestra-token-{uuid.uuid4().hex[:6]}", allowed_all=True)
    with authenticated(aws, f"celestra-token-{uuid.uuid4().hex[:6]}") as keys:
        sts = boto3.client("sts", endpoint_url=aws.endpoint, region_name=REGION, aws_access_key_id=keys.access_key_id,
                           aws_secret_access_key=keys.secret_access_key)
        creds = sts.assume_role(RoleArn=role, RoleSessionName="celestra-token")["Credentials"]
        props = aws.properties(accessKeyId=creds["AccessKeyId"], secretKeyId=creds["SecretAccessKey"],
                               sessionToken=creds["SessionToken"], bucket=None)
        result, sink = run(props, workdir, "echo with a session")
        assert result.exit_code == 0 and sink.stream("stdout") == ["with a session"]
        with pytest.raises(RunnerError, match="InvalidClientTokenId"):
            run({k: v for k, v in props.items() if k != "sessionToken"}, workdir, "true")


def test_region_chooses_where_the_job_goes(aws: Aws, workdir: Path) -> None:
    """Batch is regional: the compute environment made in us-east-1 does not exist for a runner in eu-west-1."""
    with pytest.raises(RunnerError, match="compute environment .* not found"):
        run(aws.properties(region="eu-west-1"), workdir, "true")


def test_sts_options_reach_assume_role_through_the_sts_endpoint(aws: Aws, workdir: Path) -> None:
    """stsEndpointOverride gets the AssumeRole call (and only it), with stsRoleExternalId as ExternalId and
    stsRoleSessionDuration as DurationSeconds; the job then runs on the role's credentials."""
    with RecordingProxy(aws.endpoint) as proxy:
        props = aws.properties(stsRoleArn=aws.role, stsRoleSessionName="celestra-sts", stsEndpointOverride=proxy.url,
                               stsRoleExternalId="celestra-external", stsRoleSessionDuration="PT30M", bucket=None)
        result, sink = run(props, workdir, "echo as the role")
    assert result.exit_code == 0 and sink.stream("stdout") == ["as the role"]
    forms = [urllib.parse.parse_qs(request.body.decode()) for request in proxy.requests]
    assert [form["Action"] for form in forms] == [["AssumeRole"]], "only STS goes to stsEndpointOverride"
    assert forms[0]["RoleArn"] == [aws.role] and forms[0]["RoleSessionName"] == ["celestra-sts"]
    assert forms[0]["ExternalId"] == ["celestra-external"] and forms[0]["DurationSeconds"] == ["1800"]


def test_unreachable_sts_endpoint_is_named(aws: Aws, workdir: Path) -> None:
    from aws_services import free_port

    sts = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(RunnerError, match=f"STS could not give the role .*cannot reach the AWS endpoint {sts}"):
        run(aws.properties(stsRoleArn=aws.role, stsEndpointOverride=sts, bucket=None), workdir, "true")
    assert time.monotonic() - started < 15


# -- what the job is registered and submitted with -------------------------------------------------------------
def test_roles_and_resources_are_the_job_definitions(aws: Aws, workdir: Path) -> None:
    """executionRoleArn, taskRoleArn (Batch's jobRoleArn) and resources.request (VCPU, MEMORY) are what the job
    definition the job ran from holds."""
    execution, task = create_role(aws, f"celestra-exec-{uuid.uuid4().hex[:6]}"), create_role(
        aws, f"celestra-task-{uuid.uuid4().hex[:6]}")
    ids: list[str] = []
    props = aws.properties(executionRoleArn=execution, taskRoleArn=task, bucket=None,
                           resources={"request": {"cpu": "0.5", "memory": "1024"}})
    result = runner_for("aws_batch", props).run(spec(workdir, "echo sized"), ListSink(),
                                                RunControl(on_external_id=ids.append))
    assert result.exit_code == 0
    _, container = submitted(aws, ids[0])
    assert container["executionRoleArn"] == execution and container["jobRoleArn"] == task
    assert {r["type"]: r["value"] for r in container["resourceRequirements"]} == {"VCPU": "0.5", "MEMORY": "1024"}


def test_defaults_are_kestras_one_vcpu_and_2_gib(aws: Aws, workdir: Path) -> None:
    ids: list[str] = []
    props = {k: v for k, v in aws.properties(bucket=None).items() if k != "resources"}
    runner_for("aws_batch", props).run(spec(workdir, "true"), ListSink(), RunControl(on_external_id=ids.append))
    _, container = submitted(aws, ids[0])
    assert {r["type"]: r["value"] for r in container["resourceRequirements"]} == {"VCPU": "1", "MEMORY": "2048"}


def test_wait_until_completion_stops_a_job_that_runs_on(aws: Aws, workdir: Path) -> None:
    """Without a task timeout the run waits waitUntilCompletion, then terminates the job and fails saying so;
    Batch's own attempt timeout is that wait + 60 s, should the worker die."""
    ids: list[str] = []
    runner = runner_for("aws_batch", aws.properties(waitUntilCompletion="PT4S", bucket=None))
    started = time.monotonic()
    with pytest.raises(RunnerError, match=r"did not complete within waitUntilCompletion \(4 s\)"):
        runner.run(spec(workdir, "echo up; sleep 60"), ListSink(), RunControl(on_external_id=ids.append))
    assert time.monotonic() - started < 20
    job, _ = submitted(aws, ids[0])
    assert job["status"] == "FAILED" and "timed out in Celestra" in job["statusReason"]
    assert job["timeout"] == {"attemptDurationSeconds": 64}


def test_a_task_timeout_takes_precedence_over_wait_until_completion(aws: Aws, workdir: Path) -> None:
    """As in Kestra: with a task timeout the run waits that long, even past waitUntilCompletion."""
    ids: list[str] = []
    runner = runner_for("aws_batch", aws.properties(waitUntilCompletion="PT1S", bucket=None))
    result = runner.run(spec(workdir, "sleep 3; echo done", timeout=30), (sink := ListSink()),
                        RunControl(on_external_id=ids.append))
    assert result.exit_code == 0 and not result.timed_out and sink.stream("stdout") == ["done"]
    job, _ = submitted(aws, ids[0])
    assert job["timeout"] == {"attemptDurationSeconds": 90}


def test_sidecar_resources_are_refused(aws: Aws) -> None:
    with pytest.raises(RunnerError, match="sidecarResources is not supported yet"):
        runner_for("aws_batch", aws.properties(sidecarResources={"request": {"cpu": "0.25", "memory": "256"}}))
