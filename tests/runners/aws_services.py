"""The services the AWS Batch runner tests run against: moto's real server on a free port (Batch, ECS, IAM, STS,
S3, CloudWatch Logs), its Batch jobs running as containers on the Docker engine of DOCKER_HOST.

`running_aws()` starts moto, creates a Fargate compute environment, a job queue, a role and a bucket, and yields
an `Aws` that makes clients and runner properties for them. It skips locally and fails in CI when a service is
missing. moto runs each job with MOTO_DOCKER_NETWORK_MODE=host, so the job's bootstrap reaches moto's S3 on
127.0.0.1 through the presigned URLs the runner made.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import docker
import pytest
from aws_moto_batch import live_cloudwatch_logs  # imports moto

SHELL_IMAGE = "celestra/busybox:local"
PYTHON_IMAGE = "celestra/python:3.11"
REGION = "us-east-1"
RUN_LABEL = uuid.uuid4().hex[:10]  # in every job (so container) name of this test run


@dataclass
class Aws:
    endpoint: str
    compute_environment: str
    queue: str
    bucket: str
    role: str
    engine: Any

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id="test", aws_secret_access_key="test")

    def properties(self, **overrides: Any) -> dict[str, Any]:
        props: dict[str, Any] = {
            "accessKeyId": "test", "secretKeyId": "test", "region": REGION, "endpointOverride": self.endpoint,
            "computeEnvironmentArn": self.compute_environment, "jobQueueArn": self.queue, "bucket": self.bucket,
            "executionRoleArn": self.role, "taskRoleArn": self.role, "completionCheckInterval": "PT0.2S",
            "resources": {"request": {"cpu": "0.25", "memory": "512"}},
        }
        props.update(overrides)
        return {k: v for k, v in props.items() if v is not None}


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"AWS Batch test services unavailable in CI: {reason}")
    pytest.skip(f"no Docker engine with {SHELL_IMAGE} or no moto server: {reason}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def running_aws() -> Iterator[Aws]:
    """The generator behind the `aws` fixture (tests/runners/conftest.py)."""
    try:
        engine = docker.from_env()
        engine.ping()
        engine.images.get(SHELL_IMAGE)
        engine.images.get(PYTHON_IMAGE)
        from moto.server import ThreadedMotoServer
    except Exception as exc:
        _unavailable(str(exc))
    os.environ["MOTO_DOCKER_NETWORK_MODE"] = "host"  # no bridge network on this engine; moto reads it per job
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        setup = Aws(endpoint, "", "", f"celestra-{RUN_LABEL}", "", engine)
        role = create_role(setup, "celestra-batch")
        ec2 = setup.client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
        group = ec2.create_security_group(GroupName="celestra", Description="batch", VpcId=vpc)["GroupId"]
        batch = setup.client("batch")
        environment = batch.create_compute_environment(
            computeEnvironmentName="celestra-fargate", type="MANAGED", state="ENABLED", serviceRole=role,
            computeResources={"type": "FARGATE", "maxvCpus": 16, "subnets": [subnet], "securityGroupIds": [group]},
        )["computeEnvironmentArn"]
        queue = batch.create_job_queue(jobQueueName="celestra-tests", state="ENABLED", priority=1,
                                       computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment}])
        setup.client("s3").create_bucket(Bucket=setup.bucket)
        aws = Aws(endpoint, environment, queue["jobQueueArn"], setup.bucket, role, engine)
    except Exception as exc:
        server.stop()
        _unavailable(f"moto setup failed: {exc}")
    with live_cloudwatch_logs():
        yield aws
    server.stop()
    engine.close()


TRUST_ANYONE = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]})
ALLOW_ALL = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})


def create_role(aws: Aws, name: str, allowed_all: bool = False) -> str:
    """A role anyone may assume (moto checks the trust policy's shape once its authentication is on), allowed
    everything when `allowed_all` (what moto's IAM checks then look at)."""
    iam = aws.client("iam")
    arn = str(iam.create_role(RoleName=name, AssumeRolePolicyDocument=TRUST_ANYONE)["Role"]["Arn"])
    if allowed_all:
        iam.put_role_policy(RoleName=name, PolicyName="all", PolicyDocument=ALLOW_ALL)
    return arn


@dataclass
class Keys:
    access_key_id: str
    secret_access_key: str


@contextlib.contextmanager
def authenticated(aws: Aws, user: str) -> Iterator[Keys]:
    """moto checks every request's SigV4 signature and IAM identity while inside: the keys of `user`, an IAM user
    allowed everything, are yielded; the shared "test" keys no longer work. Restored on the way out."""
    iam = aws.client("iam")
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="all", PolicyDocument=ALLOW_ALL)
    key = iam.create_access_key(UserName=user)["AccessKey"]

    def initial_unauthenticated_actions(count: str) -> None:
        # text/plain: moto reads the raw body, which a form content type would hide
        request = urllib.request.Request(f"{aws.endpoint}/moto-api/reset-auth", data=count.encode(), method="POST",
                                         headers={"Content-Type": "text/plain"})
        urllib.request.urlopen(request, timeout=10).close()

    initial_unauthenticated_actions("0")
    try:
        yield Keys(key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        initial_unauthenticated_actions("inf")


def job_containers(engine: Any, needle: str = RUN_LABEL) -> list[str]:
    """Containers moto made for our jobs: it names them `<job name>-<job id>`. The low-level list: the SDK's
    `containers.list` inspects each one and fails on a container removed in between."""
    return [c["Names"][0].lstrip("/") for c in engine.api.containers(all=True, filters={"name": needle})]


def active_job_definitions(aws: Aws) -> list[str]:
    found = aws.client("batch").describe_job_definitions(status="ACTIVE")["jobDefinitions"]
    return [d["jobDefinitionArn"] for d in found if RUN_LABEL in d["jobDefinitionName"]]


def definition_status(aws: Aws, job_id: str) -> str:
    """ACTIVE or INACTIVE (deregistered): the status of the job definition a job ran from."""
    batch = aws.client("batch")
    arn = batch.describe_jobs(jobs=[job_id])["jobs"][0]["jobDefinition"]
    return str(batch.describe_job_definitions(jobDefinitions=[arn])["jobDefinitions"][0]["status"])


def objects_left(aws: Aws) -> list[str]:
    return [o["Key"] for o in aws.client("s3").list_objects_v2(Bucket=aws.bucket).get("Contents", [])]


def assert_nothing_left(aws: Aws) -> None:
    """No job container, registered job definition or S3 object of this test run is left."""
    # moto removes a job's container right after marking the job stopped: allow it that moment
    deadline = time.monotonic() + 5.0
    while job_containers(aws.engine) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = job_containers(aws.engine)
    for name in left:
        with contextlib.suppress(docker.errors.NotFound):
            aws.engine.api.remove_container(name, force=True)
    assert not left, f"containers left behind: {left}"
    assert not active_job_definitions(aws), "job definitions left registered"
    assert not objects_left(aws), "S3 objects of the task run left behind"
