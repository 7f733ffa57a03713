"""Every runnable task run has a message on its way: what the broker does not hold any more is sent again.

A run becomes runnable in a step's transaction, stored CREATED with `sent_at`: that row is the durable record of a
message that is due (an outbox that is the run itself). The message is sent after commit. If the send fails (broker
away), the broker loses it (restarted empty), or a worker fetched it and died before claiming it (Redis would give
it back only after its one-hour visibility timeout), the run stays CREATED. The server's timer loop calls
`resend_lost`: per queue, it compares the CREATED runs whose message is older than `redelivery_after` with how many
messages the broker still holds there, and sends the oldest runs the broker cannot be holding again.

A message sent twice is harmless: the claim is a conditional update, so only one delivery runs the attempt, and the
other is acknowledged without running anything.

Embedded processes (`celestra run`, `resume`, ... with no broker) each have an in-memory broker, and share one
SQLite home: a run made runnable by a process that has exited (a resume from a second terminal, `execute
--no-wait`) has its message in no broker at all, and a run that process was running has nobody to end it. Every
embedded process picks them up (`recover_embedded`): it sends the runs waiting for longer than a moment to its own
broker (only those an exited process sent: a live one claims its own), and runs again what a dead process of
this host was running.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import timedelta

from app import runtime
from app.engine import attempts, dispatch
from app.engine.dispatch import RunMessage
from app.model.records import now
from app.store import waiting

log = logging.getLogger("celestra.redelivery")
EMBEDDED_WAIT = timedelta(seconds=2)  # a live embedded process claims what it sent within milliseconds


def resend_lost(older_than: timedelta | None = None) -> int:
    """Send again the messages of runs the broker lost; returns how many were sent."""
    store = runtime.store()
    sent_before = now() - (older_than or timedelta(seconds=runtime.settings().redelivery_after))
    sent = 0
    for group, count in waiting.waiting_counts(store, sent_before).items():
        queue = dispatch.queue_of(group)
        held = dispatch.queue_depth(queue)
        if held is None or count <= held:
            continue  # the broker is away (nothing can be sent either), or it may hold all of them
        # Each message the queue holds belongs to one run at most, so at least this many of these runs have none.
        # Which ones cannot be told: the oldest are sent (a copy of a message still queued is harmless).
        oldest = waiting.waiting_runs(store, sent_before, group, count - held)
        lost = [RunMessage(row["execution_id"], row["id"], row["namespace"], row["flow_id"], row["task_id"],
                           row["worker_group"]) for row in oldest]
        dispatch.send(lost)
        waiting.mark_sent(store, [message.task_run_id for message in lost], now())
        sent += len(lost)
        log.warning("queue %r: %d task runs had no message on the broker (lost, never sent, or fetched by a worker "
                    "that died before claiming them); sent again", queue, len(lost))
    return sent


def recover_embedded(older_than: timedelta = EMBEDDED_WAIT) -> int:
    """Embedded: take up what other embedded processes of this home left (see above); how many runs."""
    store = runtime.store()
    sent_before = now() - older_than
    recovered = 0
    for group in waiting.waiting_counts(store, sent_before):
        # What a live process sent is in its broker, and it claims it: only a sender that exited lost its messages.
        rows = [row for row in waiting.waiting_runs(store, sent_before, group, 1000)
                if row["sent_by"] != os.getpid() and not attempts.process_alive(row["sent_by"])]
        if not rows:
            continue
        dispatch.send([RunMessage(row["execution_id"], row["id"], row["namespace"], row["flow_id"], row["task_id"],
                                  row["worker_group"]) for row in rows])
        waiting.mark_sent(store, [row["id"] for row in rows], now())
        recovered += len(rows)
    worker = socket.gethostname()  # an embedded worker's runs carry the host's name (workers/tasks.py)
    for execution_id, task_run_id, pid in store.running_on(worker):
        if pid is not None and pid != os.getpid() and not attempts.process_alive(pid):
            attempts.resend(execution_id, task_run_id, worker, dead_pid=pid)
            recovered += 1
    if recovered:
        log.info("took up %d task runs left by embedded processes that have exited", recovered)
    return recovered
