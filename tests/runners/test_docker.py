"""The Docker runner on a real Docker engine: the conformance suite, plus what only a container runner promises.

Needs DOCKER_HOST (`.ci/start-dockerd` prints it) and the local images of deploy/images/build.sh. Skips locally
when no engine answers; fails in CI.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from runners import RunnerError, TaskRunner, runner_for
from runners.base import CommandSpec, RunControl
from runners.docker import DockerRunner

docker = pytest.importorskip("docker")
SHELL_IMAGE = "celestra/busybox:local"
PYTHON_IMAGE = "celestra/python:3.11"


def _engine() -> Any:
    try:
        client = docker.from_env()
        client.ping()
        client.images.get(SHELL_IMAGE)
        return client
    except Exception as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Docker engine or test image unavailable in CI: {exc}")
        pytest.skip(f"no Docker engine with {SHELL_IMAGE} (run .ci/start-dockerd and deploy/images/build.sh): {exc}")


@pytest.fixture(scope="module")
def engine() -> Any:
    client = _engine()
    yield client
    client.close()


from runner_conformance import ListSink, RunnerConformance, wait_until  # noqa: E402  (tests/runners/ is on sys.path)

TEST_LABEL = "celestra.test"

# A worker that starts a container and is SIGKILLed while it runs. Its sink stores each line the way the worker's
# log buffer does: a row stamped with the moment the line arrived.
DYING_WORKER = """
import json, sys, threading
from datetime import UTC, datetime
from pathlib import Path
from runners import runner_for
from runners.base import CommandSpec, RunControl

args, stored, lock = json.loads(sys.argv[1]), open(sys.argv[2], "a"), threading.Lock()

def sink(line, stream):
    with lock:
        stored.write(f"{datetime.now(UTC).isoformat()}\\t{stream}\\t{line}\\n")
        stored.flush()

spec = CommandSpec(command=args["command"], working_dir=Path(args["working_dir"]), labels=args["labels"],
                   name=args["name"], container_image=args["image"])
runner_for("docker", {"pullPolicy": "NEVER"}).run(spec, sink, RunControl())
"""


class TestDockerRunner(RunnerConformance):  # type: ignore[misc]
    run_label = uuid.uuid4().hex[:12]

    @pytest.fixture(autouse=True)
    def _no_container_left(self, engine: Any) -> Any:
        yield
        left = engine.containers.list(all=True, filters={"label": f"{TEST_LABEL}={self.run_label}"})
        names = [c.name for c in left]
        for container in left:
            container.remove(force=True)
        assert not names, f"containers left behind: {names}"

    def make_runner(self) -> TaskRunner:
        return runner_for("docker", {"pullPolicy": "NEVER"})

    def spec(self, workdir: Path, script: str, **kwargs: object) -> CommandSpec:  # type: ignore[override]
        kwargs.setdefault("container_image", SHELL_IMAGE)
        kwargs.setdefault("labels", {TEST_LABEL: self.run_label, "celestra.taskrun": uuid.uuid4().hex})
        kwargs.setdefault("name", f"celestra-test-{uuid.uuid4().hex[:12]}")
        return CommandSpec(command=["/bin/sh", "-c", script], working_dir=workdir, **kwargs)  # type: ignore[arg-type]

    def live_processes(self, external_id: str) -> list[int]:
        """A container counts as live while it exists at all (it must be removed, not only stopped)."""
        try:
            container = docker.from_env().containers.get(external_id)
        except docker.errors.NotFound:
            return []
        return [1] if container else []

    # -- only a container runner ----------------------------------------------------------------------------
    def test_the_command_really_runs_in_a_container(self, runner: TaskRunner, workdir: Path) -> None:
        ids: list[str] = []
        result, sink, _ = self.run(runner, self.spec(workdir, "test -f /.dockerenv && echo in-docker; hostname"),
                                   RunControl(on_external_id=ids.append))
        assert result.exit_code == 0
        assert sink.stream("stdout")[0] == "in-docker"
        assert ids and ids[0].startswith(sink.stream("stdout")[1])  # the hostname is the container id

    def test_mount_strategy_shares_the_folder(self, workdir: Path) -> None:
        runner = runner_for("docker", {"pullPolicy": "NEVER", "fileHandlingStrategy": "MOUNT"})
        (workdir / "in.txt").write_text("mounted")
        result, sink, _ = self.run(runner, self.spec(workdir, "cat in.txt; echo out > out.txt",
                                                     output_files=["out.txt"]))
        assert result.exit_code == 0 and sink.stream("stdout") == ["mounted"]
        assert result.output_files["out.txt"].read_text() == "out\n"

    def test_python_image_runs_a_python_command(self, workdir: Path) -> None:
        runner = runner_for("docker", {"pullPolicy": "NEVER"})
        spec = self.spec(workdir, "", container_image=PYTHON_IMAGE)
        spec.command = ["python", "-c", "import sys; print(sys.version_info[:2])"]
        result, sink, _ = self.run(runner, spec)
        assert result.exit_code == 0 and sink.stream("stdout") == ["(3, 11)"]

    def test_missing_image_is_a_clear_error(self, workdir: Path) -> None:
        runner = runner_for("docker", {"pullPolicy": "NEVER"})
        with pytest.raises(RunnerError, match="no-such/image:1"):
            runner.run(self.spec(workdir, "true", container_image="no-such/image:1"), lambda *_: None, RunControl())

    def test_unreachable_daemon_is_a_clear_error(self, workdir: Path) -> None:
        runner = runner_for("docker", {"host": "unix:///nonexistent/docker.sock"})
        with pytest.raises(RunnerError, match="Cannot reach the Docker daemon"):
            runner.run(self.spec(workdir, "true"), lambda *_: None, RunControl())

    def test_host_volumes_need_the_operator(self) -> None:
        with pytest.raises(RunnerError, match="volumes"):
            runner_for("docker", {"volumes": ["/etc:/host-etc"]})

    def test_unknown_property_is_rejected(self) -> None:
        with pytest.raises(RunnerError, match="pullPolicyy"):
            runner_for("docker", {"pullPolicyy": "NEVER"})

    def test_a_container_left_by_a_dead_worker_is_followed_not_duplicated(self, engine: Any, workdir: Path) -> None:
        task_run = uuid.uuid4().hex
        labels = {TEST_LABEL: self.run_label, "celestra.taskrun": task_run}
        orphan = engine.containers.run(SHELL_IMAGE, ["/bin/sh", "-c", "echo started; sleep 2; echo finished"],
                                       detach=True, labels=labels, name=f"celestra-orphan-{task_run[:12]}")
        runner = runner_for("docker", {"pullPolicy": "NEVER"})
        result, sink, _ = self.run(runner, self.spec(workdir, "echo duplicate", labels=labels))
        assert result.exit_code == 0
        assert result.external_id == orphan.id
        assert sink.stream("stdout") == ["started", "finished"]  # the orphan's output, not a new run's

    def test_a_taken_over_container_logs_each_line_once(self, workdir: Path, tmp_path: Path) -> None:
        script = 'i=1; while [ $i -le 40 ]; do echo "line $i"; [ $i = 3 ] && echo "warn $i" >&2; i=$((i+1)); ' \
                 'sleep 0.1; done; echo \'::{"outputs":{"done":true}}::\''
        spec = self.spec(workdir, script)
        (first_dir := tmp_path / "first").mkdir()
        stored = tmp_path / "stored.tsv"
        args = {"command": spec.command, "working_dir": str(first_dir), "labels": spec.labels, "name": spec.name,
                "image": spec.container_image}
        worker = subprocess.Popen([sys.executable, "-c", DYING_WORKER, json.dumps(args), str(stored)])
        try:
            assert wait_until(lambda: stored.exists() and "\tline 10\n" in stored.read_text(), 60.0)
        finally:
            os.kill(worker.pid, signal.SIGKILL)  # the container runs on: nothing of the worker said goodbye
            worker.wait(10)
        rows = [row.split("\t", 2) for row in stored.read_text().splitlines(keepends=True) if row.endswith("\n")]
        logged = [(line.rstrip("\n"), stream) for _, stream, line in rows]
        assert ("line 10", "stdout") in logged and ("line 40", "stdout") not in logged

        replayed = ListSink()
        control = RunControl(logged_until=lambda: datetime.fromisoformat(rows[-1][0]), replayed=replayed)
        result, sink, _ = self.run(runner_for("docker", {"pullPolicy": "NEVER"}), spec, control)  # the new worker

        assert result.exit_code == 0
        every = logged + sink.lines  # what the task's logs hold in the end
        assert [line for line, stream in every if stream == "stdout"] == [
            *(f"line {i}" for i in range(1, 41)), '::{"outputs":{"done":true}}::']
        assert [line for line, stream in every if stream == "stderr"] == ["warn 3"]
        assert sorted(replayed.lines) == sorted(logged), "what was logged already comes back for its outputs only"

    def test_a_file_already_in_the_output_dir_comes_back_rewritten(self, runner: TaskRunner, workdir: Path) -> None:
        (workdir / "_outputs").mkdir()
        (workdir / "_outputs" / "state.txt").write_text("before\n")
        result, _, _ = self.run(runner, self.spec(workdir, "echo after > _outputs/state.txt"))
        assert result.exit_code == 0
        assert result.output_files["state.txt"].read_text() == "after\n"

    def test_nothing_written_brings_nothing_back(self, runner: TaskRunner, workdir: Path) -> None:
        (workdir / "input.txt").write_text("stays an input")
        result, sink, _ = self.run(runner, self.spec(workdir, "cat input.txt"))
        assert result.exit_code == 0 and sink.stream("stdout") == ["stays an input"]
        assert result.output_files == {}

    def test_cancel_removes_the_container_quickly(self, engine: Any, runner: TaskRunner, workdir: Path) -> None:
        control = RunControl()
        ids: list[str] = []
        control.on_external_id = ids.append
        threading.Timer(1.0, control.kill.set).start()
        started = time.monotonic()
        result = runner.run(self.spec(workdir, "echo up; sleep 60"), lambda *_: None, control)
        assert result.killed and time.monotonic() - started < 15
        assert ids and not self.live_processes(ids[0])


# -- script tasks on the Docker runner, end to end (embedded) -------------------------------------------------
@pytest.fixture(scope="module")
def client(engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from app.client import Client
    from app.settings import Settings

    return Client(settings=Settings(home=tmp_path_factory.mktemp("docker-scripts")))


def docker_flow(flow_id: str, body: str, extra: str = "") -> str:
    lines = "\n".join("      " + line for line in body.strip().splitlines())
    return (f"id: {flow_id}\nnamespace: company.team\ntasks:\n"
            f"  - id: py\n    type: io.kestra.plugin.scripts.python.Script\n    containerImage: {PYTHON_IMAGE}\n"
            f"    taskRunner:\n      type: io.kestra.plugin.scripts.runner.docker.Docker\n      pullPolicy: NEVER\n"
            f"{extra}    script: |\n{lines}\n")


def containers_of(engine: Any, execution_id: str) -> list[str]:
    return [c.name for c in engine.containers.list(all=True, filters={"label": f"celestra.execution={execution_id}"})]


def test_script_task_runs_in_the_container_with_files_both_ways(engine: Any, client: Any) -> None:
    source = docker_flow("docker_script", """
import json, os, socket
print("dockerenv", os.path.exists("/.dockerenv"), "host", socket.gethostname())
print("input", open("in.txt").read())
open("out.txt", "w").write("made in the container")
print("::" + json.dumps({"outputs": {"cwd": os.getcwd()}}) + "::")
""", extra="    inputFiles:\n      in.txt: from the worker\n    outputFiles: [out.txt]\n")
    ex = client.run(source, timeout=120)
    run = ex.task_runs[0]
    lines = [row["message"] for row in client.logs(ex.id)]
    assert ex.state.value == "SUCCESS", (ex.to_json(), lines)
    assert any(line.startswith("dockerenv True host ") for line in lines), lines
    hostname = next(line for line in lines if line.startswith("dockerenv")).split()[-1]
    assert run.external_id and run.external_id.startswith(hostname)  # the container id is its hostname
    assert "input from the worker" in lines
    assert client.download(run.outputs["outputFiles"]["out.txt"]) == b"made in the container"
    assert run.outputs["vars"]["cwd"] == DockerRunner.container_workdir
    assert containers_of(engine, ex.id) == []


@pytest.mark.parametrize(("case", "body", "extra", "state"), [
    ("failing", "import sys\nprint('bad', file=sys.stderr)\nsys.exit(4)", "", "FAILED"),
    ("timeout", "import time\nprint('up', flush=True)\ntime.sleep(60)", "    timeout: PT2S\n", "FAILED"),
])
def test_no_container_left_after_failure_or_timeout(engine: Any, client: Any, case: str, body: str, extra: str,
                                                    state: str) -> None:
    ex = client.run(docker_flow(f"docker_{case}", body, extra), timeout=120)
    assert ex.state.value == state, ex.to_json()
    assert containers_of(engine, ex.id) == []
    if case == "failing":
        assert "exit code 4" in (ex.task_runs[0].error or "")


def test_no_container_left_after_cancel(engine: Any, client: Any) -> None:
    ex = client.run(docker_flow("docker_cancel", "import time\nprint('up', flush=True)\ntime.sleep(60)"),
                    wait=False)
    deadline = time.monotonic() + 60
    while not any(row["message"] == "up" for row in client.logs(ex.id)):
        assert time.monotonic() < deadline, "the container never printed"
        time.sleep(0.1)
    cancelled = time.monotonic()
    client.cancel(ex.id)
    ended = client.wait(ex.id, timeout=60)
    assert ended.state.value == "KILLED" and time.monotonic() - cancelled < 15
    assert containers_of(engine, ex.id) == []
