"""Flowable tasks: they run no code of their own; the executor creates their children's task runs.

Each model declares its children; app/engine/step.py decides, from the task runs that exist, what to create next and
when the flowable itself is done.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from app.model.flow import Duration, Model, NamespaceFiles, Retry, Task, TemplatedDuration, not_supported_yet
from app.model.states import State


class FlowableTask(Task):
    kind = "flowable"
    errors: list[AnyTask] = Field(default_factory=list)
    finally_: list[AnyTask] = Field(default_factory=list, alias="finally")

    @field_validator("workerGroup")
    @classmethod
    def _runs_in_the_executor(cls, value: Any, info: ValidationInfo) -> Any:
        # Kestra ignores it there; accepting it would let a user believe the children go to that group.
        if value is not None and cls is not WorkingDirectory and not (info.context or {}).get("running"):
            raise ValueError(f"workerGroup on a {cls.__name__} is not supported yet: a {cls.__name__} runs in the "
                             "executor, not on a worker; set workerGroup on the tasks inside it")
        return value

    def child_lists(self) -> list[list[Task]]:
        return [self.errors, self.finally_]


class Sequential(FlowableTask):
    type: Literal["io.kestra.plugin.core.flow.Sequential", "io.kestra.core.tasks.flows.Sequential", "Sequential"]
    tasks: list[AnyTask] = Field(min_length=1)

    def child_lists(self) -> list[list[Task]]:
        return [self.tasks, *super().child_lists()]


class AllowFailure(Sequential):
    type: Literal[  # type: ignore[assignment]
        "io.kestra.plugin.core.flow.AllowFailure", "io.kestra.core.tasks.flows.AllowFailure", "AllowFailure"
    ]


class Parallel(FlowableTask):
    type: Literal["io.kestra.plugin.core.flow.Parallel", "io.kestra.core.tasks.flows.Parallel", "Parallel"]
    tasks: list[AnyTask] = Field(min_length=1)
    concurrent: int = Field(0, ge=0, description="How many children run at once; 0 means all.")

    def child_lists(self) -> list[list[Task]]:
        return [self.tasks, *super().child_lists()]


class If(FlowableTask):
    type: Literal["io.kestra.plugin.core.flow.If", "io.kestra.core.tasks.flows.If", "If"]
    condition: Any
    then: list[AnyTask] = Field(min_length=1)
    else_: list[AnyTask] = Field(default_factory=list, alias="else")

    def child_lists(self) -> list[list[Task]]:
        return [self.then, self.else_, *super().child_lists()]


class Switch(FlowableTask):
    type: Literal["io.kestra.plugin.core.flow.Switch", "io.kestra.core.tasks.flows.Switch", "Switch"]
    value: Any
    cases: dict[str, list[AnyTask]] = Field(default_factory=dict)
    defaults: list[AnyTask] = Field(default_factory=list)

    @field_validator("cases", mode="before")
    @classmethod
    def _keys_as_text(cls, value: Any) -> Any:
        # YAML reads `1:` or `true:` as numbers and booleans; a rendered value is always text.
        if isinstance(value, dict):
            return {k if isinstance(k, str) else json.dumps(k): v for k, v in value.items()}
        return value

    def child_lists(self) -> list[list[Task]]:
        return [*self.cases.values(), self.defaults, *super().child_lists()]


class ForEach(FlowableTask):
    """Runs `tasks` once per value; `concurrencyLimit` iterations at once (0 = all)."""

    type: Literal["io.kestra.plugin.core.flow.ForEach", "ForEach"]
    values: Any
    concurrencyLimit: int = Field(1, ge=0)
    tasks: list[AnyTask] = Field(min_length=1)

    def child_lists(self) -> list[list[Task]]:
        return [self.tasks, *super().child_lists()]


class EachSequential(FlowableTask):
    type: Literal[
        "io.kestra.plugin.core.flow.EachSequential", "io.kestra.core.tasks.flows.EachSequential", "EachSequential"
    ]
    value: Any
    tasks: list[AnyTask] = Field(min_length=1)

    def child_lists(self) -> list[list[Task]]:
        return [self.tasks, *super().child_lists()]


class EachParallel(FlowableTask):
    """Legacy: every task of every value at once (`concurrent` caps it)."""

    type: Literal["io.kestra.plugin.core.flow.EachParallel", "io.kestra.core.tasks.flows.EachParallel", "EachParallel"]
    value: Any
    concurrent: int = Field(0, ge=0)
    tasks: list[AnyTask] = Field(min_length=1)

    def child_lists(self) -> list[list[Task]]:
        return [self.tasks, *super().child_lists()]


class CheckFrequency(Model):
    maxIterations: int | None = Field(None, gt=0, description="Iterations at most; none means no limit.")
    maxDuration: Duration | None = Field(None, description="How long the loop may go on; none means no limit.")
    interval: Duration = Field(timedelta(minutes=1), description="The wait between two iterations.")

    @field_validator("maxDuration", "interval")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta():
            raise ValueError("must be a positive duration")
        return value


class LoopUntil(FlowableTask):
    """Runs `tasks` again and again, `checkFrequency.interval` apart, until `condition` (rendered after each
    iteration, with that iteration's outputs) is true; `outputs.<id>.iterationCount` counts from 1."""

    type: Literal["io.kestra.plugin.core.flow.LoopUntil", "io.kestra.plugin.core.flow.WaitFor"]
    condition: str
    tasks: list[AnyTask] = Field(min_length=1)
    failOnMaxReached: bool = Field(
        False, description="End FAILED when maxIterations or maxDuration stop the loop before the condition held.")
    checkFrequency: CheckFrequency = Field(default_factory=CheckFrequency)
    timeout: Annotated[Duration | None, not_supported_yet(
        "timeout on a LoopUntil", None, ": use checkFrequency.maxDuration")] = None

    def child_lists(self) -> list[list[Task]]:
        return [self.tasks, *super().child_lists()]


class DagTask(Model):
    task: AnyTask
    dependsOn: list[str] = Field(default_factory=list)


class Dag(FlowableTask):
    type: Literal["io.kestra.plugin.core.flow.Dag", "io.kestra.core.tasks.flows.Dag", "Dag"]
    tasks: list[DagTask] = Field(min_length=1)
    concurrent: int = Field(0, ge=0)

    def child_lists(self) -> list[list[Task]]:
        return [[t.task for t in self.tasks], *super().child_lists()]

    @model_validator(mode="after")
    def _dependencies_form_a_dag(self) -> Dag:
        # An unknown dependency or a cycle would leave the execution waiting forever: refuse it up front.
        ids = {node.task.id for node in self.tasks}
        for node in self.tasks:
            unknown = [dep for dep in node.dependsOn if dep not in ids]
            if unknown:
                raise ValueError(f"task '{node.task.id}' depends on {unknown}, not a task of this Dag")
        deps = {node.task.id: set(node.dependsOn) for node in self.tasks}
        done: set[str] = set()
        while len(done) < len(deps):
            ready = {task_id for task_id, needs in deps.items() if task_id not in done and needs <= done}
            if not ready:
                raise ValueError(f"dependsOn forms a cycle among {sorted(set(deps) - done)}")
            done |= ready
        return self


class Pause(FlowableTask):
    type: Literal["io.kestra.plugin.core.flow.Pause", "io.kestra.core.tasks.flows.Pause", "Pause"]
    delay: Duration | TemplatedDuration | None = None
    pauseDuration: Duration | TemplatedDuration | None = Field(
        None, description="How long it waits; a template (e.g. `{{ inputs.delay }}`) is rendered when it starts.")
    behavior: Literal["RESUME", "WARN", "CANCEL", "FAIL"] = Field(
        "RESUME", description="How the pause ends when its pauseDuration passes: RESUME (SUCCESS), WARN (WARNING), "
                              "FAIL (FAILED), CANCEL (the execution ends CANCELLED). A resume always succeeds.")
    retry: Annotated[Retry | None, not_supported_yet("retry on a Pause", None)] = None
    errors: Annotated[list[AnyTask], not_supported_yet(
        "errors on a Pause", [], ": a Pause runs no tasks; put them on the flow")] = Field(default_factory=list)
    finally_: Annotated[list[AnyTask], not_supported_yet(
        "finally on a Pause", [], ": a Pause runs no tasks; put them on the flow")] = Field(
        default_factory=list, alias="finally")
    onResume: list[InputDef] = Field(
        default_factory=list, description="Inputs given with the resume, validated as flow inputs are; "
                                          "`outputs.<pause>.onResume`.")

    @field_validator("onResume")
    @classmethod
    def _no_secret_on_resume(cls, value: list[Any]) -> list[Any]:
        # They become the task's outputs, which are stored in clear: a secret must come as a SECRET flow input.
        if any(getattr(inp, "type", None) == "SECRET" for inp in value):
            raise ValueError("SECRET inputs in onResume are not supported yet: declare them as flow inputs")
        return value

    @property
    def wait(self) -> timedelta | str | None:
        return self.pauseDuration or self.delay


class SubflowCall(FlowableTask):
    """What starts executions of another flow: a Subflow, and ForEachItem (app/model/for_each_item.py)."""

    namespace: str
    flowId: str
    revision: int | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, str] | list[dict[str, str]] = Field(default_factory=dict)
    wait: bool = True
    transmitFailed: bool = True
    inheritLabels: bool = False
    timeout: Annotated[Duration | None, not_supported_yet(
        "timeout on a Subflow or ForEachItem", None, ": set it on the subflow's tasks")] = None


class Subflow(SubflowCall):
    type: Literal["io.kestra.plugin.core.flow.Subflow", "io.kestra.core.tasks.flows.Subflow", "Subflow"]
    outputs: dict[str, Any] = Field(default_factory=dict)
    scheduleDate: Annotated[str | None, not_supported_yet("Subflow scheduleDate", None)] = None
    errors: Annotated[list[AnyTask], not_supported_yet(
        "errors on a Subflow", [], ": put them in the subflow, or on this flow")] = Field(default_factory=list)
    finally_: Annotated[list[AnyTask], not_supported_yet(
        "finally on a Subflow", [], ": put them in the subflow, or on this flow")] = Field(
        default_factory=list, alias="finally")


class Cache(Model):
    patterns: list[str] = Field(min_length=1, description="Globs of the files to keep, relative to the folder.")
    ttl: Duration | None = Field(None, description="How long the kept files stay valid; none means for ever.")


class WorkingDirectory(FlowableTask):
    """Children run one after another on one worker, sharing a temporary folder."""

    type: Literal[
        "io.kestra.plugin.core.flow.WorkingDirectory", "io.kestra.core.tasks.flows.WorkingDirectory",
        "WorkingDirectory",
    ]
    tasks: list[AnyTask] = Field(min_length=1)
    inputFiles: dict[str, Any] | str | None = Field(
        None, description="Files written into the folder before the first child: name -> text or kestra:// URI.")
    outputFiles: list[str] = Field(
        default_factory=list, description="Globs of files kept when the last child ended: `outputs.outputFiles`.")
    namespaceFiles: NamespaceFiles | None = None
    cache: Cache | None = Field(
        None, description="Files kept at the end, put back into the next execution's folder (workers/wd_cache.py).")

    def child_lists(self) -> list[list[Task]]:
        return [self.tasks, *super().child_lists()]


def allowed(task: Task, state: State) -> State:
    """A task's end as its `allowFailure` (a failure ends it WARNING) and `allowWarning` (a warning, SUCCESS) make
    it; a kill stays a kill."""
    if state.failed and state != State.KILLED and (task.allowFailure or isinstance(task, AllowFailure)):
        state = State.WARNING
    return State.SUCCESS if state == State.WARNING and task.allowWarning else state


def is_flowable(task: Task) -> bool:
    """Its children's runs are created by the executor step. WorkingDirectory is a flowable in Kestra's model but
    runs on one worker as a whole."""
    return task.kind == "flowable" and not isinstance(task, WorkingDirectory)


FLOWABLE_TASKS: list[type[FlowableTask]] = [
    Sequential, AllowFailure, Parallel, If, Switch, ForEach, EachSequential, EachParallel, Dag, Pause, Subflow,
    WorkingDirectory, LoopUntil,
]
LOOPS = (ForEach, EachSequential, EachParallel)
AnyTask = Any  # resolved to the union of every registered task type by app/model/registry.py
InputDef = Any  # resolved to the input union (app/model/inputs) by app/model/registry.py
