"""The flow model: Kestra's YAML structure as pydantic models.

Task classes are plugins (workers/plugins/, one module per family, and any installed distribution), registered as
`celestra.tasks` entry points; app/model/registry.py gathers them into the union that `Flow.tasks` is validated
against, so an unknown `type` or property is a validation error, never ignored.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from app.errors import CelestraError
from app.model.log_levels import LogLevel

ID_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9._-]*$"
WORKER_GROUP_KEY_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_-]*$"
TEMPLATE_MARKERS = ("{{", "{%")


def _iso_duration(value: Any) -> Any:
    # Kestra (java.time.Duration) accepts lower-case designators such as PT0.25s.
    return value.strip().upper() if isinstance(value, str) else value


Duration = Annotated[timedelta, BeforeValidator(_iso_duration)]


def _templated(value: Any) -> Any:
    if isinstance(value, str) and any(marker in value for marker in TEMPLATE_MARKERS):
        return value
    raise ValueError("not a template")


# A duration written as a template (`{{ inputs.delay }}`): rendered when it is used, then read as a duration.
TemplatedDuration = Annotated[str, BeforeValidator(_templated)]


def not_supported_yet(name: str, default: Any, hint: str = "") -> AfterValidator:
    """For a Kestra property Celestra does not implement yet: anything but its default refuses the flow, saying so,
    instead of being accepted and ignored."""

    def refuse(value: Any, info: ValidationInfo) -> Any:
        if value != default and not (info.context or {}).get("running"):
            raise ValueError(f"{name} is not supported yet{hint}")
        return value

    return AfterValidator(refuse)


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class WorkerGroup(Model):
    key: str = Field(description="Celery queue of the workers that run this task; may be templated.")
    fallback: Literal["WAIT", "FAIL", "CANCEL"] | None = Field(
        None, description="What happens when no worker of the group is alive (default WAIT)."
    )

    @field_validator("key")
    @classmethod
    def _key_shape(cls, value: str) -> str:
        import re

        if any(m in value for m in TEMPLATE_MARKERS):
            return value  # checked once rendered, on the worker side of dispatch
        if not re.match(WORKER_GROUP_KEY_PATTERN, value):
            raise ValueError(f"worker group key {value!r} must match {WORKER_GROUP_KEY_PATTERN}")
        return value


class NamespaceFiles(Model):
    """Namespace files copied into a task's folder before it runs (`include`/`exclude`: glob patterns)."""

    enabled: bool = True
    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)


class Retry(Model):
    type: Literal["constant", "exponential", "random"] = "constant"
    interval: Duration | None = None
    maxInterval: Duration | None = None
    minInterval: Duration | None = None
    delayFactor: float | None = None
    maxAttempt: int | None = Field(None, ge=1, description="Total attempts, the first one included.")
    maxAttempts: int | None = Field(None, ge=1, description="Alias of maxAttempt.")
    maxDuration: Duration | None = None
    behavior: Literal["RETRY_FAILED_TASK", "CREATE_NEW_EXECUTION"] = Field(
        "RETRY_FAILED_TASK", description="RETRY_FAILED_TASK: a new attempt of the failed task; CREATE_NEW_EXECUTION: "
                                         "the execution ends RETRIED and the flow runs again as a new execution. "
                                         "Kestra's newer names RETRY_FAILED and NEW_EXECUTION are read as these.")
    warningOnRetry: bool = False

    @field_validator("behavior", mode="before")
    @classmethod
    def _newer_names(cls, value: Any) -> Any:
        return {"RETRY_FAILED": "RETRY_FAILED_TASK", "NEW_EXECUTION": "CREATE_NEW_EXECUTION"}.get(value, value)

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt number `attempt + 1` (attempt counts from 1)."""
        base = (self.interval or timedelta()).total_seconds()
        if self.type == "exponential":
            factor = self.delayFactor or 2.0
            base = base * factor ** (attempt - 1)
            if self.maxInterval:
                base = min(base, self.maxInterval.total_seconds())
        elif self.type == "random":
            import random

            low = (self.minInterval or timedelta()).total_seconds()
            high = (self.maxInterval or timedelta(seconds=low)).total_seconds()
            base = random.uniform(low, max(low, high))
        return base

    @property
    def max_attempts(self) -> int | None:
        return self.maxAttempt or self.maxAttempts


class Task(Model):
    """Properties every task has. Subclasses add theirs and pin `type` to their Kestra names."""

    kind: ClassVar[Literal["runnable", "flowable"]] = "runnable"

    id: str = Field(pattern=ID_PATTERN, description="Unique in the flow.")
    type: str
    description: str | None = None
    disabled: bool = False
    allowFailure: bool = Field(False, description="A failure ends this task in WARNING and the flow goes on.")
    allowWarning: bool = False
    retry: Retry | None = None
    timeout: Duration | None = None
    workerGroup: WorkerGroup | None = None
    logLevel: LogLevel | None = Field(None, description="The lowest level of this task's log lines that is kept.")
    logToFile: Annotated[bool, not_supported_yet("logToFile", False, ": the task's logs are stored as rows")] = False
    runIf: str | bool | None = Field(None, description="Rendered when the task run is created: false skips it "
                                                        "(SKIPPED, which the flow counts as a success).")

    def child_lists(self) -> list[list[Task]]:
        """Every list of child tasks (flowables override); used to index the flow and check ids."""
        return []


class Output(Model):
    id: str
    type: str = "STRING"
    value: Any = None
    description: str | None = None
    displayName: str | None = None
    required: bool = True


class Label(Model):
    key: str
    value: str


class SLA(Model):
    """What an execution must meet (Kestra's flow `sla`): end within `duration` (MAX_DURATION), or keep `assert`
    true (EXECUTION_ASSERTION, checked at every step). A breach adds `labels` and ends the execution FAILED or
    CANCELLED (`behavior`), or only labels it (NONE)."""

    id: str
    type: Literal["MAX_DURATION", "EXECUTION_ASSERTION"]
    behavior: Literal["FAIL", "CANCEL", "NONE"] = "FAIL"
    labels: dict[str, str] | list[Label] = Field(default_factory=dict)
    duration: Duration | None = None
    assert_: str | None = Field(None, alias="assert")

    @model_validator(mode="after")
    def _what_it_checks(self) -> SLA:
        if self.type == "MAX_DURATION" and self.duration is None:
            raise ValueError("a MAX_DURATION sla needs `duration`")
        if self.type == "EXECUTION_ASSERTION" and not self.assert_:
            raise ValueError("an EXECUTION_ASSERTION sla needs `assert`")
        return self

    @property
    def label_map(self) -> dict[str, str]:
        if isinstance(self.labels, list):
            return {label.key: label.value for label in self.labels}
        return dict(self.labels)


class PluginDefault(Model):
    type: str
    values: dict[str, Any] = Field(default_factory=dict)
    forced: bool = False


class Concurrency(Model):
    limit: int = Field(ge=1)
    behavior: Literal["QUEUE", "CANCEL", "FAIL"] = "QUEUE"


if TYPE_CHECKING:
    AnyTask = Task
    InputDef = Any
    AnyTrigger = Any


class Flow(Model):
    id: str = Field(pattern=ID_PATTERN)
    namespace: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    revision: int | None = None
    description: str | None = None
    labels: dict[str, str] | list[Label] | None = None
    inputs: list[InputDef] = Field(default_factory=list)
    variables: dict[str, Any] = Field(default_factory=dict)
    tasks: list[AnyTask] = Field(min_length=1)
    errors: list[AnyTask] = Field(default_factory=list)
    finally_: list[AnyTask] = Field(default_factory=list, alias="finally")
    afterExecution: list[AnyTask] = Field(
        default_factory=list, description="Run once the rest has ended (not after a kill), seeing the state it ends in "
                                          "as `execution.state`; they never change that state.")
    outputs: list[Output] = Field(default_factory=list)
    triggers: list[AnyTrigger] = Field(default_factory=list)  # app/model/triggers.py
    taskDefaults: list[PluginDefault] = Field(default_factory=list)
    pluginDefaults: list[PluginDefault] = Field(default_factory=list)
    workerGroup: WorkerGroup | None = None
    retry: Retry | None = None
    concurrency: Concurrency | None = None  # app/engine/concurrency.py
    sla: list[SLA] = Field(default_factory=list)  # app/engine/sla.py
    disabled: bool = False
    deleted: Annotated[bool, not_supported_yet("deleted: true", False, ": delete the flow instead")] = False
    _index: dict[str, Task] | None = PrivateAttr(default=None)

    @property
    def label_map(self) -> dict[str, str]:
        if isinstance(self.labels, list):
            return {label.key: label.value for label in self.labels}
        return dict(self.labels or {})

    def refuse_if_disabled(self) -> None:
        """A disabled flow is not executed, by hand, by a Subflow or by a trigger (as in Kestra)."""
        if self.disabled:
            raise CelestraError(f"Flow {self.namespace}.{self.id} is disabled: it cannot be executed")

    def interface(self) -> dict[str, Any]:
        """What the flow asks for and gives, with the labels and hints meant for people filling it in (display
        names, defaults, prefills, when an input applies): what `celestra flow describe` shows."""
        inputs = [{"id": inp.id, "type": inp.type, "displayName": inp.display_name, "description": inp.description,
                   "required": inp.required, "defaults": inp.defaults, "prefill": inp.prefill,
                   "dependsOn": inp.depends_on.model_dump() if inp.depends_on else None} for inp in self.inputs]
        outputs = [{"id": out.id, "type": out.type, "displayName": out.displayName, "description": out.description,
                    "required": out.required} for out in self.outputs]
        return {"namespace": self.namespace, "id": self.id, "inputs": inputs, "outputs": outputs}

    def task(self, task_id: str) -> Task:
        """A task by id. The index is built once: parsed flows are cached, and this is on the per-task path."""
        if self._index is None:
            self._index = {task.id: task for task in self.all_tasks()}
        return self._index[task_id]

    def all_tasks(self) -> list[Task]:
        """Every task of the flow, depth first."""
        found: list[Task] = []

        def visit(tasks: list[Task]) -> None:
            for task in tasks:
                found.append(task)
                for child_list in task.child_lists():
                    visit(child_list)

        visit([*self.tasks, *self.errors, *self.finally_, *self.afterExecution])
        return found
