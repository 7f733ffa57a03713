"""The GCP Batch runner with the real google-cloud-batch / -logging / -storage clients, against
tests/runners/gcp_fake.py (Batch + Logging, running each job's container on the local Docker engine) and
gcp-storage-emulator (GCS), started by tests/runners/gcp_services.py.

Needs DOCKER_HOST and the local image celestra/busybox:local; skips locally when they or the GCP packages are
absent, fails in CI. The conformance cases that assume a local start-up time are overridden below, with why.
"""

from __future__ import annotations

import datetime
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gcp_services import BUCKET, PROJECT, REGION, SHELL_IMAGE, Services, Unavailable, free_port, running_services
from runner_conformance import ListSink, RunnerConformance, wait_until  # tests/runners/ is on sys.path

from runners import RunnerError, TaskRunner, runner_for
from runners.base import CommandSpec, RunControl

FAST = {"completionCheckInterval": "PT0.2S", "waitForLogInterval": "PT0S"}  # the fake has no ingestion delay


@pytest.fixture(scope="module")
def gcp() -> Iterator[Services]:
    try:
        with running_services() as services:
            yield services
    except Unavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"GCP Batch test services unavailable in CI: {exc}")
        pytest.skip(f"GCP Batch test services unavailable: {exc}")


TEST_LABEL = "celestra.test"


def batch_runner(**extra: Any) -> TaskRunner:
    return runner_for("gcp_batch", {"projectId": PROJECT, "region": REGION, "bucket": BUCKET, **FAST, **extra})


class TestGcpBatchRunner(RunnerConformance):  # type: ignore[misc]
    services: Services

    @pytest.fixture(autouse=True)
    def _nothing_left(self, gcp: Services) -> Iterator[None]:
        """After each test: no container of the fake on the engine, and (delete: true) no job and no prefix."""
        type(self).services = gcp
        jobs_before = set(gcp.fake.jobs)
        yield
        assert wait_until(lambda: not gcp.fake.containers_left(), 5.0), f"left: {gcp.fake.containers_left()}"
        kept: set[str | None] = getattr(self, "kept_jobs", set())
        assert wait_until(lambda: set(gcp.fake.jobs) - jobs_before - kept == set(), 5.0), (
            f"jobs left behind: {set(gcp.fake.jobs) - jobs_before - kept}")

    def make_runner(self) -> TaskRunner:
        return batch_runner()

    def spec(self, workdir: Path, script: str, **kwargs: object) -> CommandSpec:  # type: ignore[override]
        kwargs.setdefault("container_image", SHELL_IMAGE)
        kwargs.setdefault("labels", {TEST_LABEL: "gcp", "celestra.taskrun": uuid.uuid4().hex})
        kwargs.setdefault("name", f"celestra-test-{uuid.uuid4().hex[:12]}")
        return CommandSpec(command=["/bin/sh", "-c", script], working_dir=workdir, **kwargs)  # type: ignore[arg-type]

    def live_processes(self, external_id: str) -> list[int]:
        """What still runs of a Batch job: its container on the engine, or the job while it is not finished."""
        fake = self.services.fake
        running = list(range(len(fake.containers_left(external_id))))
        job = fake.jobs.get(external_id)
        if job is not None and job["status"]["state"] not in (4, 5, 8):  # SUCCEEDED, FAILED, CANCELLED
            running.append(-1)
        return [1 + index for index, _ in enumerate(running)]

    # -- conformance cases adapted to a remote job ------------------------------------------------------------
    def test_cancel_with_a_background_child_holding_the_output(self, runner: TaskRunner, workdir: Path) -> None:
        """The base cancels 0.5 s after run() starts and expects the command's first line by then; a Batch job is
        still being created and scheduled at that point (minutes on real GCP), so the cancel comes once the
        leader's line has arrived instead. What the case protects is unchanged: run() returns promptly, the
        line is not lost, and nothing of the job outlives run()."""
        ids: list[str] = []
        control = RunControl(on_external_id=ids.append)
        sink = ListSink()
        killed_at: list[float] = []

        def kill_after_the_line() -> None:
            sink.wait_for("leader done", 20.0)
            killed_at.append(time.monotonic())
            control.kill.set()

        killer = threading.Thread(target=kill_after_the_line, daemon=True)
        killer.start()
        runner.run(self.spec(workdir, self.LINGERING), sink, control)
        returned = time.monotonic()
        killer.join()
        assert ("leader done", "stdout") in sink.lines
        assert returned - killed_at[0] < 3.5
        assert ids and wait_until(lambda: not self.live_processes(ids[0]), 1.0), "the job outlived run()"

    def test_timeout_with_a_background_child_holding_the_output(self, runner: TaskRunner, workdir: Path) -> None:
        """As the suite's with a 4 s timeout instead of 1 s: the task's timeout counts from run() (job creation
        included), and creating and scheduling the job takes 0.5-1.1 s here, more on a busy machine, so a 1 s
        timeout can end the job before its leader has printed and the case would test nothing."""
        ids: list[str] = []
        control = RunControl(on_external_id=ids.append)
        _, sink, elapsed = self.run(runner, self.spec(workdir, self.LINGERING, timeout=4), control)
        assert ("leader done", "stdout") in sink.lines
        assert elapsed < 5.5, f"timeout=4 but run() returned after {elapsed:.2f}s (waited for the background child)"
        assert ids and wait_until(lambda: not self.live_processes(ids[0]), 1.0), "the job outlived run()"

    # -- only the Batch runner --------------------------------------------------------------------------------
    def test_the_command_really_runs_in_a_batch_container(self, runner: TaskRunner, workdir: Path) -> None:
        fake = self.services.fake
        seen: list[list[str]] = []
        ids: list[str] = []

        def on_external_id(external_id: str) -> None:
            ids.append(external_id)

        sink_lines: list[str] = []

        def sink(line: str, stream: str) -> None:
            sink_lines.append(line)
            if line == "in-docker" and ids:
                seen.append(fake.containers_left(ids[0]))

        result = runner.run(self.spec(workdir, "test -f /.dockerenv && echo in-docker; sleep 0.5; pwd"), sink,
                            RunControl(on_external_id=on_external_id))
        assert result.exit_code == 0
        assert sink_lines == ["in-docker", "/celestra/work"]
        assert ids and ids[0] == result.external_id
        assert ids[0].startswith(f"projects/{PROJECT}/locations/{REGION}/jobs/")
        assert seen and seen[0], "no container of the job existed while its line arrived"
        assert ("POST", f"/v1/projects/{PROJECT}/locations/{REGION}/jobs") in fake.requests
        assert ("POST", "/v2/entries:list") in fake.requests

    def test_lines_arrive_before_the_job_ends(self, runner: TaskRunner, workdir: Path) -> None:
        fake = self.services.fake
        states: list[int] = []
        ids: list[str] = []

        def sink(line: str, stream: str) -> None:
            if line == "first":
                states.append(fake.jobs[ids[0]]["status"]["state"])

        result = runner.run(self.spec(workdir, "echo first; sleep 2; echo second"), sink,
                            RunControl(on_external_id=ids.append))
        assert result.exit_code == 0
        assert states == [3], "'first' must reach the sink while the job is RUNNING"

    def test_job_body_is_what_kestra_sends(self, workdir: Path) -> None:
        runner = batch_runner(machineType="n2-standard-2", reservation="my-res", entryPoint=["/bin/sh", "-c"],
                              computeResource={"cpu": "1000", "memory": "512MB", "bootDisk": "10GB"},
                              networkInterfaces=[{"network": "projects/p/global/networks/n",
                                                  "subnetwork": "projects/p/regions/r/subnetworks/s"}])
        spec = self.spec(workdir, "true", timeout=120)
        spec.command = ["echo entry-ok"]  # the entrypoint is `/bin/sh -c`: commands are its arguments
        (workdir / "in.txt").write_text("x")
        result, sink, _ = self.run(runner, spec)
        assert result.exit_code == 0 and sink.lines == [("entry-ok", "stdout")]
        body = self.services.fake.created[-1]
        task = body["taskGroups"][0]["taskSpec"]
        assert body["taskGroups"][0]["taskCount"] == "1"
        assert body["logsPolicy"]["destination"] == 1  # CLOUD_LOGGING, as an integer enum
        assert body["labels"]["celestra-taskrun"] == spec.labels["celestra.taskrun"]
        policy = body["allocationPolicy"]["instances"][0]["policy"]
        assert policy == {"machineType": "n2-standard-2", "reservation": "my-res"}
        assert body["allocationPolicy"]["network"]["networkInterfaces"] == [
            {"network": "projects/p/global/networks/n", "subnetwork": "projects/p/regions/r/subnetworks/s"}]
        assert task["computeResource"] == {"cpuMilli": "1000", "memoryMib": "512", "bootDiskMib": "10240"}
        assert task["maxRunDuration"] == "120s"
        assert task["volumes"] == [{"gcs": {"remotePath": f"{BUCKET}/celestra/{spec.name}"},
                                    "mountPath": "/mnt/disks/share"}]
        container = task["runnables"][0]["container"]
        assert container["imageUri"] == SHELL_IMAGE and container["entrypoint"] == "/bin/sh -c"
        assert container["volumes"] == ["/mnt/disks/share:/celestra/work"]

    def test_files_travel_through_the_bucket(self, workdir: Path) -> None:
        gcp = self.services
        runner = batch_runner(delete=False)
        (workdir / "in.txt").write_text("from the worker\n")
        spec = self.spec(workdir, "cat in.txt; echo made > out.txt; echo r > _outputs/r.txt", output_files=["*.txt"])
        result, sink, _ = self.run(runner, spec)
        self.kept_jobs = {result.external_id}
        prefix = f"celestra/{spec.name}/"
        assert result.exit_code == 0 and sink.stream("stdout") == ["from the worker"]
        assert {"in.txt", "out.txt", "_outputs/r.txt"} <= {n[len(prefix):] for n in gcp.blobs(prefix)}
        assert {k: v.read_text() for k, v in result.output_files.items()} == {
            "in.txt": "from the worker\n", "out.txt": "made\n", "r.txt": "r\n"}
        assert gcp.fake.jobs[result.external_id]["status"]["state"] == 4  # kept: delete is false
        gcp.delete_prefix(prefix)
        gcp.fake.end_job(str(result.external_id), delete=True)

    def test_delete_removes_the_job_and_the_prefix(self, runner: TaskRunner, workdir: Path) -> None:
        (workdir / "in.txt").write_text("x")
        spec = self.spec(workdir, "cat in.txt > out.txt", output_files=["out.txt"])
        result, _, _ = self.run(runner, spec)
        assert result.exit_code == 0 and result.output_files["out.txt"].read_text() == "x"
        assert self.services.blobs(f"celestra/{spec.name}/") == []
        assert wait_until(lambda: result.external_id not in self.services.fake.jobs, 5.0)

    @pytest.mark.parametrize("how", ["cancel", "timeout"])
    def test_cancel_and_timeout_delete_the_job_and_its_container(self, runner: TaskRunner, workdir: Path,
                                                                 how: str) -> None:
        fake = self.services.fake
        ids: list[str] = []
        control = RunControl(on_external_id=ids.append)
        if how == "cancel":
            threading.Timer(1.5, control.kill.set).start()
        spec = self.spec(workdir, "echo up; sleep 60", timeout=1.5 if how == "timeout" else None)
        result, sink, elapsed = self.run(runner, spec, control)
        assert (result.killed, result.timed_out) == ((True, False) if how == "cancel" else (False, True))
        assert elapsed < 5.0
        assert ("up", "stdout") in sink.lines
        assert ids[0] not in fake.jobs and fake.containers_left(ids[0]) == []  # gone when run() returns
        assert ("DELETE", "/v1/" + ids[0]) in fake.requests

    def test_cancel_with_delete_false_cancels_and_keeps_the_job(self, workdir: Path) -> None:
        fake = self.services.fake
        control = RunControl()
        threading.Timer(1.0, control.kill.set).start()
        result, _, _ = self.run(batch_runner(delete=False), self.spec(workdir, "sleep 60"), control)
        self.kept_jobs = {result.external_id}
        try:
            assert result.killed and fake.jobs[str(result.external_id)]["status"]["state"] == 8  # CANCELLED
            assert fake.containers_left(result.external_id) == []  # gone when run() returns
        finally:  # what delete: false keeps is this test's to remove, whatever happened
            self.services.delete_prefix("celestra/" + str(result.external_id).split("/")[-1] + "/")
            fake.end_job(str(result.external_id), delete=True)

    @staticmethod
    def create_job_as_a_dead_worker_did(spec: CommandSpec) -> str:
        """Upload and create the attempt's job the runner's way, without following it; returns the job name."""
        from runners.gcp_batch import job_id_for

        runner = batch_runner()
        clients = runner._clients()  # type: ignore[attr-defined]
        name = f"projects/{PROJECT}/locations/{REGION}/jobs/{job_id_for(spec.name)}"
        runner._upload(clients, spec, name)  # type: ignore[attr-defined]
        clients.batch.create_job(parent=name.rsplit("/jobs/", 1)[0], job_id=name.rsplit("/", 1)[1],
                                 job=runner._job(spec, name))  # type: ignore[attr-defined]
        return name

    def test_a_job_left_by_a_dead_worker_is_followed_not_duplicated(self, workdir: Path) -> None:
        spec = self.spec(workdir, "echo duplicate")
        name = self.create_job_as_a_dead_worker_did(
            self.spec(workdir, "echo started; sleep 1.5; echo finished", name=spec.name))
        creates = sum(1 for method, path in self.services.fake.requests if method == "POST" and path.endswith("/jobs"))
        result, sink, _ = self.run(batch_runner(), spec)
        assert result.exit_code == 0 and result.external_id == name
        assert sink.stream("stdout") == ["started", "finished"]  # the orphan's output, not a new run's
        assert sum(1 for m, p in self.services.fake.requests if m == "POST" and p.endswith("/jobs")) == creates

    def test_resume_follows_a_job_by_its_external_id(self, workdir: Path) -> None:
        runner = batch_runner(delete=False)  # the resumed follower below owns the cleanup
        spec = self.spec(workdir, "echo resumed-line; echo done > _outputs/d.txt")
        ids: list[str] = []
        thread_control = RunControl(on_external_id=ids.append)
        # A first follower stands for the worker that created the job; a second one resumes it by id.
        first = threading.Thread(target=lambda: runner.run(spec, lambda *_: None, thread_control), daemon=True)
        first.start()
        assert wait_until(lambda: bool(ids), 10.0)
        resumed, sink = batch_runner(), []
        result = resumed.resume(ids[0], spec, lambda line, stream: sink.append(line), RunControl())
        first.join(20)
        assert result.exit_code == 0 and sink == ["resumed-line"]
        assert result.output_files["d.txt"].read_text() == "done\n"

    def test_batch_max_run_duration_is_a_timeout(self, workdir: Path) -> None:
        """Batch itself stops a task past maxRunDuration (reserved exit code 50005): reported as a timeout."""
        spec = self.spec(workdir, "echo up; sleep 30", timeout=1)
        self.create_job_as_a_dead_worker_did(spec)  # maxRunDuration: 1s
        spec.timeout = 60  # the worker's own deadline is out of the way: only Batch's limit applies
        result, sink, elapsed = self.run(batch_runner(), spec)
        assert (result.exit_code, result.timed_out, result.killed) == (50005, True, False)
        assert sink.lines == [("up", "stdout")] and elapsed < 5.0

    def test_resume_false_starts_a_new_job(self, workdir: Path) -> None:
        spec = self.spec(workdir, "echo fresh")
        first, _, _ = self.run(batch_runner(resume=False), spec)
        second, sink, _ = self.run(batch_runner(resume=False), spec)
        assert first.external_id != second.external_id and sink.lines == [("fresh", "stdout")]

    def test_log_tail_gives_late_entries_once(self) -> None:
        """Cloud Logging may list an entry after newer ones: the tail re-reads a window and skips what it gave."""
        from gcp_fake_logs import now_rfc3339
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import logging as gcp_logging

        from runners.gcp_logs import LogTail

        fake = self.services.fake
        client = gcp_logging.Client(project=PROJECT, credentials=AnonymousCredentials(), _use_grpc=False,
                                    client_options={"api_endpoint": fake.logging_url})
        uid, base = f"late-{uuid.uuid4().hex[:8]}", time.time()

        def entry(text: str, offset: float, severity: str = "INFO") -> dict[str, Any]:
            return {"logName": f"projects/{PROJECT}/logs/batch_task_logs", "insertId": uuid.uuid4().hex,
                    "timestamp": now_rfc3339(base + offset), "severity": severity, "textPayload": text,
                    "labels": {"job_uid": uid}}

        tail = LogTail(client, PROJECT, uid, datetime.datetime.fromtimestamp(base - 1, datetime.UTC))
        got: list[tuple[str, str]] = []
        fake.logs.append(entry("a", 0.0))
        fake.logs.append(entry("c", 2.0, "ERROR"))
        assert tail.poll(lambda line, stream: got.append((line, stream))) == 2
        fake.logs.append(entry("b-late", 1.0))  # listed only now, with an older timestamp
        fake.logs.append(entry("d", 3.0))
        assert tail.poll(lambda line, stream: got.append((line, stream))) == 2
        assert tail.poll(lambda line, stream: got.append((line, stream))) == 0
        assert got == [("a", "stdout"), ("c", "stderr"), ("b-late", "stdout"), ("d", "stdout")]

    def test_missing_image_is_a_clear_error(self, runner: TaskRunner, workdir: Path) -> None:
        with pytest.raises(RunnerError, match="failed before its command ran: .*no-such/image:1.*not found"):
            runner.run(self.spec(workdir, "true", container_image="no-such/image:1"), lambda *_: None, RunControl())

    def test_files_without_a_bucket_are_a_clear_error(self, workdir: Path) -> None:
        runner = runner_for("gcp_batch", {"projectId": PROJECT, "region": REGION, **FAST})
        (workdir / "in.txt").write_text("x")
        with pytest.raises(RunnerError, match="bucket"):
            runner.run(self.spec(workdir, "cat in.txt"), lambda *_: None, RunControl())

    def test_without_a_bucket_a_plain_command_runs(self, workdir: Path) -> None:
        runner = runner_for("gcp_batch", {"projectId": PROJECT, "region": REGION, **FAST})
        result, sink, _ = self.run(runner, self.spec(workdir, "echo no-files"))
        assert result.exit_code == 0 and sink.lines == [("no-files", "stdout")]

    def test_unreachable_endpoint_fails_fast(self, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("CELESTRA_GCP_BATCH_ENDPOINT", f"http://127.0.0.1:{free_port()}")
        runner = runner_for("gcp_batch", {"projectId": PROJECT, "region": REGION, **FAST})
        started = time.monotonic()
        with pytest.raises(RunnerError, match="Cannot reach GCP Batch"):
            runner.run(self.spec(workdir, "true"), lambda *_: None, RunControl())
        assert time.monotonic() - started < 5.0


# -- no services needed ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("properties", [{"region": "r"}, {"projectId": "p"}, {}])
def test_project_and_region_are_required(properties: dict[str, str]) -> None:
    pytest.importorskip("google.cloud.batch_v1")
    with pytest.raises(RunnerError, match="must be set"):
        runner_for("gcp_batch", properties)


def test_unknown_property_is_rejected() -> None:
    pytest.importorskip("google.cloud.batch_v1")
    with pytest.raises(RunnerError, match="machineTyp"):
        runner_for("gcp_batch", {"projectId": "p", "region": "r", "machineTyp": "e2"})


def test_helpers() -> None:
    pytest.importorskip("google.cloud.batch_v1")
    from runners.gcp_batch import gcp_labels, glob_match, job_id_for, mebibytes

    assert job_id_for("celestra-AbC_1-2") == "celestra-abc-1-2"
    assert job_id_for("9lives") == "celestra-9lives"
    long = job_id_for("x" * 100)
    assert len(long) <= 63 and long == job_id_for("x" * 100) != job_id_for("x" * 101)
    assert gcp_labels({"celestra.taskrun": "AbC"}) == {"celestra-taskrun": "abc"}
    assert (mebibytes("512MB"), mebibytes("2GB"), mebibytes("1GiB"), mebibytes(256), mebibytes(None)) == (
        512, 2048, 1024, 256, 0)
    assert glob_match("a.txt", "*.txt") and not glob_match("d/a.txt", "*.txt")
    assert glob_match("d/a.csv", "d/*.csv") and glob_match("d/e/a.csv", "**/*.csv") and glob_match("a.csv", "**/*.csv")


# -- a script task on the GCP Batch runner, end to end (embedded) ---------------------------------------------
def test_script_task_runs_as_a_batch_job_with_files_both_ways(gcp: Services, tmp_path: Path) -> None:
    from app.client import Client
    from app.settings import Settings

    client = Client(settings=Settings(home=tmp_path / "home"))
    source = f"""id: gcp_batch_script
namespace: company.team
tasks:
  - id: sh
    type: io.kestra.plugin.scripts.shell.Script
    containerImage: {SHELL_IMAGE}
    inputFiles:
      in.txt: from the worker
    outputFiles: [out.txt]
    taskRunner:
      type: io.kestra.plugin.ee.gcp.runner.Batch
      projectId: {PROJECT}
      region: {REGION}
      bucket: {BUCKET}
      completionCheckInterval: PT0.2S
      waitForLogInterval: PT0S
    script: |
      test -f /.dockerenv && echo in-docker
      echo "input $(cat in.txt)"
      echo "made in the job" > out.txt
      echo "bucket $BUCKET_PATH"
      echo '::{{"outputs":{{"cwd":"'"$(pwd)"'","wd":"'"$WORKING_DIR"'"}}}}::'
"""
    ex = client.run(source, timeout=120)
    run = ex.task_runs[0]
    lines = [row["message"] for row in client.logs(ex.id)]
    assert ex.state.value == "SUCCESS", (ex.to_json(), lines)
    assert "in-docker" in lines and "input from the worker" in lines, lines
    assert run.external_id and run.external_id.startswith(f"projects/{PROJECT}/locations/{REGION}/jobs/celestra-")
    assert any(line.startswith(f"bucket gs://{BUCKET}/celestra/") for line in lines), lines
    assert client.download(run.outputs["outputFiles"]["out.txt"]) == b"made in the job\n"
    assert run.outputs["vars"] == {"cwd": "/celestra/work", "wd": "/celestra/work"}
    assert wait_until(lambda: run.external_id not in gcp.fake.jobs and not gcp.fake.containers_left(), 5.0)
    assert gcp.blobs("celestra/") == []
