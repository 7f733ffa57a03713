"""The files a task's folder starts with (`inputFiles`, namespace files) and the files it leaves (`outputFiles`),
for the script tasks and for a WorkingDirectory, whose children share its folder."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Any

from app.model.flow import NamespaceFiles
from app.store.storage import namespace_files_prefix
from workers.plugin_api import RunContext, TaskFailure


def stage(ctx: RunContext, folder: Path, input_files: dict[str, Any] | str | None,
          namespace_files: NamespaceFiles | None, paths: dict[str, str]) -> None:
    """Namespace files first (when enabled), then `input_files` (rendered: name -> text or `kestra://` URI)."""
    if namespace_files is not None and namespace_files.enabled:
        _download_namespace_files(ctx, folder, namespace_files)
    rendered = ctx.render(input_files, paths) if input_files else {}
    if isinstance(rendered, str):
        rendered = json.loads(rendered)
    for name, content in (rendered or {}).items():
        target = (folder / name).resolve()
        if folder.resolve() not in target.parents:
            raise TaskFailure(f"Input file {name!r} escapes the working directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str) and content.startswith("kestra://"):
            target.write_bytes(ctx.storage.get(content))
        else:
            target.write_text(content if isinstance(content, str) else json.dumps(content))


def collect(ctx: RunContext, folder: Path, patterns: list[str]) -> dict[str, str]:
    """The files under `folder` matching `patterns` (globs, named relative to it), stored as the task's outputs:
    name -> `kestra://` URI."""
    found: dict[str, str] = {}
    for pattern in patterns:
        for path in sorted(folder.glob(pattern)):
            name = str(path.relative_to(folder))
            if path.is_file() and name not in found:
                found[name] = ctx.store_output(name, path.read_bytes())
    return found


def _download_namespace_files(ctx: RunContext, folder: Path, spec: NamespaceFiles) -> None:
    prefix = namespace_files_prefix(ctx.namespace)
    for uri in ctx.storage.list(prefix):
        name = uri[len(prefix):].lstrip("/")
        if spec.include and not any(fnmatch.fnmatch(name, p) for p in spec.include):
            continue
        if any(fnmatch.fnmatch(name, p) for p in spec.exclude):
            continue
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(ctx.storage.get(uri))
