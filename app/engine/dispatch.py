"""Sending messages: one per task run, routed to the queue of its worker group; what a queue still holds."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from app import runtime
from app.model.records import Execution, TaskRun

log = logging.getLogger("celestra.dispatch")

# Set by a process that consumes the queues itself (the embedded worker): it subscribes to a queue first seen at
# dispatch time, such as a worker group named by a template, before the message is sent there.
QueueSubscriber = Callable[[str], None]
_subscriber: QueueSubscriber | None = None


def subscribe_queues(subscriber: QueueSubscriber) -> None:
    global _subscriber
    _subscriber = subscriber


def unsubscribe_queues(subscriber: QueueSubscriber) -> None:
    global _subscriber
    if _subscriber == subscriber:
        _subscriber = None


@dataclass(frozen=True)
class RunMessage:
    """What a worker needs to find a task run. Names make a message readable in Flower; they are identifiers,
    never property values."""

    execution_id: str
    task_run_id: str
    namespace: str
    flow_id: str
    task_id: str
    group: str | None


def start_execution(execution_id: str) -> None:
    from app.celery_app import START_EXECUTION, get_celery

    get_celery().send_task(START_EXECUTION, args=[execution_id])


def send_task_runs(ex: Execution, runs: list[TaskRun]) -> None:
    send([RunMessage(ex.id, run.id, ex.namespace, ex.flow_id, run.task_id, run.worker_group) for run in runs])


def shown_name(task_name: str, namespace: str, flow_id: str, part_id: str) -> str:
    """The name Flower and the worker's log show for a message (Celery's `shadow`): the Celery task's, with the
    flow and the task (or trigger) it runs, e.g. celestra.run_task[company.team.etl:extract]."""
    return f"{task_name}[{namespace}.{flow_id}:{part_id}]"


def queue_of(group: str | None) -> str:
    return group or runtime.settings().default_queue


def send(messages: Iterable[RunMessage]) -> None:
    """Publish on one producer: a fan-out of thousands of runs does not take a connection per message."""
    from app.celery_app import RUN_TASK, get_celery

    celery = get_celery()
    embedded = runtime.settings().embedded
    with celery.producer_or_acquire() as producer:
        for message in messages:
            queue = queue_of(message.group)
            if embedded and _subscriber is not None:
                _subscriber(queue)
            celery.send_task(
                RUN_TASK,
                args=[message.execution_id, message.task_run_id],
                kwargs={"namespace": message.namespace, "flow": message.flow_id, "task": message.task_id,
                        "group": message.group},
                queue=queue, producer=producer,
                shadow=shown_name(RUN_TASK, message.namespace, message.flow_id, message.task_id),
            )


def send_evaluation(namespace: str, flow_id: str, trigger_id: str, evaluation_id: str, group: str | None) -> None:
    """One polling trigger evaluation, to a worker of its group (ids only: the worker reads the trigger)."""
    from app.celery_app import EVALUATE_TRIGGER, get_celery

    queue = queue_of(group)
    if runtime.settings().embedded and _subscriber is not None:
        _subscriber(queue)
    get_celery().send_task(EVALUATE_TRIGGER, args=[namespace, flow_id, trigger_id, evaluation_id],
                           kwargs={"group": group}, queue=queue,
                           shadow=shown_name(EVALUATE_TRIGGER, namespace, flow_id, trigger_id))


def queue_depth(queue: str) -> int | None:
    """How many messages the broker holds in `queue` (not those a worker has fetched); None if it cannot tell."""
    from app.celery_app import get_celery

    celery = get_celery()
    try:
        with celery.connection_for_write() as connection:
            # Celery's own declaration of the queue, so a broker that checks arguments (RabbitMQ) accepts it.
            declared = celery.amqp.queues[queue].bind(connection.default_channel).queue_declare()
            return int(declared.message_count)
    except Exception as exc:  # noqa: BLE001 - the broker is away: nothing can be decided now
        log.warning("cannot read the depth of queue %r: %s", queue, exc)
        return None
