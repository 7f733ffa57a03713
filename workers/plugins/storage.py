"""Kestra's core storage tasks: write, size, delete, concatenate, split and reverse files of the internal storage,
and purge the current execution's files.

Files are streamed (line by line, or in blocks through temporary files), never read whole into memory. A task only
reads or deletes files of its own namespace: the execution files of that namespace's flows
(`kestra:///<ns>/<flowId>/executions/<id>/...`) and its namespace files (`kestra:///<ns>/_files/...`); any other
URI fails the task naming it. New files go where the task's other outputs go:
`kestra:///<ns>/<flowId>/executions/<executionId>/tasks/<taskId>/<taskRunId>/<name>`.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import json
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import IO, Annotated, Any, BinaryIO, Literal, cast

from pydantic import Field, model_validator

from app.model.flow import TEMPLATE_MARKERS, not_supported_yet
from app.store.storage import (
    StorageError,
    StorageNotFoundError,
    execution_uri,
    owned_by,
    uri_to_key,
)
from app.templating import is_truthy
from workers.plugin_api import RunContext, RunnableTask, TaskFailure

_BLOCK = 64 * 1024  # what Reverse reads at a time, walking back from the end of a file
_BYTES = re.compile(r"(\d+)(KB|MB|GB)?")
_UNITS = {None: 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}  # as Kestra reads "10MB": 1024-based


# -- the namespace boundary, names and streams -------------------------------------------------------------------
def owned_file(ctx: RunContext, uri: Any) -> str:
    """The normalized URI of a file of the task's own namespace, or a TaskFailure naming `uri`."""
    text = str(uri).strip()
    owned = owned_by(text, ctx.namespace)
    if owned is None:
        try:
            uri_to_key(text)  # not a URI at all: say so
        except StorageError as exc:
            raise TaskFailure(f"Invalid storage URI '{text}': {exc}") from exc
        raise TaskFailure(f"'{text}' is not a file of the namespace '{ctx.namespace}': a task may only read or delete "
                          "the execution files and namespace files of its own namespace")
    return owned


@contextlib.contextmanager
def reading(ctx: RunContext, uri: str) -> Iterator[BinaryIO]:
    try:
        stream = ctx.storage.open(uri)
    except StorageNotFoundError as exc:
        raise TaskFailure(f"File not found in internal storage: {uri}") from exc
    with stream:
        yield stream


def _lines(stream: BinaryIO, encoding: str = "utf-8") -> Iterator[str]:
    """The lines of a stream without their terminator (\\n, \\r\\n or \\r), as Java's readLine splits them."""
    text = io.TextIOWrapper(stream, encoding=encoding, errors="surrogateescape", newline=None)
    for line in text:
        yield line[:-1] if line.endswith("\n") else line
    text.detach()


def _suffix(uri: str) -> str:
    """The extension of the file a URI names ('.tmp' when it has none), given to the files made from it."""
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    return name[name.rindex("."):] if "." in name else ".tmp"


def _extension(ctx: RunContext, value: str | None) -> str:
    ext = ".tmp" if value is None else ctx.render_str(value).strip()
    if any(c in ext for c in "/\\\x00"):
        raise TaskFailure(f"Invalid extension '{ext}': it must not contain '/', '\\' or NUL")
    return ext if not ext or ext.startswith(".") else "." + ext


def _output_uri(ctx: RunContext, name: str) -> str:
    # Where ctx.store_output puts a file of this task run, for a stream instead of bytes.
    if ctx.output_uri is not None:
        return ctx.output_uri(name)
    v = ctx.variables
    return execution_uri(v["flow"]["namespace"], v["flow"]["id"], v["execution"]["id"], "tasks", v["task"]["id"],
                         v["taskrun"]["id"], name)


def store_spooled(ctx: RunContext, name: str, spool: IO[bytes]) -> str:
    """Upload a temporary file as an output of this task run (streamed), close it, return its URI."""
    with spool:
        spool.seek(0)
        return ctx.storage.put(_output_uri(ctx, name), cast(BinaryIO, spool))


def new_spool() -> IO[bytes]:
    return tempfile.TemporaryFile()


def positive_int(ctx: RunContext, value: int | str, name: str) -> int:
    rendered = ctx.render_str(value).strip() if isinstance(value, str) else value
    try:
        number = int(rendered)
    except ValueError:
        raise TaskFailure(f"{name} must be a whole number, got '{rendered}'") from None
    if number < 1:
        raise TaskFailure(f"{name} must be at least 1, got {number}")
    return number


def parse_bytes(value: int | str) -> int:
    """'10MB', '200KB', '1GB' or a number of bytes (Kestra's readable sizes, 1024-based) as a number of bytes."""
    match = _BYTES.fullmatch(str(value).strip().upper())
    if match is None or int(match[1]) < 1:
        raise ValueError(f"bytes must be a positive size such as 10MB, 200KB or 1024, got '{value}'")
    return int(match[1]) * _UNITS[match[2]]


def _templated(value: Any) -> bool:
    return isinstance(value, str) and any(marker in value for marker in TEMPLATE_MARKERS)


# -- the tasks ---------------------------------------------------------------------------------------------------
class Write(RunnableTask):
    """Write `content` to a new file of the internal storage."""

    type: Literal["io.kestra.plugin.core.storage.Write", "Write"]
    content: str | int | float | bool | list[Any] | dict[str, Any]
    extension: str | None = None  # with its dot, e.g. '.txt'; default '.tmp'

    def run(self, ctx: RunContext) -> dict[str, Any]:
        data = ctx.render_str(self.content).encode("utf-8", "surrogateescape")
        return {"uri": ctx.store_output("write" + _extension(ctx, self.extension), data)}


class Size(RunnableTask):
    """The size in bytes of a file of the internal storage."""

    type: Literal["io.kestra.plugin.core.storage.Size", "io.kestra.core.tasks.storages.Size", "Size"]
    uri: str

    def run(self, ctx: RunContext) -> dict[str, Any]:
        with reading(ctx, owned_file(ctx, ctx.render_str(self.uri))) as stream:
            try:
                return {"size": stream.seek(0, io.SEEK_END)}
            except (OSError, io.UnsupportedOperation):  # not seekable: count it, block by block
                return {"size": sum(len(block) for block in iter(lambda: stream.read(_BLOCK), b""))}


class Delete(RunnableTask):
    """Delete a file of the internal storage."""

    type: Literal["io.kestra.plugin.core.storage.Delete", "io.kestra.core.tasks.storages.Delete", "Delete"]
    uri: str
    errorOnMissing: bool | str = False

    def run(self, ctx: RunContext) -> dict[str, Any]:
        rendered = ctx.render_str(self.uri).strip()
        deleted = ctx.storage.delete(owned_file(ctx, rendered))
        if not deleted and is_truthy(ctx.render(self.errorOnMissing)):
            raise TaskFailure(f"Unable to find file '{rendered}'")
        return {"uri": rendered, "deleted": deleted}


class Concat(RunnableTask):
    """Concatenate files, in order, into a new one; `separator` is written after each file."""

    type: Literal["io.kestra.plugin.core.storage.Concat", "io.kestra.core.tasks.storages.Concat", "Concat"]
    files: list[str] | str  # URIs, or a JSON string of a list of them
    separator: str | None = None
    extension: str = ".tmp"

    def _uris(self, ctx: RunContext) -> list[str]:
        if isinstance(self.files, list):
            return [ctx.render_str(item) for item in self.files]
        rendered = ctx.render_str(self.files)
        try:
            uris = json.loads(rendered)
        except ValueError:
            uris = None
        if not isinstance(uris, list) or not all(isinstance(uri, str) for uri in uris):
            raise TaskFailure(f"files must be a list of storage URIs or a JSON string of one, got '{rendered}'")
        return uris

    def run(self, ctx: RunContext) -> dict[str, Any]:
        uris = [owned_file(ctx, uri) for uri in self._uris(ctx)]  # every one checked before anything is read
        extension = _extension(ctx, self.extension)
        separator = b"" if self.separator is None else ctx.render_str(self.separator).encode()
        spool = new_spool()
        for uri in uris:
            with reading(ctx, uri) as stream:
                shutil.copyfileobj(stream, spool)
            spool.write(separator)
        return {"uri": store_spooled(ctx, "concat" + extension, spool)}


class Split(RunnableTask):
    """Split a file, line by line, into several: by size (`bytes`), number of files (`partitions`), number of lines
    (`rows`) or the value a regex captures (`regexPattern`); exactly one of them. Each line is written followed by
    `separator`; the files keep the extension of `from`."""

    type: Literal["io.kestra.plugin.core.storage.Split", "io.kestra.core.tasks.storages.Split", "Split"]
    from_: str = Field(alias="from")
    bytes: int | str | None = None
    partitions: int | str | None = None
    rows: int | str | None = None
    regexPattern: str | None = None
    separator: str = "\n"

    @model_validator(mode="after")
    def _exactly_one_mode(self) -> Split:
        modes = {name: getattr(self, name) for name in ("bytes", "partitions", "rows", "regexPattern")}
        chosen = [name for name, value in modes.items() if value is not None]
        if len(chosen) != 1:
            got = " and ".join(chosen) if chosen else "none of them"
            raise ValueError(f"Split needs exactly one of bytes, partitions, rows or regexPattern; got {got}")
        if self.bytes is not None and not _templated(self.bytes):
            parse_bytes(self.bytes)
        for name in ("partitions", "rows"):
            value = modes[name]
            if value is None or _templated(value):
                continue
            if isinstance(value, bool) or not str(value).strip().isdigit() or int(value) < 1:
                raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}")
        return self

    def run(self, ctx: RunContext) -> dict[str, Any]:
        source = owned_file(ctx, ctx.render_str(self.from_))
        cut = _Cutter(ctx, ctx.render_str(self.separator), _suffix(source))
        with reading(ctx, source) as stream:
            lines = _lines(stream)
            if self.regexPattern is not None:
                return {"uris": cut.by_regex(lines, ctx.render_str(self.regexPattern))}
            if self.partitions is not None:
                return {"uris": cut.partitioned(lines, positive_int(ctx, self.partitions, "partitions"))}
            if self.bytes is not None:
                try:
                    limit = parse_bytes(ctx.render_str(self.bytes))
                except ValueError as exc:
                    raise TaskFailure(str(exc)) from None
                return {"uris": cut.chunked(lines, lambda size, count: size >= limit)}
            rows = positive_int(ctx, self.rows if self.rows is not None else 0, "rows")
            return {"uris": cut.chunked(lines, lambda size, count: count >= rows)}


class _Cutter:
    """Writes the lines of one Split into its files, each line followed by the separator."""

    def __init__(self, ctx: RunContext, separator: str, ext: str) -> None:
        self.ctx, self.separator, self.ext = ctx, separator, ext
        self.uris: list[str] = []

    def encode(self, line: str) -> bytes:
        return (line + self.separator).encode("utf-8", "surrogateescape")

    def store(self, spool: IO[bytes]) -> None:
        self.uris.append(store_spooled(self.ctx, f"split-{len(self.uris)}{self.ext}", spool))

    def chunked(self, lines: Iterator[str], full: Callable[[int, int], bool]) -> list[str]:
        # A new file starts when the current one is full (checked before each line, as Kestra does); each is
        # uploaded as soon as it is done, so one temporary file is open at a time.
        spool: IO[bytes] | None = None
        size = count = 0
        for line in lines:
            if spool is None or full(size, count):
                if spool is not None:
                    self.store(spool)
                spool, size, count = new_spool(), 0, 0
            data = self.encode(line)
            spool.write(data)
            size, count = size + len(data), count + 1
        if spool is not None:
            self.store(spool)
        return self.uris

    def partitioned(self, lines: Iterator[str], count: int) -> list[str]:
        spools = [new_spool() for _ in range(count)]  # round robin
        for index, line in enumerate(lines):
            spools[index % count].write(self.encode(line))
        for spool in spools:  # the empty ones (fewer lines than partitions) are dropped, as Kestra does
            if spool.tell():
                self.store(spool)
            else:
                spool.close()
        return self.uris

    def by_regex(self, lines: Iterator[str], pattern: str) -> list[str]:
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise TaskFailure(f"Invalid regexPattern '{pattern}': {exc}") from None
        if regex.groups < 1:
            raise TaskFailure(f"regexPattern '{pattern}' needs a capture group: its first one groups the lines")
        spools: dict[str | None, IO[bytes]] = {}  # by captured value, in the order first seen
        for line in lines:
            match = regex.search(line)
            if match is None:  # a line that does not match is left out
                continue
            if match.group(1) not in spools:
                spools[match.group(1)] = new_spool()
            spools[match.group(1)].write(self.encode(line))
        for spool in spools.values():
            self.store(spool)
        return self.uris


def _reversed_lines(stream: IO[bytes]) -> Iterator[bytes]:
    """The lines of a file whose every line ends with \\n, last first, reading it block by block from the end."""
    end = stream.seek(0, io.SEEK_END) - 1  # the last terminator
    if end < 0:
        return
    tail = b""
    while True:
        start = max(0, end - _BLOCK)
        stream.seek(start)
        parts = (stream.read(end - start) + tail).split(b"\n")
        if start == 0:
            yield from reversed(parts)
            return
        tail = parts.pop(0)  # maybe the end of a line that starts in an earlier block
        yield from reversed(parts)
        end = start


class Reverse(RunnableTask):
    """A new file with the lines of `from`, last line first, each followed by `separator`; it keeps the extension of
    `from`."""

    type: Literal["io.kestra.plugin.core.storage.Reverse", "io.kestra.core.tasks.storages.Reverse", "Reverse"]
    from_: str = Field(alias="from")
    separator: str = "\n"
    charset: str = "UTF-8"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        source = owned_file(ctx, ctx.render_str(self.from_))
        separator = ctx.render_str(self.separator)
        charset = ctx.render_str(self.charset).strip()
        try:
            codecs.lookup(charset)
        except LookupError:
            raise TaskFailure(f"Unknown charset '{charset}'") from None
        with new_spool() as lines:  # the lines decoded, one per \n-terminated line of UTF-8, to walk back through
            with reading(ctx, source) as stream:
                for line in _lines(stream, charset):
                    lines.write(line.encode("utf-8", "surrogateescape") + b"\n")
            out = new_spool()
            text = io.TextIOWrapper(out, encoding=charset, errors="surrogateescape", newline="")
            for raw in _reversed_lines(lines):
                text.write(raw.decode("utf-8", "surrogateescape") + separator)
            text.flush()
            text.detach()
        return {"uri": store_spooled(ctx, "reverse" + _suffix(source), out)}


class PurgeCurrentExecutionFiles(RunnableTask):
    """Delete every file of the current execution (its inputs, outputs and trigger files), nothing else."""

    type: Literal[
        "io.kestra.plugin.core.storage.PurgeCurrentExecutionFiles", "io.kestra.plugin.core.storage.PurgeExecution",
        "io.kestra.core.tasks.storages.PurgeExecution", "PurgeCurrentExecutionFiles",
    ]
    includeChildExecutions: Annotated[bool, not_supported_yet(
        "includeChildExecutions", False, ": only the current execution's files are purged")] = False
    includeStates: Annotated[bool, not_supported_yet(
        "includeStates", False, ": there are no state files to purge")] = False

    def run(self, ctx: RunContext) -> dict[str, Any]:
        v = ctx.variables
        prefix = execution_uri(v["flow"]["namespace"], v["flow"]["id"], v["execution"]["id"])
        return {"uris": [uri for uri in ctx.storage.list(prefix) if ctx.storage.delete(uri)]}


TASKS: list[type[RunnableTask]] = [  # the `storage` family (pyproject.toml)
    Write, Size, Delete, Concat, Split, Reverse, PurgeCurrentExecutionFiles,
]
