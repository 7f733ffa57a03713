"""`celestra namespace-files` and `celestra files`: the files of internal storage, from the command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from app.cli_watch import ConfigOption, client_for, fail, out
from app.errors import CelestraError

ns_files_cli = typer.Typer(no_args_is_help=True, help="Files shared by the flows of a namespace.")
files_cli = typer.Typer(no_args_is_help=True, help="Files in internal storage (outputs, inputs).")


def register(cli: typer.Typer) -> None:
    cli.add_typer(ns_files_cli, name="namespace-files")
    cli.add_typer(files_cli, name="files")


@ns_files_cli.command("upload")
def ns_files_upload(namespace: str, folder: Path, config: ConfigOption = None) -> None:
    """Upload a folder's files as NAMESPACE's namespace files."""
    try:
        uris = client_for(config).upload_namespace_files(namespace, folder)
    except CelestraError as exc:
        fail(str(exc), 2)
    for uri in uris:
        out.print(uri, highlight=False)


@ns_files_cli.command("list")
def ns_files_list(namespace: str, config: ConfigOption = None) -> None:
    for uri in client_for(config).namespace_files(namespace):
        out.print(uri, highlight=False)


@files_cli.command("get")
def files_get(uri: str, output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
              config: ConfigOption = None) -> None:
    """Download a file from internal storage (to stdout, or to --output)."""
    try:
        data = client_for(config).download(uri)
    except Exception as exc:
        fail(str(exc), 2)
    if output:
        output.write_bytes(data)
    else:
        sys.stdout.buffer.write(data)
