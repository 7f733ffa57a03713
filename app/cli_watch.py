"""What `celestra run` and `celestra execute` show of an execution: its log lines as they come, a line when it waits
(paused, a task waiting to be retried, a task waiting for a worker of its group), and its summary, until it ends or
the command's `--timeout` passes; and, embedded, how a command hands the rest of an execution to this process or to
a background one."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from app.client import Client, ExecutionTimeout
from app.model.records import Execution, now
from app.model.states import State

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="Settings file (YAML).", envvar="CELESTRA_CONFIG")
]


def client_for(config: Path | None) -> Client:
    """The Client every command uses: from --config, else from the environment and the defaults."""
    return Client(config=config) if config else Client()


def fail(message: str, code: int) -> None:
    """Say what went wrong, in red on stderr, and exit with `code`."""
    err.print(f"[red]{escape(message)}[/red]", highlight=False)
    raise typer.Exit(code)


POLL = 0.05  # seconds between reads of new log lines and of the execution's state
CHECK_EVERY = 0.5  # seconds between looks at what the execution waits for
GROUP_WAIT_NOTICE = timedelta(seconds=2)  # a run unclaimed this long is said to wait for its group

out = Console()
err = Console(stderr=True)
STATE_STYLE = {"SUCCESS": "green", "WARNING": "yellow", "FAILED": "red", "KILLED": "red", "RUNNING": "cyan"}
LEVEL_STYLE = {"ERROR": "red", "WARN": "yellow", "DEBUG": "dim", "TRACE": "dim"}


def run_the_rest(client: Client, execution_id: str) -> None:
    """Embedded: run what is left of the execution in this process (nothing else would), showing its logs, until
    it ends or pauses; exits with the execution's code."""
    follow(client, execution_id, None, print_log,
           lambda text: err.print(f"[yellow]{escape(text)}[/yellow]", highlight=False), until_paused=True)
    ex = client.get(execution_id)
    out.print(f"Execution [bold]{ex.id}[/bold] {ex.state.value}", highlight=False)
    raise typer.Exit(exit_code(ex) if ex.state.terminal else 0)


def exit_code(ex: Execution) -> int:
    return 0 if ex.state in (State.SUCCESS, State.WARNING) else 1


def print_log(row: dict[str, Any]) -> None:
    level = row["level"]
    style = LEVEL_STYLE.get(level, "")
    stamp = row["timestamp"].strftime("%H:%M:%S.%f")[:-3]
    task = escape(row.get("task_id") or "-")
    message = escape(row["message"])  # a log line is data: brackets in it are not Rich markup
    out.print(f"[dim]{stamp}[/dim] [{style}]{level:<5}[/{style}] [bold]{task}[/bold] {message}"
              if style else f"[dim]{stamp}[/dim] {level:<5} [bold]{task}[/bold] {message}",
              highlight=False, markup=True, soft_wrap=True)


def summary(ex: Execution) -> None:
    table = Table(title=f"{ex.namespace}.{ex.flow_id}  {ex.id}", title_justify="left")
    for column in ("task", "value", "state", "attempts", "group", "worker", "duration"):
        table.add_column(column)
    for run in ex.task_runs:
        duration = f"{(run.ended - run.started).total_seconds() * 1000:.0f} ms" if run.ended and run.started else ""
        style = STATE_STYLE.get(run.state.value, "")
        table.add_row(run.task_id, run.value or "", f"[{style}]{run.state.value}[/{style}]" if style else run.state,
                      str(len(run.attempts)), run.worker_group or "", run.worker or "", duration)
    out.print(table)
    style = STATE_STYLE.get(ex.state.value, "")
    out.print(f"Execution [bold]{ex.id}[/bold] ended [{style}]{ex.state.value}[/{style}]")
    if ex.outputs:
        out.print_json(json.dumps(ex.outputs))
    if ex.error:
        err.print(f"[red]{escape(ex.error)}[/red]", highlight=False)


def watch(client: Client, ex: Execution, timeout: float | None, as_json: bool) -> None:
    """Follow the execution to its end (logs, what it waits for), print it, exit with its code."""
    deadline = time.monotonic() + timeout if timeout is not None else None
    try:
        if as_json:
            ended = client.wait(ex.id, timeout)
        else:
            out.print(f"Execution [bold]{ex.id}[/bold] of {ex.namespace}.{ex.flow_id} started", highlight=False)
            follow(client, ex.id, deadline, print_log,
                             lambda text: err.print(f"[yellow]{escape(text)}[/yellow]", highlight=False))
            ended = client.get(ex.id)
    except ExecutionTimeout:
        _timed_out(client, ex.id, timeout, as_json)
    if as_json:
        sys.stdout.write(json.dumps(ended.to_json(), default=str) + "\n")
    else:
        summary(ended)
    raise typer.Exit(exit_code(ended))


def _timed_out(client: Client, execution_id: str, timeout: float | None, as_json: bool) -> None:
    """Exit 3. Embedded, nothing would run the execution once this command exits: it is killed first."""
    if client.settings.embedded:
        client.cancel(execution_id)
        with contextlib.suppress(ExecutionTimeout):  # the kill reached its task within 10 s, or not
            client.wait(execution_id, 10)
        what = "killed: in embedded mode nothing runs it once this command exits"
    else:
        what = f"it goes on: follow it with `celestra logs {execution_id} --follow`"
    ex = client.get(execution_id)
    message = f"Execution {execution_id} did not end within {timeout:g} s ({ex.state.value}); {what}"
    if as_json:
        sys.stdout.write(json.dumps({**ex.to_json(), "timedOut": True, "message": message}, default=str) + "\n")
    else:
        err.print(f"[yellow]{escape(message)}[/yellow]", highlight=False)
    raise typer.Exit(3)


def follow(client: Client, execution_id: str, deadline: float | None, on_log: Callable[[dict[str, Any]], None],
           on_notice: Callable[[str], None], until_paused: bool = False) -> None:
    """Until the execution ends (or, `until_paused`, pauses); ExecutionTimeout once `deadline` (time.monotonic) has
    passed."""
    after, seen, next_check = 0, set[tuple[str, ...]](), 0.0
    while True:
        state = client.state(execution_id)
        ended = state.terminal or (until_paused and state == State.PAUSED and _waits_for_a_resume(client, execution_id))
        for row in client.logs(execution_id, after=after):
            after = row["id"]
            on_log(row)
        if ended:
            return
        moment = time.monotonic()
        if moment >= next_check:
            for text in notices(client.get(execution_id), seen):
                on_notice(text)
            next_check = moment + CHECK_EVERY
        if deadline is not None and moment >= deadline:
            raise ExecutionTimeout(f"Execution {execution_id} did not end in time")
        time.sleep(POLL)


def _waits_for_a_resume(client: Client, execution_id: str) -> bool:
    """Paused with no timer pending (a pauseDuration or timeout would end the pause by itself)."""
    paused = [run for run in client.get(execution_id).task_runs if run.state == State.PAUSED]
    return bool(paused) and all(run.next_at is None for run in paused)


def notices(ex: Execution, seen: set[tuple[str, ...]]) -> Iterator[str]:
    """Each thing the execution waits for, once (`seen` remembers what was said)."""
    moment = now()
    for run in ex.task_runs:
        key: tuple[str, ...]
        if run.state == State.PAUSED:
            key, text = ("paused", run.id), f"Paused at task '{run.task_id}': resume with `celestra resume {ex.id}`"
        elif run.state == State.RETRYING:
            when = f" at {run.next_at:%H:%M:%S}" if run.next_at else ""
            key = ("retrying", run.id, str(len(run.attempts)))
            text = f"Task '{run.task_id}' failed (attempt {len(run.attempts)}); it runs again{when}"
        elif run.state == State.CREATED and run.worker_group and moment - run.created > GROUP_WAIT_NOTICE:
            key = ("group", run.id)
            text = f"Task '{run.task_id}' waits for a worker of group '{run.worker_group}' (celestra workers)"
        else:
            continue
        if key not in seen:
            seen.add(key)
            yield text


def carry_in_background(client: Client, execution_id: str, config: Path | None) -> None:
    """Embedded `execute --no-wait`: a `celestra carry ID` process of its own runs the execution to its end."""
    import subprocess

    settings = client.settings
    logs = Path(settings.home) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "app.cli", "carry", execution_id, *(["--config", str(config)] if config else [])]
    env = {**os.environ, "CELESTRA_HOME": str(Path(settings.home).resolve())}  # its state, whatever set it
    for name in ("database_url", "storage_url"):
        if getattr(settings, name):
            env[f"CELESTRA_{name.upper()}"] = str(getattr(settings, name))
    with (logs / f"carry-{execution_id}.log").open("ab") as sink:
        subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, env=env,
                         start_new_session=True)
