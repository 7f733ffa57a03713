"""`celestra` command line (typer + rich). Exit codes: 0 success, 1 failed/killed, 2 invalid flow or input,
3 the execution did not end within --timeout."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from app import cli_api, cli_files, cli_probe, cli_watch
from app.cli_watch import ConfigOption, err, out
from app.errors import CelestraError, FlowValidationError, NotFoundError
from app.model.inputs import InputError

cli = typer.Typer(no_args_is_help=True, add_completion=False, help="Kestra-style YAML flows on Celery.")
flow_cli = typer.Typer(no_args_is_help=True, help="Deployed flows.")
cli.add_typer(flow_cli, name="flow")
for _module in (cli_files, cli_api, cli_probe):  # `namespace-files`, `files`, `webserver`, `api-token`, `probe`
    _module.register(cli)
_client, _fail = cli_watch.client_for, cli_watch.fail


def _parse_inputs(pairs: list[str]) -> dict[str, Any]:
    inputs: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"input {pair!r} must be key=value", param_hint="-i")
        inputs[key] = value
    return inputs


@cli.command()
def run(
    flow_file: Annotated[Path, typer.Argument(help="Flow YAML file.")],
    inputs: Annotated[list[str], typer.Option("--input", "-i", help="key=value (repeatable).")] = [],  # noqa: B006
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object, nothing else.")] = False,
    timeout: Annotated[float | None, typer.Option(help="Stop waiting after this many seconds (exit 3).")] = None,
    config: ConfigOption = None,
) -> None:
    """Validate and run a flow file; stream its logs; exit 0 on success, 1 on failure, 2 on invalid input, 3 when
    it did not end within --timeout."""
    client = _client(config)
    try:
        ex = client.run(flow_file, _parse_inputs(inputs), wait=False)
    except (FlowValidationError, InputError) as exc:
        _fail(str(exc), 2)
    cli_watch.watch(client, ex, timeout, as_json)


def _flow_files(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """The flow files named, folders expanded (*.yaml, *.yml, recursively); and the folders that hold none."""
    files: list[Path] = []
    empty: list[Path] = []
    for path in paths:
        found = sorted([*path.glob("**/*.yaml"), *path.glob("**/*.yml")]) if path.is_dir() else [path]
        if not found:
            empty.append(path)
        files += found
    return files, empty


@cli.command()
def validate(paths: Annotated[list[Path], typer.Argument(help="Flow files or folders.")],
             config: ConfigOption = None) -> None:
    """Check flow files; every problem names file, line, column and field."""
    client = _client(config)
    files, empty = _flow_files(paths)
    bad = len(empty)
    for path in empty:
        err.print(f"[red]✗[/red] {escape(str(path))}: no flow files (*.yaml, *.yml) in this folder", highlight=False)
    for file in files:  # every file is reported, whatever happened to the ones before it
        try:
            flow, _ = client.load(file)
            out.print(f"[green]✓[/green] {file} ({flow.namespace}.{flow.id})", highlight=False)
        except FlowValidationError as exc:
            bad += 1
            for problem in exc.problems:
                err.print(f"[red]✗[/red] {escape(problem)}", highlight=False)
        except CelestraError as exc:
            bad += 1
            err.print(f"[red]✗[/red] {escape(f'{file}: {exc}')}", highlight=False)
        except Exception as exc:  # a loader bug must not hide the files after this one
            bad += 1
            err.print(f"[red]✗[/red] {escape(f'{file}: internal error, please report it: {exc!r}')}",
                      highlight=False)
    raise typer.Exit(2 if bad else 0)


@cli.command()
def schema(output: Annotated[Path | None, typer.Option("--output", "-o")] = None) -> None:
    """JSON schema of flow files, for editor autocompletion and validation."""
    from app.model.json_schema import flow_json_schema

    text = json.dumps(flow_json_schema(), indent=2)
    if output:
        output.write_text(text + "\n")
    else:
        sys.stdout.write(text + "\n")


@cli.command()
def plugins(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every task type and task runner installed (entry points), with its aliases."""
    from app.model.registry import plugin_rows

    try:
        rows = plugin_rows()
    except CelestraError as exc:
        _fail(str(exc), 2)
    if as_json:
        sys.stdout.write(json.dumps([row.__dict__ for row in rows], indent=2) + "\n")
        return
    for row in rows:  # one line each, so that it greps well
        origin = row.family + (f" [{row.extra}]" if row.extra else "")
        aliases = f" ({', '.join(row.aliases)})" if row.aliases else ""
        out.print(f"{row.kind:<6} [bold]{row.type}[/bold]{escape(aliases)}  [dim]{escape(origin)}: {row.target}[/dim]",
                  highlight=False, soft_wrap=True)


@flow_cli.command("deploy")
def flow_deploy(paths: Annotated[list[Path], typer.Argument(help="Flow files or folders.")],
                config: ConfigOption = None) -> None:
    """Store flows (a new revision when the source changed) so `celestra execute NS ID` can run them. Every file is
    validated first: if one is invalid, none is deployed."""
    client = _client(config)
    files, empty = _flow_files(paths)
    if empty:
        _fail("; ".join(f"{path}: no flow files (*.yaml, *.yml) in this folder" for path in empty), 2)
    problems: list[str] = []
    for file in files:
        try:
            client.validate(file)
        except FlowValidationError as exc:
            problems += exc.problems
        except CelestraError as exc:
            problems.append(f"{file}: {exc}")
    if problems:
        _fail("\n".join(problems), 2)
    for file in files:
        deployed = client.deploy(file)
        out.print(f"{deployed['namespace']}.{deployed['id']} revision {deployed['revision']}", highlight=False)


@flow_cli.command("list")
def flow_list(namespace: Annotated[str | None, typer.Option()] = None, config: ConfigOption = None) -> None:
    for row in _client(config).flows(namespace):
        out.print(f"{row['namespace']}.{row['id']}  revision {row['revision']}", highlight=False)


@flow_cli.command("describe")
def flow_describe(
    source: Annotated[str, typer.Argument(help="A flow file, or the namespace of a deployed flow.")],
    flow_id: Annotated[str | None, typer.Argument(help="The deployed flow's id, after its namespace.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False, config: ConfigOption = None,
) -> None:
    """The inputs a flow asks for and the outputs it gives: types, display names, defaults, prefills and when an
    input applies (dependsOn)."""
    client = _client(config)
    try:
        flow = client.validate(Path(source)) if flow_id is None else client.flow(source, flow_id)
    except FlowValidationError as exc:
        _fail("\n".join(exc.problems), 2)
    except CelestraError as exc:
        _fail(str(exc), 2)
    shape = flow.interface()
    if as_json:
        sys.stdout.write(json.dumps(shape, indent=2, default=str) + "\n")
        return
    out.print(f"[bold]{shape['namespace']}.{shape['id']}[/bold]", highlight=False)
    for kind in ("inputs", "outputs"):
        for row in shape[kind]:
            hints = [row["type"], "required" if row["required"] else "optional"]
            hints += [f"{name} {row[name]!r}" for name in ("defaults", "prefill") if row.get(name) is not None]
            if row.get("dependsOn"):
                after, condition = row["dependsOn"]["inputs"], row["dependsOn"]["condition"]
                hints.append("after " + ", ".join(after) if after else "")
                hints.append(f"only if {condition}" if condition is not None else "")
            label = f" \"{row['displayName']}\"" if row["displayName"] else ""
            about = f"  [dim]{escape(row['description'])}[/dim]" if row["description"] else ""
            out.print(f"  {kind[:-1]} [bold]{escape(row['id'])}[/bold]{escape(label)}: "
                      f"{escape(', '.join(h for h in hints if h))}{about}", highlight=False, soft_wrap=True)


@cli.command()
def execute(
    namespace: str,
    flow_id: str,
    inputs: Annotated[list[str], typer.Option("--input", "-i")] = [],  # noqa: B006
    wait: Annotated[bool, typer.Option("--wait/--no-wait")] = True,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    timeout: Annotated[float | None, typer.Option(help="Stop waiting after this many seconds (exit 3).")] = None,
    config: ConfigOption = None,
) -> None:
    """Run a deployed flow; with --wait (the default) like `celestra run`."""
    client = _client(config)
    try:  # embedded --no-wait: the process that carries it runs it, not this one that exits now
        ex = client.execute(namespace, flow_id, _parse_inputs(inputs), wait=False, run_here=wait)
    except NotFoundError as exc:
        _fail(str(exc), 2)
    except InputError as exc:
        _fail(str(exc), 2)
    if wait:
        cli_watch.watch(client, ex, timeout, as_json)
    if client.settings.embedded:  # this process exits now: a process of its own carries the execution on
        cli_watch.carry_in_background(client, ex.id, config)
    if as_json:
        sys.stdout.write(json.dumps(ex.to_json(), default=str) + "\n")
    else:
        out.print(ex.id)
    raise typer.Exit(cli_watch.exit_code(ex) if wait else 0)


@cli.command(hidden=True)
def carry(execution_id: str, config: ConfigOption = None) -> None:
    """Embedded: run an execution until it ends or pauses (what `execute --no-wait` leaves to a process of its
    own)."""
    client = _client(config)
    client.start_embedded()
    cli_watch.follow(client, execution_id, None, lambda row: None, lambda text: None, until_paused=True)


@cli.command()
def logs(
    execution_id: str,
    follow: Annotated[bool, typer.Option("--follow", "-f")] = False,
    config: ConfigOption = None,
) -> None:
    """Print an execution's log lines (and keep following with --follow)."""
    client = _client(config)
    try:
        for row in client.logs(execution_id, follow=follow):
            cli_watch.print_log(row)
    except NotFoundError as exc:
        _fail(str(exc), 2)


@cli.command()
def cancel(execution_id: str, config: ConfigOption = None) -> None:
    """Kill a running execution."""
    try:
        _client(config).cancel(execution_id)
    except NotFoundError as exc:
        _fail(str(exc), 2)
    out.print(f"Execution {execution_id} is being killed")


@cli.command()
def resume(
    execution_id: str,
    inputs: Annotated[list[str], typer.Option("--input", "-i", help="key=value for the Pause's onResume inputs "
                                                                    "(repeatable).")] = [],  # noqa: B006
    config: ConfigOption = None,
) -> None:
    """Resume a paused execution. Embedded, this command then runs the rest of it, until it ends or pauses again:
    nothing else would."""
    client = _client(config)
    if client.settings.embedded:
        client.start_embedded()  # before the resume sends the next runs: to this process's broker
    try:
        resumed = client.resume(execution_id, _parse_inputs(inputs))
    except InputError as exc:
        _fail(str(exc), 2)
    if not resumed:
        _fail(f"Execution {execution_id} has no paused task", 1)
    if client.settings.embedded:
        cli_watch.run_the_rest(client, execution_id)


@cli.command()
def restart(execution_id: str, config: ConfigOption = None) -> None:
    """Restart an ended execution from its failed task runs: the same execution, each failed task a new attempt,
    what succeeded kept. Embedded, this command then runs the rest of it."""
    client = _client(config)
    try:
        client.restart(execution_id)
    except CelestraError as exc:
        _fail(str(exc), 1)
    out.print(f"Execution [bold]{execution_id}[/bold] restarted", highlight=False)
    if client.settings.embedded:
        cli_watch.run_the_rest(client, execution_id)


@cli.command()
def replay(execution_id: str, task: Annotated[str | None, typer.Option(
               "--task", "-t", help="Replay from this task (a task id, or a task run id); default: from the start.")]
           = None, config: ConfigOption = None) -> None:
    """Replay an ended execution as a new one: what came before the task is reused, the flow runs again from
    there. Prints the new execution's id; embedded, this command then runs it."""
    client = _client(config)
    try:
        new = client.replay(execution_id, task)
    except CelestraError as exc:
        _fail(str(exc), 1)
    out.print(f"Execution [bold]{execution_id}[/bold] replayed as [bold]{new.id}[/bold]", highlight=False)
    if client.settings.embedded:
        cli_watch.run_the_rest(client, new.id)


@cli.command()
def executions(
    namespace: Annotated[str | None, typer.Option()] = None,
    flow: Annotated[str | None, typer.Option()] = None,
    state: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option()] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    config: ConfigOption = None,
) -> None:
    """List executions, newest first."""
    found = _client(config).executions(namespace, flow, state, limit)
    if as_json:
        sys.stdout.write(json.dumps([ex.to_json() for ex in found], default=str) + "\n")
        return
    table = Table()
    for column in ("id", "flow", "state", "started", "tasks"):
        table.add_column(column)
    for ex in found:
        table.add_row(ex.id, f"{ex.namespace}.{ex.flow_id}", ex.state.value, str(ex.started or ex.created),
                      str(len(ex.task_runs)))
    out.print(table)


@cli.command()
def server(
    concurrency: Annotated[int, typer.Option(help="Threads handling execution starts.")] = 4,
    config: ConfigOption = None,
) -> None:
    """The executor's server: starts executions, fires timers and triggers, serves the REST API (api_port)."""
    client = _client(config)
    from app.celery_app import get_celery
    from app.services.timers import TimerLoop

    TimerLoop(schedules=True).start()
    cli_api.serve_beside(client.settings)
    get_celery().worker_main(["worker", "-Q", client.settings.executor_queue, "-P", "threads", "-c",
                              str(concurrency), "-n", "server@%h", "--loglevel", "INFO"])


@cli.command()
def worker(
    worker_group: Annotated[str | None, typer.Option("--worker-group", "-g", help="Queue to serve.")] = None,
    concurrency: Annotated[int | None, typer.Option("--concurrency")] = None,
    pool: Annotated[str | None, typer.Option("--pool", "-P")] = None,
    config: ConfigOption = None,
) -> None:
    """A worker; with --worker-group it serves only that group's queue."""
    client = _client(config)
    from app.celery_app import get_celery
    from app.engine.routing import UnknownWorkerGroup, check_group

    if worker_group:
        try:
            check_group(client.settings, worker_group)
        except UnknownWorkerGroup as exc:
            _fail(str(exc), 2)
    queue = worker_group or client.settings.default_queue
    argv = ["worker", "-Q", queue, "-n", f"{worker_group or 'default'}@%h", "--loglevel", "INFO"]
    if concurrency:
        argv += ["-c", str(concurrency)]
    if pool:
        argv += ["-P", pool]
    get_celery().worker_main(argv)


@cli.command()
def workers(as_json: Annotated[bool, typer.Option("--json")] = False, config: ConfigOption = None) -> None:
    """Worker groups with their live workers and queue depth."""
    groups = _client(config).worker_groups()
    if as_json:
        sys.stdout.write(json.dumps(groups) + "\n")
        return
    table = Table()
    for column in ("group", "description", "live workers", "queued"):
        table.add_column(column)
    for group in groups:
        names = ", ".join(w["id"] for w in group["workers"]) or "[red]none[/red]"
        queued = "" if group["queued"] is None else str(group["queued"])
        table.add_row(escape(group["key"]), escape(group["description"]), names, queued)
    out.print(table)


@cli.command()
def keygen() -> None:
    """A new encryption key for SECRET inputs: set it as CELESTRA_ENCRYPTION_KEY on clients, server and workers."""
    from app.store.encryption import new_key

    sys.stdout.write(new_key() + "\n")


@cli.command()
def triggers(
    namespace: Annotated[str | None, typer.Option("--namespace", "-n")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    config: ConfigOption = None,
) -> None:
    """Schedule and polling triggers of deployed flows: when each fires or is evaluated next, what the last
    evaluation found and on which worker it ran, what it fired last."""
    _client(config)
    from app.services.scheduler import trigger_states

    states = trigger_states(namespace)
    if as_json:
        sys.stdout.write(json.dumps(states, default=str) + "\n")
        return
    table = Table()
    for column in ("flow", "trigger", "next", "last result", "evaluated on", "last fired", "last execution"):
        table.add_column(column, overflow="fold")
    for state in states:
        upcoming = f"evaluating since {state['evaluation_sent']}" if state.get("evaluation_id") else str(
            state["next_date"] or "none left")
        result = f"{state['last_result']} ({state['last_evaluated']})" if state.get("last_result") else ""
        table.add_row(escape(f"{state['namespace']}.{state['flow_id']}"), escape(state["trigger_id"]), upcoming,
                      escape(result), escape(state.get("evaluated_on") or ""), str(state["last_date"] or ""),
                      state["last_execution_id"] or "")
    out.print(table)


@cli.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def flower(
    ctx: typer.Context,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="Serve it without authentication (local use).")] = False,
    config: ConfigOption = None,
) -> None:
    """The Flower dashboard for this cluster, on 127.0.0.1, behind CELESTRA_FLOWER_BASIC_AUTH=user:password.

    Extra options go to Flower, e.g. --port=5555, --address=0.0.0.0.
    """
    client = _client(config)
    from app.services.flower import flower_launch, run_flower

    launch = flower_launch(ctx.args, client.settings, no_auth=no_auth)
    err.print(escape(launch.summary()), highlight=False)
    run_flower(launch)


def main() -> None:
    try:
        cli()
    except CelestraError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
