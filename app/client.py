"""The Python API. Everything the CLI does goes through here.

    from app import Client
    ex = Client().run("flows/hello.yaml", inputs={"name": "Ada"})
    print(ex.state, ex.outputs)
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from app import runtime
from app.engine import asked, dispatch, events, flow_triggers, replay, restart, retried
from app.engine.routing import static_group_problems
from app.errors import CelestraError, FlowValidationError
from app.model.flow import Flow
from app.model.loader import load_flow, load_flow_file, parse_flow
from app.model.records import Execution
from app.model.states import State
from app.settings import Settings, load_settings
from app.store import ends
from app.store.outage import until_stored


class ExecutionTimeout(CelestraError):
    pass


class Client:
    def __init__(self, settings: Settings | None = None, config: str | Path | None = None):
        if settings is not None or config is not None:
            runtime.configure(settings or load_settings(config))
            from app import celery_app

            celery_app.reset()
        self.settings = runtime.settings()

    # -- flows ----------------------------------------------------------------------------------------------
    def load(self, path_or_yaml: str | Path) -> tuple[Flow, str]:
        """A flow from a file path or from YAML text, checked against this configuration's worker groups."""
        name = "<yaml>"
        if isinstance(path_or_yaml, Path) or "\n" not in str(path_or_yaml):
            flow, text = load_flow_file(path_or_yaml)  # a missing file is named in the error
            name = str(path_or_yaml)
        else:
            text = str(path_or_yaml)
            flow = load_flow(text, name)
        problems = [f"{name}: {problem}" for problem in static_group_problems(self.settings, flow)]
        if problems:
            raise FlowValidationError(problems)
        return flow, text

    def validate(self, path_or_yaml: str | Path) -> Flow:
        return self.load(path_or_yaml)[0]

    def deploy(self, path_or_yaml: str | Path) -> dict[str, Any]:
        flow, source = self.load(path_or_yaml)
        revision = runtime.store().save_flow(flow.namespace, flow.id, source)
        flow_triggers.deployed_flows.forget_listing()  # its flow triggers watch from now on in this process too
        return {"namespace": flow.namespace, "id": flow.id, "revision": revision}

    def flow(self, namespace: str, flow_id: str, revision: int | None = None) -> Flow:
        """A deployed flow (its latest revision unless one is named)."""
        return parse_flow(runtime.store().get_flow(namespace, flow_id, revision)[1])

    def flows(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return runtime.store().list_flows(namespace)

    # -- executions -----------------------------------------------------------------------------------------
    def run(self, path_or_yaml: str | Path, inputs: dict[str, Any] | None = None, *, wait: bool = True,
            timeout: float | None = None, labels: dict[str, str] | None = None) -> Execution:
        """Run a flow from a file or YAML text (no deploy needed)."""
        flow, source = self.load(path_or_yaml)
        return self._submit(flow, source, None, inputs, wait, timeout, labels)

    def execute(self, namespace: str, flow_id: str, inputs: dict[str, Any] | None = None, *, wait: bool = False,
                timeout: float | None = None, revision: int | None = None,
                labels: dict[str, str] | None = None, run_here: bool = True,
                trigger: dict[str, Any] | None = None) -> Execution:
        """Run a deployed flow. Embedded, `run_here=False` stores it without starting this process's worker: an
        embedded process that outlives this one runs it (`celestra execute --no-wait`). `trigger`: what started
        it (a Webhook's request), as `{{ trigger.* }}`."""
        rev, source = runtime.store().get_flow(namespace, flow_id, revision)
        return self._submit(parse_flow(source), source, rev, inputs, wait, timeout, labels, run_here, trigger)

    def _submit(self, flow: Flow, source: str, revision: int | None, inputs: dict[str, Any] | None, wait: bool,
                timeout: float | None, labels: dict[str, str] | None, run_here: bool = True,
                trigger: dict[str, Any] | None = None) -> Execution:
        if run_here or wait:
            self._ensure_embedded()
        # The first step runs here, in the transaction that stores the execution: no server hop.
        ex = events.create_and_start(flow, source, inputs or {}, revision=revision, labels=labels, trigger=trigger)
        return self.wait(ex.id, timeout) if wait else ex

    def start_embedded(self) -> None:
        """Embedded mode: start this process's worker and timers (which also take up what embedded processes that
        have exited left behind); nothing on a cluster."""
        self._ensure_embedded()

    def _ensure_embedded(self) -> None:
        if self.settings.embedded:
            from app.services import embedded

            embedded.ensure_started()

    def state(self, execution_id: str) -> State:
        return runtime.store().execution_state(execution_id)

    def get(self, execution_id: str) -> Execution:
        return with_secrets_marked(runtime.store().get_execution(execution_id))

    def wait(self, execution_id: str, timeout: float | None = None) -> Execution:
        """Block until the execution ends; polls fast at first (most flows end in milliseconds), then backs off.
        One that ends RETRIED (retry behavior CREATE_NEW_EXECUTION) goes on as a new execution: that one is waited
        for, and so on to the last try, which is returned."""
        deadline = time.monotonic() + timeout if timeout is not None else None
        ended = self._wait_one(execution_id, timeout)
        while ended.state == State.RETRIED:
            following = retried.retry_of(ended)
            if following is None:  # written in the same transaction as the RETRIED end: cannot be missing
                return ended
            ended = self._wait_one(following, deadline - time.monotonic() if deadline is not None else None)
        return ended

    def _wait_one(self, execution_id: str, timeout: float | None) -> Execution:
        self._ensure_embedded()
        store = runtime.store()
        deadline = time.monotonic() + timeout if timeout is not None else None
        started = time.monotonic()
        watcher = ends.watcher(store.engine)  # PostgreSQL: woken by the end's NOTIFY
        with watcher.waiting(execution_id) if watcher is not None else contextlib.nullcontext() as woken:
            while not store.execution_state(execution_id).terminal:
                left = deadline - time.monotonic() if deadline else None
                if left is not None and left <= 0:
                    raise ExecutionTimeout(f"Execution {execution_id} did not end within {timeout}s")
                if woken is not None:  # woken by its end, or after a second to read the state again
                    if woken.wait(min(left, 1.0) if left is not None else 1.0):
                        break
                else:  # 1 ms polls for the first second (short flows end in milliseconds), then 50 ms
                    time.sleep(0.001 if time.monotonic() - started < 1 else 0.05)
        return with_secrets_marked(store.get_execution(execution_id))

    def logs(self, execution_id: str, follow: bool = False, after: int = 0,
             poll: float = 0.05) -> Iterator[dict[str, Any]]:
        """Log rows in order; with follow=True, keeps yielding new ones until the execution has ended (embedded,
        this process then also runs what is left of it)."""
        if follow:
            self._ensure_embedded()
        store = runtime.store()
        while True:
            ended = store.execution_state(execution_id).terminal
            rows = store.logs(execution_id, after)
            for row in rows:
                after = row["id"]
                yield row
            if not follow or (ended and not rows):
                return
            if not rows:
                time.sleep(poll)

    # -- files --------------------------------------------------------------------------------------------
    def upload_namespace_files(self, namespace: str, folder: str | Path) -> list[str]:
        """Upload every file under `folder` as namespace files (scripts read them with namespaceFiles.enabled)."""
        from app.store.storage import namespace_file_uri

        root = Path(folder)
        if not root.is_dir():
            raise CelestraError(f"{root} is not a folder")
        storage = runtime.storage()
        return [storage.put(namespace_file_uri(namespace, str(path.relative_to(root))), path.read_bytes())
                for path in sorted(root.rglob("*")) if path.is_file()]

    def namespace_files(self, namespace: str) -> list[str]:
        from app.store.storage import namespace_files_prefix

        return runtime.storage().list(namespace_files_prefix(namespace))

    def download(self, uri: str) -> bytes:
        """The content of a file in internal storage (an output file, an input file, a namespace file)."""
        return runtime.storage().get(uri)

    def worker_groups(self) -> list[dict[str, Any]]:
        """Declared and served worker groups: their live workers and how many messages wait in their queue."""
        from app.engine import liveness

        live = liveness.live_workers()
        names = sorted({*self.settings.worker_groups, *(g for w in live for g in w.groups)})
        depths = {name: dispatch.queue_depth(name) for name in names} if not self.settings.embedded else {}
        return [
            {
                "key": name,
                "description": self.settings.worker_groups[name].description
                if name in self.settings.worker_groups else "",
                "declared": name in self.settings.worker_groups,
                "workers": [w.to_json() for w in live if name in w.groups],
                "queued": depths.get(name),
            }
            for name in names
        ]

    def cancel(self, execution_id: str) -> None:
        """Kill a running execution: running tasks are stopped, nothing new starts; it ends KILLED."""
        # A conflict with a claim, or a deadlock the database broke, is retried rather than shown.
        until_stored(f"kill of execution {execution_id}", lambda: asked.kill(execution_id), 30)

    def resume(self, execution_id: str, inputs: dict[str, Any] | None = None) -> bool:
        """Resume a paused execution; `inputs` for its Pause's `onResume` (an InputError says which is wrong)."""
        return asked.resume(execution_id, inputs)

    def restart(self, execution_id: str, wait: bool = False, timeout: float | None = None) -> Execution:
        """Restart an ended execution from its failed task runs, as Kestra does: the same execution, each failed
        task run a new attempt, what succeeded kept (app/engine/restart.py). Embedded, this process runs the
        rest; `wait` until it ends again."""
        self._ensure_embedded()
        restart.restart(execution_id)
        return self.wait(execution_id, timeout) if wait else self.get(execution_id)

    def replay(self, execution_id: str, task: str | None = None, wait: bool = False,
               timeout: float | None = None) -> Execution:
        """Replay an ended execution as a new one (app/engine/replay.py): what came before `task` (a task id, or a
        task run id) is reused, the flow runs again from there; without `task`, from the start. Returns the new
        execution (ended, with `wait`)."""
        self._ensure_embedded()
        new = replay.replay(execution_id, task)
        return self.wait(new.id, timeout) if wait else self.get(new.id)

    def executions(self, namespace: str | None = None, flow_id: str | None = None, state: str | State | None = None,
                   limit: int = 50) -> list[Execution]:
        found = runtime.store().list_executions(namespace, flow_id, str(state) if state else None, limit)
        return [with_secrets_marked(ex) for ex in found]


def with_secrets_marked(ex: Execution) -> Execution:
    """Mark SECRET inputs so that printing the execution masks them."""
    ex.secret_inputs = frozenset(i.id for i in events.flow_of(ex).inputs if i.type == "SECRET")
    return ex
