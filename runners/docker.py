"""Docker runner: the command runs in a container of the task's image, on the engine at `host` (or DOCKER_HOST).

Files go in and out through the container itself (VOLUME: a named volume filled with put_archive, read back with
get_archive) or a bind mount of the worker's folder (MOUNT: the engine must see the worker's filesystem).
The container is named after the attempt and labelled with execution and task run, so a worker that restarts
finds it instead of starting a duplicate (and logs only what the dead worker had not: RunControl.logged_until); it
is removed after the run, also on cancel and timeout.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import io
import json
import logging
import os
import tarfile
import threading
import time
from pathlib import Path
from typing import Any, ClassVar, Literal

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from pydantic import BaseModel, ConfigDict, Field

from runners.base import CommandSpec, LogSink, RunControl, RunnerError, RunResult, Stream, TaskRunner, collect_outputs
from runners.docker_auth import Credentials, registry_auth

log = logging.getLogger("celestra.runners.docker")
_clients: dict[str, docker.DockerClient] = {}
_clients_lock = threading.Lock()
# Held by a thread of the parent at fork time, it would never be released in the child.
os.register_at_fork(after_in_child=lambda: globals().update(_clients_lock=threading.Lock()))
WORKDIR = "/celestra/work"
PULL_ATTEMPTS = 3
# The engine answers 500 for a registry's refusals too: these say retrying cannot help.
PULL_REFUSED = ("manifest unknown", "not found", "unauthorized", "authentication required", "no basic auth",
                "denied", "invalid reference")
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


class Cpu(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cpus: float | None = None


class Memory(BaseModel):
    model_config = ConfigDict(extra="forbid")
    memory: str | None = None
    memorySwap: str | None = None
    memorySwappiness: int | None = None
    memoryReservation: str | None = None
    oomKillDisable: bool | None = None


class DeviceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    driver: str | None = None
    count: int | None = None
    deviceIds: list[str] | None = None
    capabilities: list[list[str]] | None = None
    options: dict[str, str] | None = None


class DockerOptions(BaseModel):
    """Kestra's Docker task-runner properties."""

    model_config = ConfigDict(extra="forbid")
    host: str | None = None
    config: dict[str, Any] | str | None = None
    credentials: Credentials | None = None
    pullPolicy: Literal["ALWAYS", "IF_NOT_PRESENT", "NEVER"] = "IF_NOT_PRESENT"
    cpu: Cpu | None = None
    memory: Memory | None = None
    shmSize: str | None = None
    networkMode: str | None = None
    user: str | None = None
    entryPoint: list[str] | None = None
    extraHosts: list[str] | None = None
    volumes: list[str] | None = None
    deviceRequests: list[DeviceRequest] = Field(default_factory=list)
    fileHandlingStrategy: Literal["VOLUME", "MOUNT"] = "VOLUME"
    delete: bool = True
    privileged: bool | None = None


class DockerRunner(TaskRunner):
    supports_resume: ClassVar[bool] = True
    container_workdir: ClassVar[str] = WORKDIR

    def __init__(self, **properties: Any):
        try:
            self.options = DockerOptions(**properties)
        except Exception as exc:
            raise RunnerError(f"Invalid Docker task runner properties: {exc}") from exc

    # -- the contract ---------------------------------------------------------------------------------------
    def check_policy(self) -> None:
        if self.options.volumes and not self.policy.allow_volumes:  # they reach the host's files
            raise RunnerError("Docker `volumes` are disabled: set docker_volumes_enabled: true in the configuration")

    def run(self, spec: CommandSpec, sink: LogSink, control: RunControl) -> RunResult:
        self.check_policy()
        client = self._client()
        try:
            existing = self._left_behind(client, spec)
            if existing is not None:  # left by a worker that died: follow it rather than start a duplicate
                log.warning("container %s of this task run already exists: following it", existing.name)
                control.on_external_id(existing.id)
                return self._follow(client, existing, spec, sink, control, self._volume_of(client, existing),
                                    takeover=True)
            (spec.working_dir / spec.output_dir).mkdir(parents=True, exist_ok=True)
            image = spec.container_image or "ubuntu"
            self._pull(client, image)
            volume = None
            if self.options.fileHandlingStrategy == "VOLUME":
                volume = client.volumes.create(name=f"{spec.name}-work", labels=spec.labels)
            container = None
            try:  # the engine may refuse the start (a device driver it lacks, capabilities it may not grant)
                container = self._create(client, image, spec, volume)
                control.on_external_id(container.id)
                outputs_before = None
                if volume is not None:
                    container.put_archive(WORKDIR, _tar_of(spec.working_dir))
                    if not any((spec.working_dir / spec.output_dir).iterdir()):  # a rewrite keeps the dir's mtime
                        outputs_before = _stat(client, container, _output_path(spec))
                container.start()
            except (DockerException, RunnerError) as exc:
                if self.options.delete:  # nothing ran: leave nothing behind
                    _remove(container, volume)
                if isinstance(exc, RunnerError):
                    raise
                raise RunnerError(f"Cannot start the container: {getattr(exc, 'explanation', None) or exc}") from exc
            return self._follow(client, container, spec, sink, control, volume, outputs_before)
        except DockerException as exc:
            raise RunnerError(f"Docker engine error: {exc}") from exc

    def resume(self, external_id: str, spec: CommandSpec, sink: LogSink, control: RunControl) -> RunResult:
        self.check_policy()
        client = self._client()
        try:
            try:
                container = client.containers.get(external_id)
            except NotFound as exc:
                raise RunnerError(f"Container {external_id} no longer exists") from exc
            return self._follow(client, container, spec, sink, control, volume=None, takeover=True)
        except DockerException as exc:
            raise RunnerError(f"Docker engine error: {exc}") from exc

    # -- steps ----------------------------------------------------------------------------------------------
    def _client(self) -> docker.DockerClient:
        """One client per engine and process: its version check and ping are paid once, not per task."""
        key = self.options.host or os.environ.get("DOCKER_HOST", "")
        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                try:
                    client = docker.DockerClient(base_url=self.options.host) if self.options.host else docker.from_env()
                    client.ping()
                except DockerException as exc:
                    where = self.options.host or "DOCKER_HOST"
                    raise RunnerError(f"Cannot reach the Docker daemon ({where}): {exc}") from exc
                _clients[key] = client
        return client

    @staticmethod
    def _left_behind(client: docker.DockerClient, spec: CommandSpec) -> Any:
        """A container of the same task run (any attempt), started by a worker that is gone."""
        task_run = spec.labels.get("celestra.taskrun")
        if task_run:
            found = client.containers.list(all=True, filters={"label": f"celestra.taskrun={task_run}"})
            if found:
                return found[0]
        try:
            return client.containers.get(spec.name)
        except NotFound:
            return None

    @staticmethod
    def _volume_of(client: docker.DockerClient, container: Any) -> Any:
        try:
            return client.volumes.get(f"{container.name}-work")
        except NotFound:
            return None

    def _pull(self, client: docker.DockerClient, image: str) -> None:
        policy = self.options.pullPolicy
        if policy != "ALWAYS":
            try:
                client.images.get(image)
                return
            except ImageNotFound:
                if policy == "NEVER":
                    raise RunnerError(f"Image '{image}' is not present and pullPolicy is NEVER") from None
        auth = registry_auth(image, self.options.credentials, self.options.config)
        for attempt in range(1, PULL_ATTEMPTS + 1):
            try:
                client.images.pull(image, auth_config=auth)
                return
            except ImageNotFound as exc:
                raise RunnerError(f"Image '{image}' not found: {exc.explanation}") from exc
            except APIError as exc:
                refused = any(words in str(exc.explanation or exc).lower() for words in PULL_REFUSED)
                if attempt == PULL_ATTEMPTS or refused or (exc.status_code and 400 <= exc.status_code < 500):
                    raise RunnerError(f"Cannot pull image '{image}': {exc.explanation or exc}") from exc
                time.sleep(2**attempt)

    def _create(self, client: docker.DockerClient, image: str, spec: CommandSpec, volume: Any) -> Any:
        opts = self.options
        mounts: dict[str, dict[str, str]] = {}
        if volume is not None:
            mounts[volume.name] = {"bind": WORKDIR, "mode": "rw"}
        else:
            mounts[str(spec.working_dir)] = {"bind": WORKDIR, "mode": "rw"}
        for entry in opts.volumes or []:
            host, _, rest = entry.partition(":")
            target, _, mode = rest.partition(":")
            mounts[host] = {"bind": target, "mode": mode or "rw"}
        kwargs: dict[str, Any] = {
            "command": spec.command, "name": spec.name, "labels": spec.labels, "working_dir": WORKDIR,
            "environment": spec.env, "volumes": mounts, "detach": True, "user": opts.user,
            "network_mode": opts.networkMode, "shm_size": opts.shmSize, "privileged": bool(opts.privileged),
        }
        if opts.entryPoint is not None:
            kwargs["entrypoint"] = opts.entryPoint
        if opts.extraHosts:
            kwargs["extra_hosts"] = dict(h.split(":", 1) for h in opts.extraHosts)
        if opts.cpu and opts.cpu.cpus:
            kwargs["nano_cpus"] = int(opts.cpu.cpus * 1e9)
        if opts.memory:
            kwargs.update({k: v for k, v in {
                "mem_limit": opts.memory.memory, "memswap_limit": opts.memory.memorySwap,
                "mem_swappiness": opts.memory.memorySwappiness, "mem_reservation": opts.memory.memoryReservation,
                "oom_kill_disable": opts.memory.oomKillDisable}.items() if v is not None})
        if opts.deviceRequests:
            kwargs["device_requests"] = [docker.types.DeviceRequest(
                driver=d.driver or "", count=d.count or 0, device_ids=d.deviceIds or [],
                capabilities=d.capabilities or [], options=d.options or {}) for d in opts.deviceRequests]
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        try:
            return client.containers.create(image, **kwargs)
        except APIError as exc:
            raise RunnerError(f"Cannot create the container: {exc.explanation or exc}") from exc

    def _follow(self, client: docker.DockerClient, container: Any, spec: CommandSpec, sink: LogSink,
                control: RunControl, volume: Any, outputs_before: dict[str, Any] | None = None,
                takeover: bool = False) -> RunResult:
        """Wait for the container (killing it on cancel or timeout), then bring its files back and remove it.

        `outputs_before` is the output dir's stat taken before the start: when no glob asks for other files and the
        stat is unchanged, nothing was written there and the archive copy back (tens of ms) is skipped.
        """
        logged_until = _logged_until_ns(control) if takeover else None
        streamer = threading.Thread(target=_stream_logs, args=(container, sink, control.replayed, logged_until),
                                    daemon=True, name="celestra-docker-logs")
        streamer.start()
        deadline = time.monotonic() + spec.timeout if spec.timeout else None
        timed_out = killed = False
        try:
            while True:
                try:
                    exit_code = container.wait(timeout=0.25)["StatusCode"]
                    break
                except Exception:  # wait timed out: the container still runs
                    pass
                if control.kill.is_set():
                    killed = True
                elif deadline is not None and time.monotonic() >= deadline:
                    timed_out = True
                if killed or timed_out:
                    _kill(container)
                    exit_code = container.wait()["StatusCode"]
                    break
            streamer.join(10)  # the log stream ends with the container: every line is in
            if not (killed or timed_out) and self.options.fileHandlingStrategy == "VOLUME":  # MOUNT: already here
                self._bring_back(client, container, spec, outputs_before)
            return RunResult(exit_code=exit_code, external_id=container.id, timed_out=timed_out, killed=killed,
                             output_files=collect_outputs(spec) if not (killed or timed_out) else {})
        finally:
            if self.options.delete:
                _remove(container, volume)

    @staticmethod
    def _bring_back(client: docker.DockerClient, container: Any, spec: CommandSpec,
                    outputs_before: dict[str, Any] | None) -> None:
        if spec.output_files:  # globs may match anywhere in the working directory
            _copy_back(container, WORKDIR + "/.", spec.working_dir)
        elif outputs_before is None or _stat(client, container, _output_path(spec)) != outputs_before:
            output_dir = spec.working_dir / spec.output_dir
            _copy_back(container, _output_path(spec), output_dir.parent)


def _output_path(spec: CommandSpec) -> str:
    return f"{WORKDIR}/{spec.output_dir}"


def _stat(client: docker.DockerClient, container: Any, path: str) -> dict[str, Any] | None:
    """The engine's stat of a path in the container (HEAD .../archive: a header, no tar stream), None if absent.

    A directory's mtime moves whenever an entry is added, removed or renamed in it, so an unchanged stat of the
    (initially empty) output dir means the command wrote nothing there.
    """
    response = client.api.head(client.api._url("/containers/{0}/archive", container.id), params={"path": path})
    if response.status_code == 404:
        return None
    response.raise_for_status()
    header = response.headers.get("X-Docker-Container-Path-Stat")
    return json.loads(base64.b64decode(header)) if header else None


def _stream_logs(container: Any, sink: LogSink, replayed: LogSink, logged_until: int | None) -> None:
    """Both streams, each followed from the container's first line to its end (also if it already ended)."""
    threads = [threading.Thread(target=_follow_stream, args=(container, stream, sink, replayed, logged_until),
                                daemon=True) for stream in ("stdout", "stderr")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _follow_stream(container: Any, stream: Stream, sink: LogSink, replayed: LogSink | None = None,
                   logged_until: int | None = None) -> None:
    """One stream, live, then a catch-up read: the engine can end a follow before the last entries of a container
    that just exited are written (seen with a final line that has no newline; Kestra #456 lost lines the same way).

    Entries carry the engine's fixed-width timestamps, so the catch-up skips exactly what the follow delivered.
    """
    lines = _Lines(sink, stream, replayed or sink, logged_until)
    newest, at_newest = b"", 0  # the newest timestamp seen, and how many entries carried it
    which = {"stdout": stream == "stdout", "stderr": stream == "stderr"}
    for entry in container.logs(**which, stream=True, follow=True, timestamps=True):
        stamp, _, payload = entry.partition(b" ")
        newest, at_newest = (newest, at_newest + 1) if stamp == newest else (stamp, 1)
        lines.feed(stamp, payload)
    since = _epoch_seconds(newest) if newest else None  # whole seconds: the catch-up starts a little before
    for entry in container.logs(**which, stream=True, follow=False, timestamps=True, since=since):
        stamp, _, payload = entry.partition(b" ")
        if stamp < newest or (stamp == newest and at_newest > 0):
            at_newest -= stamp == newest
            continue
        lines.feed(stamp, payload)
    lines.close()


class _Lines:
    """Log entries (whole lines, or pieces of a long or unterminated line) to the sink, one line at a time.

    On a takeover, a line printed up to `logged_until` (ns; the entry completing it decides: only a whole line can
    have been stored) goes to `replayed`. The engine stamps an entry before a worker receives it, the worker stamps
    its log row on receipt, with the same clock: a stored line is never logged twice. A line printed just before
    the last stored one was received, yet received after it (the stream's latency, milliseconds), counts as logged.
    """

    def __init__(self, sink: LogSink, stream: Stream, replayed: LogSink, logged_until: int | None):
        self.sink, self.stream, self.replayed, self.logged_until = sink, stream, replayed, logged_until
        self.rest, self.target = b"", sink

    def feed(self, stamp: bytes, payload: bytes) -> None:
        if self.logged_until is not None:
            self.target = self.replayed if _epoch_ns(stamp) <= self.logged_until else self.sink
        *complete, self.rest = (self.rest + payload).split(b"\n")
        for line in complete:
            self.target(line.decode("utf-8", "replace").rstrip("\r"), self.stream)

    def close(self) -> None:
        if self.rest:
            self.target(self.rest.decode("utf-8", "replace").rstrip("\r"), self.stream)
            self.rest = b""


def _logged_until_ns(control: RunControl) -> int | None:
    try:
        moment = control.logged_until()
    except Exception:  # the store is unreachable: better a line twice than none
        log.warning("cannot tell how much of the container's output is logged: all of it is, again", exc_info=True)
        return None
    if moment is None:
        return None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)
    return (moment - EPOCH) // datetime.timedelta(microseconds=1) * 1000


def _epoch_ns(stamp: bytes) -> int:
    """Nanoseconds of the engine's timestamp (`2026-11-29T07:03:58.295592105Z`; datetime stops at microseconds)."""
    head, _, rest = stamp.decode().partition(".")
    digits = rest[:len(rest) - len(rest.lstrip("0123456789"))]
    moment = datetime.datetime.fromisoformat(head + rest[len(digits):])
    return int(moment.timestamp()) * 1_000_000_000 + int(digits.ljust(9, "0")[:9])


def _epoch_seconds(stamp: bytes) -> int:
    """Whole seconds of an RFC 3339 timestamp as the engine writes it (`2026-11-29T07:03:58.295592105Z`)."""
    return max(1, int(datetime.datetime.fromisoformat(stamp.decode()).timestamp()))


def _tar_of(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)
    return buffer.getvalue()


def _copy_back(container: Any, path: str, into: Path) -> None:
    """`path` in the container (a folder, or `folder/.` for its content) extracted under the worker's `into`."""
    try:
        chunks, _ = container.get_archive(path)
    except NotFound:
        return
    data = io.BytesIO(b"".join(chunks))
    with tarfile.open(fileobj=data) as tar:
        for member in tar.getmembers():
            name = Path(member.name)
            parts = name.parts[1:] if name.parts and name.parts[0] == "." else name.parts
            if not parts or ".." in parts or not (member.isfile() or member.isdir()):
                continue
            target = into.joinpath(*parts)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                if source is not None:
                    target.write_bytes(source.read())


def _kill(container: Any) -> None:
    with contextlib.suppress(NotFound, APIError):  # already gone or already stopped
        container.kill()


def _remove(container: Any, volume: Any) -> None:
    if container is not None:
        with contextlib.suppress(NotFound, APIError):
            container.remove(force=True)
    if volume is not None:
        with contextlib.suppress(NotFound, APIError):
            volume.remove(force=True)


__all__ = ["DockerRunner", "DockerOptions"]
