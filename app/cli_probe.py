"""`celestra probe`: a container's liveness or readiness command for `celestra server` and for a worker, read from
the file each round of its loop rewrites (app/engine/probes.py). Neither the broker nor the database is asked: a
probe must answer in an outage without restarting what rides it out."""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Annotated

import typer

from app import runtime
from app.cli_watch import ConfigOption
from app.engine import probes
from app.settings import load_settings


class Role(StrEnum):
    server = "server"
    worker = "worker"


def register(cli: typer.Typer) -> None:
    cli.command()(probe)


def probe(
    role: Annotated[Role, typer.Argument(help="server, or worker.")],
    worker_group: Annotated[str | None, typer.Option("--worker-group", "-g",
                                                     help="The worker's group: its node is GROUP@host.")] = None,
    node: Annotated[str | None, typer.Option(help="The Celery node name, for a worker started with -n NAME.")] = None,
    ready: Annotated[bool, typer.Option("--ready", help="Also require that its last round reached the store.")]
    = False,
    max_age: Annotated[float, typer.Option(help="Seconds since the loop's last round beyond which it is dead.")]
    = 120.0,
    config: ConfigOption = None,
) -> None:
    """Exit 0 if the server (or worker) on this host is alive (with --ready: and reaches the store), else 1 saying
    why. A worker started by `celestra worker --worker-group G` is G@host; `celery -A app worker -n NAME` is NAME."""
    if role is Role.server and (worker_group or node):
        sys.stderr.write("celestra probe server takes neither --worker-group nor --node\n")
        raise typer.Exit(2)
    runtime.configure(load_settings(config))  # probe_dir: where the process writes its file
    name = node or probes.node_name("server" if role is Role.server else worker_group or "default")
    problem = probes.check(name, max_age, ready)
    if problem is not None:
        sys.stderr.write(problem + "\n")
        raise typer.Exit(1)
    sys.stdout.write(f"{name}: {'ready' if ready else 'alive'}\n")
