"""The GCP Batch runner's credentials and waiting options, each seen taking effect.

Credentials: tests/runners/gcp_fake_auth.py plays Google's token endpoint and IAM Credentials with a key made for
the test; google-auth's real service-account and impersonated credentials talk to it, and the Batch and Logging
fake (tests/runners/gcp_fake.py) refuses any request whose bearer token the auth fake did not issue or sign. So the
identity and scopes each Batch call carries are read from the calls themselves. Services: gcp_services.py.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gcp_services import PROJECT, REGION, SHELL_IMAGE, Services, Unavailable, running_services
from runner_conformance import ListSink  # tests/runners/ is on sys.path

from runners import RunnerError, runner_for
from runners.base import CommandSpec, RunControl, RunResult

RUNNER = f"runner@{PROJECT}.iam.gserviceaccount.com"
TARGET = f"target@{PROJECT}.iam.gserviceaccount.com"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
IAM_SCOPE = "https://www.googleapis.com/auth/iam"
FAST = {"completionCheckInterval": "PT0.2S", "waitForLogInterval": "PT0S"}


@pytest.fixture(scope="module")
def gcp() -> Iterator[tuple[Services, Any]]:
    try:
        from gcp_fake_auth import FakeGoogleAuth

        with running_services() as services, FakeGoogleAuth() as auth:
            os.environ["CELESTRA_GCP_IAM_ENDPOINT"] = auth.url  # restored by running_services
            yield services, auth
    except (Unavailable, ImportError) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"GCP Batch test services unavailable in CI: {exc}")
        pytest.skip(f"GCP Batch test services unavailable: {exc}")


@pytest.fixture
def services(gcp: tuple[Services, Any]) -> Iterator[Services]:
    """The services with the Batch fake checking tokens; after each test, no container and no job is left."""
    fake, auth = gcp[0].fake, gcp[1]
    fake.accepts = lambda header: auth.identity(header) is not None
    fake.authorizations.clear()
    jobs_before = set(fake.jobs)
    yield gcp[0]
    fake.accepts = None
    deadline = time.monotonic() + 5.0
    while (fake.containers_left() or set(fake.jobs) - jobs_before) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not fake.containers_left() and set(fake.jobs) == jobs_before, "a container or job was left behind"


@pytest.fixture
def auth(gcp: tuple[Services, Any]) -> Any:
    return gcp[1]


def run(workdir: Path, script: str, timeout: float | None = None, **properties: Any) -> tuple[RunResult, ListSink]:
    runner = runner_for("gcp_batch", {"projectId": PROJECT, "region": REGION, **FAST, **properties})
    spec = CommandSpec(command=["/bin/sh", "-c", script], working_dir=workdir, container_image=SHELL_IMAGE,
                       name=f"celestra-test-{uuid.uuid4().hex[:12]}", timeout=timeout)
    sink = ListSink()
    return runner.run(spec, sink, RunControl()), sink


def batch_identities(services: Services, auth: Any) -> set[Any]:
    """Who the Batch calls of the test spoke for (one identity each; None for a call without a token)."""
    return {auth.identity(header) for path, header in services.fake.authorizations if path.startswith("/v1/")}


def key_of(auth: Any, email: str) -> str:
    return json.dumps(auth.service_account_info(email))


def test_without_credentials_an_emulator_is_called_anonymously(services: Services, tmp_path: Path) -> None:
    services.fake.accepts = None  # the default of the other GCP tests: redirected endpoints, no credentials
    result, sink = run(tmp_path, "echo anonymous")
    assert result.exit_code == 0 and sink.stream("stdout") == ["anonymous"]
    assert {header for _, header in services.fake.authorizations} == {None}


def test_service_account_key_signs_every_call(services: Services, auth: Any, tmp_path: Path) -> None:
    """serviceAccount (a key file's JSON) is who the Batch and Logging calls speak for, with the default scope."""
    result, sink = run(tmp_path, "echo as the account", serviceAccount=key_of(auth, RUNNER))
    assert result.exit_code == 0 and sink.stream("stdout") == ["as the account"]
    identities = {auth.identity(header) for _, header in services.fake.authorizations}
    assert {(i.principal, i.scopes) for i in identities} == {(RUNNER, (CLOUD_PLATFORM,))}
    assert any(path == "/v2/entries:list" for path, _ in services.fake.authorizations)


def test_scopes_are_the_scopes_of_the_token(services: Services, auth: Any, tmp_path: Path) -> None:
    scopes = ["https://www.googleapis.com/auth/batch", "https://www.googleapis.com/auth/logging.read"]
    result, _ = run(tmp_path, "true", serviceAccount=key_of(auth, RUNNER), scopes=scopes)
    assert result.exit_code == 0
    assert {(i.principal, i.scopes) for i in batch_identities(services, auth)} == {(RUNNER, tuple(scopes))}


def test_impersonated_service_account_is_who_the_calls_speak_for(services: Services, auth: Any,
                                                                  tmp_path: Path) -> None:
    """impersonatedServiceAccount: the key's account asks IAM for a token of the target (with the IAM scope, as
    google-auth does), and every Batch call carries the target's token with the flow's scopes."""
    scopes = ["https://www.googleapis.com/auth/batch"]
    result, sink = run(tmp_path, "echo impersonated", serviceAccount=key_of(auth, RUNNER),
                       impersonatedServiceAccount=TARGET, scopes=scopes)
    assert result.exit_code == 0 and sink.stream("stdout") == ["impersonated"]
    identities = batch_identities(services, auth)
    expected = (TARGET, tuple(scopes), f"impersonated by {RUNNER}")
    assert {(i.principal, i.scopes, i.via) for i in identities} == {expected}
    assert any(g.principal == RUNNER and IAM_SCOPE in g.scopes for g in auth.grants), "no IAM-scoped source token"


def test_a_key_google_does_not_know_is_refused(services: Services, auth: Any, tmp_path: Path) -> None:
    """A key signed by another private key: no token, no job, and the error says so."""
    from gcp_fake_auth import FakeGoogleAuth

    stranger = json.loads(key_of(FakeGoogleAuth(), RUNNER))
    stranger["token_uri"] = f"{auth.url}/token"
    with pytest.raises(RunnerError, match="GCP Batch refused the credentials .* invalid authentication"):
        run(tmp_path, "echo never", serviceAccount=json.dumps(stranger))
    assert not services.fake.containers_left()


def test_wait_until_completion_bounds_a_run_without_timeout(services: Services, tmp_path: Path) -> None:
    """Without a task timeout, waitUntilCompletion is the job's maxRunDuration and the run's wait; past it the
    job is stopped and the run fails saying so."""
    services.fake.accepts = None
    started = time.monotonic()
    with pytest.raises(RunnerError, match=r"did not complete within waitUntilCompletion \(3 s\)"):
        run(tmp_path, "echo up; sleep 30", waitUntilCompletion="PT3S")
    assert time.monotonic() - started < 15
    task = services.fake.created[-1]["taskGroups"][0]["taskSpec"]
    assert task["maxRunDuration"] == "3s"


def test_a_task_timeout_takes_precedence_over_wait_until_completion(services: Services, tmp_path: Path) -> None:
    services.fake.accepts = None
    result, sink = run(tmp_path, "sleep 2; echo done", timeout=30, waitUntilCompletion="PT1S")
    assert result.exit_code == 0 and not result.timed_out and sink.stream("stdout") == ["done"]
    assert services.fake.created[-1]["taskGroups"][0]["taskSpec"]["maxRunDuration"] == "30s"
