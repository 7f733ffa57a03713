"""`celestra webserver` (the REST API alone) and `celestra api-token` (the API's bearer tokens)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from app.cli_watch import ConfigOption, client_for, fail, out
from app.errors import CelestraError
from app.settings import Settings

tokens_cli = typer.Typer(no_args_is_help=True, help="Bearer tokens of the REST API (stored as SHA-256 hashes).")


def register(cli: typer.Typer) -> None:
    cli.command()(webserver)
    cli.add_typer(tokens_cli, name="api-token")


def serve_beside(settings: Settings) -> None:
    """The API on a thread of `celestra server`, unless api_port is 0."""
    from app import api

    if settings.api_port:
        api.serve(settings, background=True)


def webserver(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default: the api_host setting).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: the api_port setting).")] = None,
    config: ConfigOption = None,
) -> None:
    """The REST API alone (`celestra server` serves it too), on Kestra's paths: /api/v1/..."""
    client = client_for(config)
    from app import api

    settings = client.settings.model_copy(update={k: v for k, v in (("api_host", host), ("api_port", port))
                                                  if v is not None})
    if not settings.api_no_auth and settings.api_basic_auth is None and not client.settings.embedded:
        out.print("[yellow]No api_basic_auth set: only bearer tokens (celestra api-token create) get in.[/]")
    api.serve(settings)


@tokens_cli.command("create")
def token_create(name: str, config: ConfigOption = None) -> None:
    """Make a token named NAME; it is printed once, only its hash is kept."""
    from app import runtime

    client_for(config)
    try:
        out.print(runtime.store().create_api_token(name), highlight=False)
    except CelestraError as exc:
        fail(str(exc), 2)


@tokens_cli.command("list")
def token_list(config: ConfigOption = None) -> None:
    from app import runtime

    client_for(config)
    table = Table("name", "created", "last used")
    for row in runtime.store().api_token_names():
        table.add_row(row["name"], str(row["created"]), str(row["last_used"] or "never"))
    out.print(table)


@tokens_cli.command("revoke")
def token_revoke(name: str, config: ConfigOption = None) -> None:
    from app import runtime

    client_for(config)
    if not runtime.store().revoke_api_token(name):
        fail(f"no API token named {name!r}", 2)
