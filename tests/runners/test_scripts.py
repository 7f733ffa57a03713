"""Script tasks (python.Script, shell.Commands, ...) on the process runner, end to end in embedded mode."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from collections.abc import Callable
from importlib.metadata import EntryPoint
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import pytest

import runners
from app.model.records import Execution, TaskRun
from app.model.states import State
from runners.base import CommandSpec, LogSink, RunControl, RunResult, TaskRunner

ROOT = Path(__file__).resolve().parents[2]
WAIT = 30.0  # generous upper bound for an execution to end; the flows below end far sooner
NS = "runners.scripts"
PY_SCRIPT = "io.kestra.plugin.scripts.python.Script"
SH_COMMANDS = "io.kestra.plugin.scripts.shell.Commands"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from app.client import Client
    from app.settings import Settings

    return Client(settings=Settings(home=tmp_path_factory.mktemp("runners-scripts")))


def flow(text: str) -> str:
    """Dedented flow YAML (always several lines, so Client.run() reads it as YAML, not as a path)."""
    return textwrap.dedent(text).strip() + "\n"


def run_of(ex: Execution, task_id: str) -> TaskRun:
    found = [run for run in ex.task_runs if run.task_id == task_id]
    assert len(found) == 1, f"expected one run of {task_id!r}, got {[(r.value, r.state) for r in found]}"
    return found[0]


def task_logs(client: Any, execution_id: str, task_id: str | None = None) -> list[dict[str, Any]]:
    return [row for row in client.logs(execution_id) if task_id is None or row["task_id"] == task_id]


def messages(client: Any, execution_id: str, task_id: str | None = None) -> list[str]:
    return [row["message"] for row in task_logs(client, execution_id, task_id)]


def poll(client: Any, execution_id: str, until: Callable[[Execution], bool], timeout: float = WAIT) -> Execution:
    deadline = time.monotonic() + timeout
    while True:
        ex = client.get(execution_id)
        if until(ex):
            return ex
        assert time.monotonic() < deadline, f"condition not reached; execution is {ex.state}: {ex.to_json()}"
        time.sleep(0.02)


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group `pgid`."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2:].split()
            if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                members.append(int(entry))
    return members


def pwd_of(lines: list[str]) -> Path:
    found = [line[len("pwd="):] for line in lines if line.startswith("pwd=")]
    assert len(found) == 1, lines
    return Path(found[0])


# -- outputs, files, paths, env ---------------------------------------------------------------------------------
def test_python_script_outputs_files_paths_and_env(client: Any) -> None:
    ex = client.run(flow(f"""
        id: py_outputs
        namespace: {NS}
        tasks:
          - id: py
            type: {PY_SCRIPT}
            outputFiles: ["*.txt"]
            env:
              GREETING: "hello {{{{ flow.id }}}}"
            beforeCommands:
              - echo from-before > before.txt
            script: |
              import json, os
              wd, od = "{{{{ workingDir }}}}", "{{{{ outputDir }}}}"
              with open("result.txt", "w") as f:
                  f.write("result body")
              with open(os.path.join(od, "report.json"), "w") as f:
                  f.write(json.dumps({{"ok": True}}))
              values = dict(wd=wd, od=od, env_wd=os.environ["WORKING_DIR"], env_od=os.environ["OUTPUT_DIR"],
                            cwd=os.getcwd(), greeting=os.environ["GREETING"], before=open("before.txt").read().strip())
              print("::" + json.dumps({{"outputs": values}}) + "::")
              print("plain line")
    """), timeout=WAIT)
    assert ex.state == State.SUCCESS, ex.to_json()
    run = run_of(ex, "py")
    values = run.outputs["vars"]
    assert run.outputs["exitCode"] == 0
    assert os.path.realpath(values["wd"]) == os.path.realpath(values["cwd"]) == os.path.realpath(values["env_wd"])
    assert values["od"] == values["env_od"] == values["wd"] + "/_outputs"
    assert values["greeting"] == "hello py_outputs"
    assert values["before"] == "from-before"
    files = run.outputs["outputFiles"]
    assert set(files) == {"before.txt", "result.txt", "report.json"}
    assert all(uri.startswith("kestra://") for uri in files.values())
    assert client.download(files["result.txt"]) == b"result body"
    assert json.loads(client.download(files["report.json"])) == {"ok": True}
    assert client.download(files["before.txt"]) == b"from-before\n"
    logged = messages(client, ex.id, "py")
    assert "plain line" in logged
    assert not any(line.startswith("::") for line in logged), "an outputs line must not be logged as text"


def test_shell_commands_outputs_files_paths_before_commands_and_env(client: Any) -> None:
    ex = client.run(flow(f"""
        id: sh_outputs
        namespace: {NS}
        tasks:
          - id: sh
            type: {SH_COMMANDS}
            env:
              MY_VAR: "value of {{{{ flow.namespace }}}}"
            beforeCommands:
              - export FROM_BEFORE=exported
            commands:
              - echo '::{{"outputs":{{"n":42,"s":"text","nested":{{"k":[1,2]}}}}}}::'
              - echo "wd={{{{ workingDir }}}} od={{{{ outputDir }}}}" > "{{{{ outputDir }}}}/paths.txt"
              - echo "env_wd=$WORKING_DIR env_od=$OUTPUT_DIR pwd=$(pwd)" >> "$OUTPUT_DIR/paths.txt"
              - echo "$FROM_BEFORE $MY_VAR"
    """), timeout=WAIT)
    assert ex.state == State.SUCCESS, ex.to_json()
    run = run_of(ex, "sh")
    assert run.outputs["vars"] == {"n": 42, "s": "text", "nested": {"k": [1, 2]}}
    assert set(run.outputs["outputFiles"]) == {"paths.txt"}
    first, second = client.download(run.outputs["outputFiles"]["paths.txt"]).decode().splitlines()
    wd = first.split()[0].removeprefix("wd=")
    assert first == f"wd={wd} od={wd}/_outputs"
    assert second == f"env_wd={wd} env_od={wd}/_outputs pwd={wd}"
    assert "exported value of runners.scripts" in messages(client, ex.id, "sh")


def test_kestra_metrics_and_logs_lines(client: Any) -> None:
    metric = {"name": "rows", "type": "counter", "value": 5, "tags": {"table": "t"}}
    payloads = [{"metrics": [metric]}, {"logs": [{"level": "WARN", "message": "from the kestra logger"}]}]
    lines = "\n".join(" " * 14 + f"print('::' + json.dumps({p!r}) + '::')" for p in payloads)
    ex = client.run(flow(f"""
        id: py_metrics
        namespace: {NS}
        tasks:
          - id: py
            type: {PY_SCRIPT}
            script: |
              import json
{lines}
    """), timeout=WAIT)
    assert ex.state == State.SUCCESS, ex.to_json()
    assert run_of(ex, "py").outputs["metrics"] == [metric]
    rows = task_logs(client, ex.id, "py")
    assert [(r["level"], r["message"]) for r in rows] == [("WARN", "from the kestra logger")]


def test_input_files_inline_and_from_a_previous_task(client: Any) -> None:
    ex = client.run(flow(f"""
        id: input_files
        namespace: {NS}
        tasks:
          - id: produce
            type: {SH_COMMANDS}
            outputFiles: ["data.csv"]
            commands:
              - printf 'a,b\\n1,2\\n' > data.csv
          - id: consume
            type: {PY_SCRIPT}
            inputFiles:
              copied.csv: "{{{{ outputs.produce.outputFiles['data.csv'] }}}}"
              conf/settings.json: '{{"mode": "fast"}}'
              plain.txt: "rendered {{{{ flow.id }}}}"
            script: |
              import json
              values = dict(csv=open("copied.csv").read(), mode=json.load(open("conf/settings.json"))["mode"],
                            plain=open("plain.txt").read())
              print("::" + json.dumps({{"outputs": values}}) + "::")
    """), timeout=WAIT)
    assert ex.state == State.SUCCESS, ex.to_json()
    assert run_of(ex, "produce").outputs["outputFiles"]["data.csv"].startswith("kestra://")
    expected = {"csv": "a,b\n1,2\n", "mode": "fast", "plain": "rendered input_files"}
    assert run_of(ex, "consume").outputs["vars"] == expected


def test_input_file_escaping_the_working_dir_fails(client: Any) -> None:
    ex = client.run(flow(f"""
        id: input_escape
        namespace: {NS}
        tasks:
          - id: sh
            type: {SH_COMMANDS}
            inputFiles:
              ../escaped.txt: nope
            commands: ["echo should-not-run"]
    """), timeout=WAIT)
    assert ex.state == State.FAILED
    assert "escapes the working directory" in (run_of(ex, "sh").error or "")
    assert "should-not-run" not in messages(client, ex.id, "sh")


def test_env_numbers_and_booleans_are_strings(client: Any) -> None:
    ex = client.run(flow(f"""
        id: env_scalars
        namespace: {NS}
        tasks:
          - id: sh
            type: {SH_COMMANDS}
            env:
              COUNT: 5
              ENABLED: true
            commands: ['echo "$COUNT/$ENABLED"']
    """), timeout=WAIT)
    assert ex.state == State.SUCCESS
    assert messages(client, ex.id, "sh") == ["5/true"]



@pytest.mark.parametrize("target", ["LINUX", "AUTO"])
def test_target_os_linux_and_auto_run_the_commands_with_a_posix_shell(client: Any, target: str) -> None:
    ex = client.run(flow(f"""
        id: target_os_{target.lower()}
        namespace: {NS}
        tasks:
          - id: sh
            type: {SH_COMMANDS}
            targetOS: {target}
            commands: ['uname -s', 'echo "$((6 * 7))"']
    """), timeout=WAIT)
    assert ex.state == State.SUCCESS, ex.to_json()
    assert messages(client, ex.id, "sh") == ["Linux", "42"]


def test_target_os_windows_is_refused() -> None:
    from app.errors import FlowValidationError
    from app.model.loader import load_flow

    with pytest.raises(FlowValidationError, match="targetOS WINDOWS is not supported yet"):
        load_flow(flow(f"""
            id: target_os_windows
            namespace: {NS}
            tasks:
              - {{id: sh, type: {SH_COMMANDS}, targetOS: WINDOWS, commands: [dir]}}
        """))

# -- failures and warnings --------------------------------------------------------------------------------------
def test_non_zero_exit_fails_with_the_last_stderr_lines(client: Any) -> None:
    ex = client.run(flow(f"""
        id: py_fails
        namespace: {NS}
        tasks:
          - id: py
            type: {PY_SCRIPT}
            script: |
              import sys
              print("progress", flush=True)
              for i in range(1, 4):
                  print(f"boom line {{i}}", file=sys.stderr)
              sys.exit(2)
    """), timeout=WAIT)
    assert ex.state == State.FAILED
    run = run_of(ex, "py")
    assert run.state == State.FAILED
    error = run.error or ""
    assert "exit code 2" in error
    assert "boom line 2" in error and "boom line 3" in error
    assert any("boom line 3" in m and "exit code 2" in m for m in messages(client, ex.id, "py")), "error not logged"


def test_fail_fast_stops_at_the_first_failing_command(client: Any) -> None:
    ex = client.run(flow(f"""
        id: fail_fast
        namespace: {NS}
        tasks:
          - id: sh
            type: {SH_COMMANDS}
            commands:
              - echo before-false
              - "false"
              - echo after-false
    """), timeout=WAIT)
    assert ex.state == State.FAILED
    logged = messages(client, ex.id, "sh")
    assert "before-false" in logged
    assert "after-false" not in logged
    assert "exit code 1" in (run_of(ex, "sh").error or "")


@pytest.mark.parametrize(("option", "expected"), [("", State.WARNING), ("warningOnStdErr: true", State.WARNING),
                                                  ("warningOnStdErr: false", State.SUCCESS)])
def test_warning_on_stderr(client: Any, option: str, expected: State) -> None:
    ex = client.run(flow(f"""
        id: stderr_warning
        namespace: {NS}
        tasks:
          - id: sh
            type: {SH_COMMANDS}
            {option}
            commands:
              - echo careful >&2
    """), timeout=WAIT)
    assert run_of(ex, "sh").state == expected
    assert ex.state == expected
    assert "careful" in messages(client, ex.id, "sh")


def test_no_stderr_no_warning(client: Any) -> None:
    ex = client.run(flow(f"""
        id: stdout_only
        namespace: {NS}
        tasks:
          - id: sh
            type: {SH_COMMANDS}
            commands: ["echo fine"]
    """), timeout=WAIT)
    assert ex.state == State.SUCCESS
    assert run_of(ex, "sh").state == State.SUCCESS


def test_unknown_task_runner_type_fails_naming_it(client: Any) -> None:
    ex = client.run(flow(f"""
        id: unknown_runner
        namespace: {NS}
        tasks:
          - id: sh
            type: {SH_COMMANDS}
            taskRunner:
              type: io.example.NoSuchRunner
            commands: ["echo should-not-run"]
    """), timeout=WAIT)
    assert ex.state == State.FAILED
    run = run_of(ex, "sh")
    assert run.state == State.FAILED
    assert "io.example.NoSuchRunner" in (run.error or "")
    assert "should-not-run" not in messages(client, ex.id, "sh")


# -- namespace files -------------------------------------------------------------------------------------------
def test_namespace_files_myflow(client: Any) -> None:
    uploaded = client.upload_namespace_files("company.team", ROOT / "flows" / "namespace-files" / "company.team")
    assert any(uri.endswith("ml_on_gpu.py") for uri in uploaded)
    ex = client.run(ROOT / "flows" / "myflow.yaml", timeout=WAIT)
    assert ex.state == State.SUCCESS, ex.to_json()
    run = run_of(ex, "gpu")
    assert run.outputs["vars"]["accuracy"] == 0.93
    assert any(m.startswith("training on ") for m in messages(client, ex.id, "gpu"))


NS_FILES_NS = "runners.nsfiles"
NS_FILES = {"main.py": "print('main')\n", "data/x.csv": "1,2\n", "data/y.txt": "y\n", "notes/readme.txt": "r\n"}


@pytest.fixture(scope="module")
def namespace_files(client: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = tmp_path_factory.mktemp("nsfiles")
    for name, content in NS_FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(content)
    assert len(client.upload_namespace_files(NS_FILES_NS, folder)) == len(NS_FILES)


@pytest.mark.parametrize(("spec", "expected"), [
    ("namespaceFiles: {enabled: true}", set(NS_FILES)),
    ("namespaceFiles: {enabled: true, include: ['data/*']}", {"data/x.csv", "data/y.txt"}),
    ("namespaceFiles: {enabled: true, exclude: ['*.txt']}", {"main.py", "data/x.csv"}),
    ("namespaceFiles: {enabled: true, include: ['data/*', 'main.py'], exclude: ['*.txt']}", {"main.py", "data/x.csv"}),
    ("namespaceFiles: {enabled: false}", set()),
    ("", set()),
])
def test_namespace_files_include_exclude(client: Any, namespace_files: None, spec: str, expected: set[str]) -> None:
    ex = client.run(flow(f"""
        id: ns_files
        namespace: {NS_FILES_NS}
        tasks:
          - id: sh
            type: {SH_COMMANDS}
            {spec}
            commands:
              - find . -type f | sed 's|^\\./|file:|' | sort
              - if [ -f main.py ]; then sed 's/^/content:/' main.py; fi
              - echo done
    """), timeout=WAIT)
    assert ex.state == State.SUCCESS, ex.to_json()
    logged = messages(client, ex.id, "sh")
    assert logged[-1] == "done"
    assert {m.removeprefix("file:") for m in logged if m.startswith("file:")} == expected
    assert ("content:print('main')" in logged) == ("main.py" in expected)  # the content too, not just the name


# -- live logs, cancel, timeout, clean-up ------------------------------------------------------------------------
def test_live_logs_arrive_while_the_script_runs(client: Any) -> None:
    ex = client.run(flow(f"""
        id: live_logs
        namespace: {NS}
        tasks:
          - id: py
            type: {PY_SCRIPT}
            script: |
              import time
              print("first", time.time(), flush=True)
              time.sleep(3)
              print("second", flush=True)
    """), wait=False)
    seen: list[str] = []
    state_at_first = delay = None
    for row in client.logs(ex.id, follow=True):
        words = row["message"].split()
        seen.append(words[0] if words else "")
        if words[:1] == ["first"]:
            delay = time.time() - float(words[1])
            state_at_first = client.get(ex.id).state
            assert "second" not in seen
    print(f"\nlive log delay (print -> readable through Client.logs): {delay * 1000:.0f} ms")  # type: ignore[operator]
    assert state_at_first == State.RUNNING, "'first' was only readable after the execution had ended"
    assert delay is not None and delay < 1.0, f"'first' took {delay}s to become readable"
    assert seen.index("first") < seen.index("second")
    assert client.wait(ex.id, WAIT).state == State.SUCCESS


def _start_sleeping_script(client: Any, flow_id: str, extra: str = "") -> tuple[Execution, TaskRun]:
    ex = client.run(flow(f"""
        id: {flow_id}
        namespace: {NS}
        tasks:
          - id: py
            type: {PY_SCRIPT}
            {extra}
            script: |
              import os, time
              print(f"pwd={{os.getcwd()}}", flush=True)
              time.sleep(30)
    """), wait=False)
    running = poll(client, ex.id, lambda e: bool(e.task_runs and e.task_runs[0].external_id)
                   and any(m.startswith("pwd=") for m in messages(client, e.id, "py")), timeout=10)
    return running, run_of(running, "py")


def test_cancel_kills_the_script_and_its_process(client: Any) -> None:
    ex, run = _start_sleeping_script(client, "cancel_me")
    pid = int(run.external_id or 0)
    assert group_members(pid), "the external id must name the running process (group)"
    workdir = pwd_of(messages(client, ex.id, "py"))
    cancelled = time.monotonic()
    client.cancel(ex.id)
    ended = poll(client, ex.id, lambda e: e.state.terminal, timeout=10)
    elapsed = time.monotonic() - cancelled
    assert ended.state == State.KILLED
    assert run_of(ended, "py").state == State.KILLED
    assert elapsed < 2.0, f"KILLED {elapsed:.2f}s after the cancel"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert group_members(pid) == []
    assert not workdir.exists()


def test_timeout_fails_the_task_quickly(client: Any) -> None:
    started = time.monotonic()
    ex, run = _start_sleeping_script(client, "time_me_out", "timeout: PT1S")
    ended = poll(client, ex.id, lambda e: e.state.terminal, timeout=10)
    elapsed = time.monotonic() - started
    assert ended.state == State.FAILED
    run = run_of(ended, "py")
    assert run.state == State.FAILED
    assert "timed out" in (run.error or "")
    assert elapsed < 4.0, f"a PT1S timeout ended the execution after {elapsed:.2f}s"
    assert group_members(int(run.external_id or 0)) == []
    assert not pwd_of(messages(client, ex.id, "py")).exists()


@pytest.mark.parametrize("code", [0, 1])
def test_working_directory_is_removed_afterwards(client: Any, code: int) -> None:
    ex = client.run(flow(f"""
        id: workdir_cleanup
        namespace: {NS}
        tasks:
          - id: sh
            type: {SH_COMMANDS}
            outputFiles: ["kept.txt"]
            commands:
              - echo "pwd=$(pwd)"
              - echo content > kept.txt
              - exit {code}
    """), timeout=WAIT)
    assert ex.state == (State.SUCCESS if code == 0 else State.FAILED)
    workdir = pwd_of(messages(client, ex.id, "sh"))
    assert workdir.is_absolute() and workdir != Path("/")
    assert not workdir.exists(), f"{workdir} is still there after the run"


# -- what the script task hands a runner -------------------------------------------------------------------------
class RecordingRunner(TaskRunner):
    """A container-like runner: records the spec it is given instead of running it."""

    container_workdir = "/app/work"
    seen: ClassVar[list[tuple[dict[str, Any], CommandSpec]]] = []

    def __init__(self, **properties: Any) -> None:
        self.properties = properties

    def run(self, spec: CommandSpec, sink: LogSink, control: RunControl) -> RunResult:
        RecordingRunner.seen.append((self.properties, spec))
        control.on_external_id("container-123")
        sink("recorded", "stdout")
        return RunResult(exit_code=0, external_id="container-123")


@pytest.fixture
def recording_runner(monkeypatch: pytest.MonkeyPatch) -> type[RecordingRunner]:
    module = ModuleType("celestra_tests_recording_runner")
    module.RecordingRunner = RecordingRunner  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    entry = EntryPoint("test.Recording", f"{module.__name__}:RecordingRunner", runners.GROUP)
    registered = runners.registered
    monkeypatch.setattr(runners, "registered", lambda: {**registered(), entry.name: entry})
    RecordingRunner.seen.clear()
    return RecordingRunner


CONTAINER_FLOW = f"""
    id: container_paths
    namespace: {NS}
    tasks:
      - id: sh
        type: {SH_COMMANDS}
        taskRunner:
          type: test.Recording
          volume: data
          cpu: 2
        env:
          WD: "{{{{ workingDir }}}}"
        beforeCommands:
          - echo before {{{{ workingDir }}}}
        outputFiles: ["{{{{ flow.id }}}}.txt"]
        commands:
          - echo main {{{{ workingDir }}}} {{{{ outputDir }}}}
"""


def test_spec_handed_to_the_runner(client: Any, recording_runner: type[RecordingRunner]) -> None:
    ex = client.run(flow(CONTAINER_FLOW), timeout=WAIT)
    assert ex.state == State.SUCCESS, ex.to_json()
    run = run_of(ex, "sh")
    [(properties, spec)] = recording_runner.seen
    assert properties == {"volume": "data", "cpu": 2}
    assert spec.command[:2] == ["/bin/sh", "-c"]
    script = spec.command[2].splitlines()
    assert script[0] == "set -e"
    assert script[1] == "echo before /app/work"
    assert spec.env["WORKING_DIR"] == spec.env["WD"] == "/app/work"
    assert spec.env["OUTPUT_DIR"] == "/app/work/_outputs"
    assert spec.output_files == ["container_paths.txt"]
    assert spec.container_image == "ubuntu"
    assert spec.labels["celestra.execution"] == ex.id
    assert spec.labels["celestra.taskrun"] == run.id
    assert run.external_id == "container-123"
    assert messages(client, ex.id, "sh") == ["recorded"]


def test_commands_see_the_runner_working_dir(client: Any, recording_runner: type[RecordingRunner]) -> None:
    ex = client.run(flow(CONTAINER_FLOW), timeout=WAIT)
    assert ex.state == State.SUCCESS
    [(_, spec)] = recording_runner.seen
    assert spec.command[2].splitlines()[-1] == "echo main /app/work /app/work/_outputs"
