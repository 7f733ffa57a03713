"""Kestra's namespace file tasks: upload files into the namespace's files, download them into the execution's files,
delete them. A task uses the namespace files of its own namespace only (as every task of Celestra: the storage a
task sees is its namespace's, workers/execute.py), and files stream through, never read whole into memory.

`files` patterns are matched as Kestra's are: `regex:` patterns as regular expressions, others as globs
(`glob:` optional: `**` crosses folders, `*` and `?` do not, `{a,b}` either) on the file's path from the
namespace's root, with its leading slash; a glob that starts with neither `/` nor `**` matches at any depth.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Any, BinaryIO, Literal

from pydantic import Field

from app.model.flow import not_supported_yet
from app.store.storage import StorageError, execution_uri, namespace_file_uri, namespace_files_prefix
from workers.plugin_api import RunContext, RunnableTask, TaskFailure


def glob_regex(pattern: str) -> str:
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "{":
            end = pattern.find("}", i)
            if end < 0:
                out.append(re.escape(c))
            else:
                out.append("(?:" + "|".join(glob_regex(part) for part in pattern[i + 1:end].split(",")) + ")")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def matcher(patterns: list[str]) -> Callable[[str], bool]:
    """Whether a path (with its leading slash) matches one of `patterns`."""
    regexes = []
    for pattern in patterns:
        if pattern.startswith("regex:"):
            body = pattern.removeprefix("regex:")
        else:
            glob = pattern.removeprefix("glob:")
            body = glob_regex(glob if glob.startswith(("/", "**")) else "**/" + glob)
        try:
            regexes.append(re.compile(body))
        except re.error as exc:
            raise TaskFailure(f"Invalid files pattern {pattern!r}: {exc}") from None
    return lambda path: any(regex.fullmatch(path) for regex in regexes)


def _namespace(ctx: RunContext, value: str | None) -> str:
    namespace = ctx.render_str(value).strip() if value else ctx.namespace
    if namespace != ctx.namespace:
        raise TaskFailure(f"Cannot use the namespace files of '{namespace}': a task uses only those of its own "
                          f"namespace '{ctx.namespace}'")
    return namespace


def _patterns(ctx: RunContext, files: str | list[str]) -> list[str]:
    rendered = ctx.render(files)
    return [str(p) for p in (rendered if isinstance(rendered, list) else [rendered])]


def _matching(ctx: RunContext, namespace: str, patterns: list[str]) -> dict[str, str]:
    """path (with its leading slash) -> URI of each namespace file a pattern (or a kestra:// URI) names."""
    prefix = namespace_files_prefix(namespace)
    uris = {p for p in patterns if p.startswith("kestra://")}
    matches = matcher([p for p in patterns if not p.startswith("kestra://")])
    return {"/" + uri[len(prefix):].lstrip("/"): uri for uri in ctx.storage.list(prefix)
            if uri in uris or matches("/" + uri[len(prefix):].lstrip("/"))}


def _open_local(path: Path) -> BinaryIO:
    return path.open("rb")


def _target(namespace: str, path: str) -> str:
    try:
        return namespace_file_uri(namespace, path)
    except StorageError as exc:
        raise TaskFailure(f"Invalid namespace file path {path!r}: {exc}") from None


class UploadFiles(RunnableTask):
    """Files into the namespace: `files` globs over the WorkingDirectory this task runs in (kept at their relative
    path under `destination`), and `filesMap` (or its JSON text) of path -> kestra:// URI."""

    type: Literal["io.kestra.plugin.core.namespace.UploadFiles", "UploadFiles"]
    namespace: str | None = None
    files: list[str] | None = None
    filesMap: dict[str, str] | str | None = None
    destination: str = "/"
    conflict: Literal["OVERWRITE", "ERROR", "SKIP"] = "OVERWRITE"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        namespace = _namespace(ctx, self.namespace)
        destination = ctx.render_str(self.destination).strip() or "/"
        if not destination.startswith("/"):
            raise TaskFailure(f"destination must start with '/', got {destination!r}")
        if self.files is None and self.filesMap is None:
            raise TaskFailure("files or filesMap is required")
        sources: list[tuple[str, Callable[[], BinaryIO]]] = []
        if self.files:
            folder = ctx.working_dir
            if folder is None:
                raise TaskFailure("`files` matches files of the WorkingDirectory this task runs in: use it inside "
                                  "one, or name kestra:// files with filesMap")
            matches = matcher(_patterns(ctx, self.files))
            for found in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
                relative = "/" + found.relative_to(folder).as_posix()
                if matches(relative):
                    sources.append((destination.rstrip("/") + relative, partial(_open_local, found)))
        if self.filesMap is not None:
            rendered = ctx.render(self.filesMap)
            mapping = json.loads(rendered) if isinstance(rendered, str) else rendered
            if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
                raise TaskFailure("filesMap must map each file's path to a kestra:// URI")
            for name, uri in mapping.items():
                if ctx.storage.exists(uri):  # as in Kestra, a source that does not exist is left out
                    sources.append((destination + str(name), partial(ctx.storage.open, uri)))
        for path, source in sources:
            target = _target(namespace, path)
            if ctx.storage.exists(target):
                if self.conflict == "ERROR":
                    raise TaskFailure(f"Namespace file {path} already exists in '{namespace}' (conflict: ERROR)")
                if self.conflict == "SKIP":
                    continue
            with source() as stream:
                ctx.storage.put(target, stream)
            ctx.log("DEBUG", f"uploaded {path}")
        return {}


class DownloadFiles(RunnableTask):
    """Namespace files into the execution's files, under `destination`: `outputs.files` maps each path to its URI."""

    type: Literal["io.kestra.plugin.core.namespace.DownloadFiles", "DownloadFiles"]
    namespace: str
    files: str | list[str]
    destination: str = ""

    def run(self, ctx: RunContext) -> dict[str, Any]:
        namespace = _namespace(ctx, self.namespace)
        destination = ctx.render_str(self.destination).strip().strip("/")
        v = ctx.variables
        downloaded = {}
        for path, uri in _matching(ctx, namespace, _patterns(ctx, self.files)).items():
            name = f"{destination}{path}" if destination else path.lstrip("/")
            target = execution_uri(v["flow"]["namespace"], v["flow"]["id"], v["execution"]["id"], "tasks",
                                   v["task"]["id"], v["taskrun"]["id"], name)
            with ctx.storage.open(uri) as stream:
                downloaded[path] = ctx.storage.put(target, stream)
        return {"files": downloaded}


class DeleteFiles(RunnableTask):
    """Delete the namespace files the patterns match."""

    type: Literal["io.kestra.plugin.core.namespace.DeleteFiles", "DeleteFiles"]
    namespace: str
    files: str | list[str]
    deleteParentFolder: Annotated[bool, not_supported_yet(
        "deleteParentFolder", False, ": namespace folders exist only as the paths of their files")] = Field(False)

    def run(self, ctx: RunContext) -> dict[str, Any]:
        namespace = _namespace(ctx, self.namespace)
        for path, uri in _matching(ctx, namespace, _patterns(ctx, self.files)).items():
            if ctx.storage.delete(uri):
                ctx.log("DEBUG", f"deleted {path}")
        return {}


TASKS: list[type[RunnableTask]] = [UploadFiles, DownloadFiles, DeleteFiles]  # the `namespace_files` family
