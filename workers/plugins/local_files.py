"""Kestra's `io.kestra.plugin.fs.local` tasks and trigger: files on the disk of the worker that runs them (List,
Copy, Move, Delete, and a Trigger watching a folder), so a worker group on a host can reach that host's folders.

Only folders the worker's operator allowed are reachable (`local_files_allowed_paths`, Kestra's `allowed-paths`):
every path is resolved, symbolic links included, and must lie inside one of them; with none configured the tasks
are refused. A file is described as Kestra describes one: `uri`, `name`, `parent`, `path`/`localPath`, `size`,
`isDirectory` and its dates.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from app import runtime
from app.model.polling import Polled, PollingTrigger
from workers.plugin_api import RunContext, RunnableTask, TaskFailure
from workers.plugins.storage import positive_int


def allowed_path(ctx: RunContext, value: str, what: str) -> Path:
    """`value` rendered and resolved, refused unless inside an allowed folder of this worker."""
    roots = [root.resolve() for root in runtime.settings().local_files_allowed_paths]
    if not roots:
        raise TaskFailure("Local file access is not allowed on this worker: its operator sets "
                          "CELESTRA_LOCAL_FILES_ALLOWED_PATHS (local_files_allowed_paths) to the folders tasks may use")
    rendered = ctx.render_str(value).strip()
    if not rendered:
        raise TaskFailure(f"{what} is empty")
    path = Path(rendered).expanduser()
    if not path.is_absolute():
        raise TaskFailure(f"{what} must be an absolute path, got '{rendered}'")
    resolved = path.resolve()
    if not any(resolved == root or resolved.is_relative_to(root) for root in roots):
        raise TaskFailure(f"{what} '{rendered}' is outside the folders this worker allows: "
                          f"{', '.join(str(r) for r in roots)}")
    return resolved


def describe(path: Path) -> dict[str, Any]:
    info = path.stat()

    def date(seconds: float) -> str:
        return datetime.fromtimestamp(seconds, UTC).isoformat()

    return {"uri": path.as_uri(), "name": path.name, "parent": str(path.parent), "path": str(path),
            "localPath": str(path), "size": info.st_size, "isDirectory": path.is_dir(),
            "createdDate": date(getattr(info, "st_birthtime", info.st_ctime)), "modifiedDate": date(info.st_mtime),
            "accessedDate": date(info.st_atime)}


def listed(folder: Path, recursive: bool, pattern: str | None) -> Iterator[Path]:
    """Files (not folders) of `folder`, sorted by path; `pattern` must match the whole path, as in Kestra."""
    if not folder.is_dir():
        raise TaskFailure(f"'{folder}' is not a folder")
    regex = re.compile(pattern) if pattern else None
    found = folder.rglob("*") if recursive else folder.iterdir()
    for path in sorted(found):
        if path.is_file() and (regex is None or regex.fullmatch(str(path))):
            yield path


def _flag(ctx: RunContext, value: bool | str) -> bool:
    return value if isinstance(value, bool) else ctx.render_str(value).strip().lower() == "true"


def _regex(ctx: RunContext, value: str | None) -> str | None:
    if value is None:
        return None
    pattern = ctx.render_str(value)
    try:
        re.compile(pattern)
    except re.error as exc:
        raise TaskFailure(f"regExp '{pattern}' is not a valid regular expression: {exc}") from None
    return pattern


class LocalList(RunnableTask):
    """The files of a folder; outputs `files` and `count`."""

    type: Literal["io.kestra.plugin.fs.local.List"]
    from_: str = Field(alias="from")
    regExp: str | None = None
    recursive: bool | str = False
    maxFiles: int | str = 25

    def run(self, ctx: RunContext) -> dict[str, Any]:
        folder = allowed_path(ctx, self.from_, "from")
        limit = positive_int(ctx, self.maxFiles, "maxFiles")
        files: list[dict[str, Any]] = []
        for path in listed(folder, _flag(ctx, self.recursive), _regex(ctx, self.regExp)):
            if len(files) == limit:
                ctx.log("WARN", f"more than maxFiles ({limit}) files in '{folder}': the first {limit} are listed")
                break
            files.append(describe(path))
        return {"files": files, "count": len(files)}


class _Transfer(RunnableTask):
    from_: str = Field(alias="from")
    to: str
    overwrite: bool | str = False

    def _paths(self, ctx: RunContext) -> tuple[Path, Path]:
        source, target = allowed_path(ctx, self.from_, "from"), allowed_path(ctx, self.to, "to")
        if not source.exists():
            raise TaskFailure(f"'{source}' does not exist")
        if (target.is_dir() or ctx.render_str(self.to).rstrip().endswith("/")) and not source.is_dir():
            target = target / source.name  # into the folder, as `cp file dir/` does
        if target.exists() and not _flag(ctx, self.overwrite):
            raise TaskFailure(f"'{target}' already exists (set overwrite: true to replace it)")
        if source.is_dir() and target.is_relative_to(source):
            raise TaskFailure(f"'{source}' cannot go into itself ('{target}')")
        target.parent.mkdir(parents=True, exist_ok=True)
        return source, target


class LocalCopy(_Transfer):
    """Copy a file or a folder; outputs `uri` of the copy."""

    type: Literal["io.kestra.plugin.fs.local.Copy"]

    def run(self, ctx: RunContext) -> dict[str, Any]:
        source, target = self._paths(ctx)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)
        return {"uri": target.as_uri()}


class LocalMove(_Transfer):
    """Move or rename a file or a folder; outputs `uri` of where it went."""

    type: Literal["io.kestra.plugin.fs.local.Move"]

    def run(self, ctx: RunContext) -> dict[str, Any]:
        source, target = self._paths(ctx)
        if target.exists() and target.is_dir() and source.is_dir():
            shutil.rmtree(target)  # overwrite: the folder is replaced, not merged
        shutil.move(source, target)
        return {"uri": target.as_uri()}


class LocalDelete(RunnableTask):
    """Delete a file (or a folder with `recursive: true`); outputs `deleted`."""

    type: Literal["io.kestra.plugin.fs.local.Delete"]
    from_: str = Field(alias="from")
    recursive: bool | str = False
    errorOnMissing: bool | str = False

    def run(self, ctx: RunContext) -> dict[str, Any]:
        path = allowed_path(ctx, self.from_, "from")
        if not path.exists():
            if _flag(ctx, self.errorOnMissing):
                raise TaskFailure(f"'{path}' does not exist")
            return {"deleted": False}
        if path.is_dir():
            if not _flag(ctx, self.recursive) and any(path.iterdir()):
                raise TaskFailure(f"'{path}' is a folder that is not empty (set recursive: true to delete it)")
            shutil.rmtree(path)
        else:
            path.unlink()
        return {"deleted": True}


class LocalTrigger(PollingTrigger):
    """Fires when files of `from` are created or updated, with them as `{{ trigger.files }}` (at most maxFiles at a
    time; the others at the next evaluation). `action` MOVE or DELETE takes them away during the evaluation, as
    Kestra does; after a MOVE, `trigger.files` points at their new place."""

    type: Literal["io.kestra.plugin.fs.local.Trigger"]
    from_: str = Field(alias="from")
    action: Literal["NONE", "MOVE", "DELETE"] = "NONE"
    moveDirectory: str | None = None
    recursive: bool | str = False
    regExp: str | None = None
    maxFiles: int | str = 25

    @model_validator(mode="after")
    def _move_needs_a_folder(self) -> LocalTrigger:
        if self.action == "MOVE" and not self.moveDirectory:
            raise ValueError("action MOVE needs moveDirectory")
        return self

    def evaluate(self, ctx: RunContext, state: dict[str, Any]) -> Polled:
        folder = allowed_path(ctx, self.from_, "from")
        archive = allowed_path(ctx, self.moveDirectory, "moveDirectory") if self.moveDirectory and \
            self.action == "MOVE" else None
        limit = positive_int(ctx, self.maxFiles, "maxFiles")
        seen: dict[str, str] = dict(state.get("seen") or {})
        current: dict[str, str] = {}
        fresh: list[Path] = []
        for path in listed(folder, _flag(ctx, self.recursive), _regex(ctx, self.regExp)):
            info = path.stat()
            version = f"{info.st_mtime_ns}:{info.st_size}"
            if seen.get(str(path)) == version:
                current[str(path)] = version
            elif len(fresh) < limit:
                fresh.append(path)
                current[str(path)] = version
        if not fresh:
            return Polled("no new or updated file", state={"seen": current})
        files = [describe(path) for path in fresh]
        for path, file in zip(fresh, files, strict=True):
            if archive is not None:
                target = archive / path.relative_to(folder)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, target)
                file.update(uri=target.as_uri(), path=str(target), localPath=str(target), parent=str(target.parent))
                current.pop(str(path), None)
            elif self.action == "DELETE":
                path.unlink(missing_ok=True)
                current.pop(str(path), None)
        count = len(files)
        return Polled(f"{count} new or updated file{'s' if count != 1 else ''}", variables={"files": files},
                      state={"seen": current})


TASKS: list[type[RunnableTask] | type[PollingTrigger]] = [LocalList, LocalCopy, LocalMove, LocalDelete, LocalTrigger]
