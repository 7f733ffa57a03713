"""Tables. Changes here need a migration in app/store/migrations/versions/."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()
TS = sa.DateTime(timezone=True)

flows = sa.Table(
    "flows",
    metadata,
    sa.Column("namespace", sa.String(255), primary_key=True),
    sa.Column("id", sa.String(255), primary_key=True),
    sa.Column("revision", sa.Integer, primary_key=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("created", TS, nullable=False),
)

executions = sa.Table(
    "executions",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("namespace", sa.String(255), nullable=False, index=True),
    sa.Column("flow_id", sa.String(255), nullable=False),
    sa.Column("flow_revision", sa.Integer),
    sa.Column("flow_source", sa.Text, nullable=False),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("inputs", sa.JSON),
    sa.Column("outputs", sa.JSON),
    sa.Column("labels", sa.JSON),
    sa.Column("parent_execution_id", sa.String(32), index=True),
    sa.Column("parent_task_run_id", sa.String(32)),
    sa.Column("trigger", sa.JSON),  # what fired it (`{{ trigger.date }}`...), None when started by hand
    sa.Column("trigger_key", sa.String(255)),  # one execution per trigger event: `tick@<date>`, `after:<execution>`
    # False until the flow triggers watching this execution's end were evaluated (app/engine/flow_triggers.py).
    sa.Column("downstream_checked", sa.Boolean, nullable=False, server_default=sa.true(), index=True),
    sa.Column("error", sa.Text),
    sa.Column("created", TS, nullable=False, index=True),
    sa.Column("started", TS),
    sa.Column("ended", TS),
    # Bumped by every transaction that writes the execution's task runs under its lock, and stamped on the rows it
    # wrote: a process holding the execution in memory reads only the rows stamped after the version it holds.
    sa.Column("version", sa.Integer, nullable=False, server_default="0"),
    # How many times it was restarted (Kestra's attemptNumber - 1): a copy kept from before a restart is dropped,
    # as the restart deleted runs it still holds.
    sa.Column("restarts", sa.Integer, nullable=False, server_default="0"),
    # Retried as a new execution (retry behavior CREATE_NEW_EXECUTION): the chain's first execution, this try's
    # number, and when the first was created (what maxAttempt and maxDuration count from).
    sa.Column("original_id", sa.String(32)),
    sa.Column("retry_attempt", sa.Integer, nullable=False, server_default="1"),
    sa.Column("original_created", TS),
    sa.Column("sla_due", TS),  # when its next MAX_DURATION sla falls due (app/engine/sla.py)
    # A child execution (Subflow, ForEachItem) whose end its parent has counted (app/store/children.py).
    sa.Column("parent_told", sa.Boolean, nullable=False, server_default=sa.false()),
    # The state it ends in, known once its tasks have ended, while its afterExecution tasks run (app/engine/step.py).
    sa.Column("final_state", sa.String(16)),
    sa.UniqueConstraint("namespace", "flow_id", "trigger_key", name="uq_executions_trigger_key"),
    sa.Index("ix_executions_original_id", "original_id"),
    sa.Index("ix_executions_sla_due", "sla_due"),
)

trigger_toggles = sa.Table(
    "trigger_toggles",
    metadata,  # a trigger switched on or off by a trigger.Toggle task: it wins over the flow's `disabled`
    sa.Column("namespace", sa.String(255), primary_key=True),
    sa.Column("flow_id", sa.String(255), primary_key=True),
    sa.Column("trigger_id", sa.String(255), primary_key=True),
    sa.Column("disabled", sa.Boolean, nullable=False),
    sa.Column("updated", TS, nullable=False),
)

task_runs = sa.Table(
    "task_runs",
    metadata,
    sa.Column("seq", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("id", sa.String(32), nullable=False, unique=True),
    sa.Column("execution_id", sa.String(32), nullable=False, index=True),
    sa.Column("task_id", sa.String(255), nullable=False),
    sa.Column("parent_id", sa.String(32), nullable=False),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("has_value", sa.Boolean, nullable=False),
    sa.Column("loop_values", sa.JSON),
    sa.Column("iteration", sa.Integer),
    # Part of a run's position: the LoopUntil iteration (or loop index) it belongs to, 0 outside loops. Each
    # iteration of a LoopUntil has runs of its own at the same (parent, task, value).
    sa.Column("loop_round", sa.Integer, nullable=False, server_default="0"),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.JSON),
    sa.Column("outputs", sa.JSON),
    sa.Column("worker_group", sa.String(255)),
    sa.Column("worker", sa.String(255)),
    sa.Column("worker_pid", sa.Integer),  # the worker's process that claimed it: a dead one's run is taken over
    sa.Column("claim_token", sa.String(32)),  # the claim that won: a claim retried after an outage knows its own
    sa.Column("external_id", sa.String(255)),
    sa.Column("error", sa.Text),
    sa.Column("created", TS, nullable=False),
    sa.Column("started", TS),
    sa.Column("ended", TS),
    sa.Column("next_at", TS, index=True),
    # When its message was last sent (a runnable run is written with it, in the transaction that makes it runnable):
    # a CREATED run whose message is older than `redelivery_after` and no longer on the broker is sent again.
    sa.Column("sent_at", TS),
    sa.Column("sent_by", sa.Integer),  # the process that sent it (embedded recovery)
    sa.Column("version", sa.Integer, nullable=False, server_default="0"),  # the execution's version that wrote it
    # +1 on every write, claims included: a write from a stale in-memory copy matches no row and is retried.
    sa.Column("row_version", sa.Integer, nullable=False, server_default="0"),
    sa.Index("ix_task_runs_execution_version", "execution_id", "version"),
    sa.Index("ix_task_runs_state_sent_at", "state", "sent_at"),
    # A task run is unique by where it sits: this is what makes a replayed executor step unable to duplicate it.
    sa.UniqueConstraint("execution_id", "parent_id", "task_id", "value", "loop_round", name="uq_task_run_position"),
)

logs = sa.Table(
    "logs",
    metadata,
    sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("execution_id", sa.String(32), nullable=False, index=True),
    sa.Column("task_run_id", sa.String(32)),
    sa.Column("task_id", sa.String(255)),
    sa.Column("attempt", sa.Integer),
    sa.Column("timestamp", TS, nullable=False),
    sa.Column("level", sa.String(8), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
)

kv = sa.Table(
    "kv",
    metadata,
    sa.Column("namespace", sa.String(255), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("value", sa.JSON),
    sa.Column("expires", TS),
)

workers = sa.Table(
    "workers",
    metadata,
    sa.Column("id", sa.String(255), primary_key=True),  # the Celery node name, e.g. gpu@host
    sa.Column("hostname", sa.String(255), nullable=False),
    sa.Column("groups", sa.JSON, nullable=False),  # the queues (worker groups) it consumes
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started", TS, nullable=False),
    sa.Column("heartbeat", TS, nullable=False, index=True),
)

triggers = sa.Table(
    "triggers",
    metadata,  # the server's state per schedule or polling trigger (a polling evaluation's result: its worker)
    sa.Column("namespace", sa.String(255), primary_key=True),
    sa.Column("flow_id", sa.String(255), primary_key=True),
    sa.Column("trigger_id", sa.String(255), primary_key=True),
    sa.Column("definition", sa.Text, nullable=False),  # the trigger as last seen: a changed cron starts afresh
    sa.Column("next_date", TS),  # the next fire date or evaluation; None: no date left (ScheduleOnDates)
    sa.Column("last_date", TS),
    sa.Column("last_execution_id", sa.String(32)),
    sa.Column("updated", TS, nullable=False),
    # Polling triggers (app/services/polling.py): the evaluation sent and not answered yet (one at a time), and
    # what the last one found. A result is stored only if its evaluation id is still the row's.
    sa.Column("evaluation_id", sa.String(32)),
    sa.Column("evaluation_sent", TS),
    sa.Column("evaluated_on", sa.String(255)),  # the worker (Celery node name) of the last evaluation
    sa.Column("last_evaluated", TS),
    sa.Column("last_result", sa.Text),
    sa.Column("state", sa.JSON),  # what the trigger keeps between evaluations (files already seen)
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,  # the REST API's bearer tokens (`celestra api-token create`): only a SHA-256 of each is kept
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created", TS, nullable=False),
    sa.Column("last_used", TS),
)
