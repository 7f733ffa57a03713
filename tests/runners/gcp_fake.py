"""A fake of the small subset of GCP Batch and Cloud Logging that `runners.gcp_batch` calls, for tests only.

No emulator exists for Batch, so this threaded HTTP server answers the real google-cloud-batch (REST transport) and
google-cloud-logging (JSON API) clients, and runs each job's one container runnable on the local Docker engine:

- Batch v1: `POST .../locations/L/jobs?jobId=ID`, `GET`/`DELETE .../jobs/ID`, `POST .../jobs/ID:cancel`,
  `GET .../operations/OP`. camelCase JSON, enums as integers (what the REST client sends and parses).
  Status moves QUEUED -> SCHEDULED -> RUNNING -> SUCCEEDED/FAILED; a finished task adds a status event with
  `taskExecution.exitCode`; a missing image fails the job with a status event and no exit code; `maxRunDuration`
  fails the task with Batch's reserved exit code 50005. Delete/cancel kill and remove the container.
- GCS volumes (`volumes[].gcs.remotePath` + `mountPath`) are emulated, not FUSE-mounted: the prefix is downloaded
  from the storage emulator into a temp dir bind-mounted at mountPath, and files written there are uploaded back
  when the container ends (before the job turns SUCCEEDED/FAILED). Real gcsfuse writes through on close instead.
- Logging v2: `POST /v2/entries:list` over entries written to `projects/P/logs/batch_task_logs`, one per container
  output line, stdout as severity INFO and stderr as ERROR, labelled with `job_uid` (and the job's own labels).
  The entries and the filter are in tests/runners/gcp_fake_logs.py (no ingestion delay, unlike the real one).
Everything else answers 404/400 so that an unexpected call fails loudly rather than silently passing.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import docker
from docker.errors import APIError, ImageNotFound, NotFound
from gcp_fake_logs import FakeLogStore, now_rfc3339, rest_error
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

QUEUED, SCHEDULED, RUNNING, SUCCEEDED, FAILED, DELETION, CANCELLING, CANCELLED = 1, 2, 3, 4, 5, 6, 7, 8
MAX_RUN_DURATION_EXIT = 50005  # Batch's reserved exit code for a task past its maxRunDuration
FAKE_LABEL = "celestra.gcp-fake"
JOB_PATH = re.compile(r"^/v1/projects/([^/]+)/locations/([^/]+)/jobs(?:/([^/:]+))?(:cancel)?$")
OP_PATH = re.compile(r"^/v1/(projects/[^/]+/locations/[^/]+/operations/[^/]+)$")


class GcpFake:
    """Start with `start()`; `batch_url` and `logging_url` are the api_endpoints the clients take."""

    def __init__(self, storage_endpoint: str, docker_client: Any | None = None):
        self.storage = storage.Client(project="fake", credentials=AnonymousCredentials(),
                                      client_options={"api_endpoint": storage_endpoint})
        self.docker = docker_client or docker.from_env()
        self.fake_id = uuid.uuid4().hex[:12]
        self.lock = threading.Lock()
        self.jobs: dict[str, dict[str, Any]] = {}  # job name -> Job JSON as served
        self.containers: dict[str, Any] = {}  # job name -> its container
        self.runners: dict[str, threading.Thread] = {}  # job name -> the thread that starts and waits for it
        self.operations: dict[str, dict[str, Any]] = {}
        self.logs = FakeLogStore()
        self.requests: list[tuple[str, str]] = []  # (method, path): what the clients called
        self.authorizations: list[tuple[str, str | None]] = []  # (path, Authorization header) of each request
        # When set, a request whose Authorization header it refuses gets 401 (as GCP refuses a bad token).
        self.accepts: Callable[[str | None], bool] | None = None
        self.created: list[dict[str, Any]] = []  # every job body as the client sent it
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.batch_url = self.logging_url = self.url

    def start(self) -> GcpFake:
        threading.Thread(target=self.server.serve_forever, daemon=True, name="gcp-fake").start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        for name in list(self.containers):
            self._kill(name)

    def containers_left(self, job_name: str | None = None) -> list[str]:
        """Containers this fake started (for one job, or any) that still exist on the engine."""
        label = f"celestra.gcp-job={job_name}" if job_name else f"{FAKE_LABEL}={self.fake_id}"
        found = self.docker.containers.list(all=True, sparse=True, filters={"label": label})  # no inspect: no race
        return [str(c.attrs.get("Names", [c.id])[0]).lstrip("/") for c in found]

    # -- Batch ------------------------------------------------------------------------------------------------
    def create_job(self, project: str, location: str, job_id: str, body: dict[str, Any]) -> tuple[int, Any]:
        if not re.fullmatch(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?", job_id or ""):
            return 400, rest_error(400, "INVALID_ARGUMENT", f"invalid job id {job_id!r}")
        name = f"projects/{project}/locations/{location}/jobs/{job_id}"
        runnables = body.get("taskGroups", [{}])[0].get("taskSpec", {}).get("runnables", [])
        if len(runnables) != 1 or "container" not in runnables[0]:
            return 400, rest_error(400, "INVALID_ARGUMENT", "this fake runs exactly one container runnable")
        with self.lock:
            if name in self.jobs:
                return 409, rest_error(409, "ALREADY_EXISTS", f"job {name} already exists")
            job = {**body, "name": name, "uid": f"{job_id[:40]}-{uuid.uuid4().hex[:8]}",
                   "createTime": now_rfc3339(), "updateTime": now_rfc3339(),
                   "status": {"state": QUEUED, "statusEvents": []}}
            self.jobs[name] = job
            self.created.append(json.loads(json.dumps(body)))
            reply = json.loads(json.dumps(job))
        runner = threading.Thread(target=self._run_job, args=(name,), daemon=True, name=f"fake-job-{job_id}")
        with self.lock:
            self.runners[name] = runner
        runner.start()
        return 200, reply

    def get_job(self, name: str) -> tuple[int, Any]:
        with self.lock:
            job = self.jobs.get(name)
            if job is None:
                return 404, rest_error(404, "NOT_FOUND", f"{name} not found")
            return 200, json.loads(json.dumps(job))

    def end_job(self, name: str, delete: bool) -> tuple[int, Any]:
        """DELETE (and :cancel): an Operation, done once the container is gone."""
        with self.lock:
            job = self.jobs.get(name)
            if job is None:
                return 404, rest_error(404, "NOT_FOUND", f"{name} not found")
            job["status"]["state"] = DELETION if delete else CANCELLING
            op_name = name.split("/jobs/")[0] + f"/operations/op-{uuid.uuid4().hex[:12]}"
            operation: dict[str, Any] = {"name": op_name, "done": False}
            self.operations[op_name] = operation

        def finish() -> None:
            self._kill(name)
            # A cancel that came while the job's container was being created: the job's thread removes that
            # container when it sees the job ending; Batch says CANCELLED only once the task has stopped.
            runner = self.runners.get(name)
            if runner is not None:
                runner.join(60)
            self._kill(name)
            with self.lock:
                if delete:
                    self.jobs.pop(name, None)
                else:
                    self._set_state(job, CANCELLED, "Job cancelled on request")
                # What Batch answers: DeleteJob's operation holds an Empty, CancelJob's a CancelJobResponse (the
                # client parses it; an Empty there makes `operation.result()` raise).
                response = "google.protobuf.Empty" if delete else "google.cloud.batch.v1.CancelJobResponse"
                operation.update(done=True, response={"@type": f"type.googleapis.com/{response}"})

        threading.Thread(target=finish, daemon=True).start()
        return 200, dict(operation)

    def get_operation(self, name: str) -> tuple[int, Any]:
        with self.lock:
            op = self.operations.get(name)
            return (200, dict(op)) if op else (404, rest_error(404, "NOT_FOUND", f"{name} not found"))

    def _set_state(self, job: dict[str, Any], state: int, description: str, exit_code: int | None = None) -> None:
        event: dict[str, Any] = {"type": "STATUS_CHANGED", "description": description, "eventTime": now_rfc3339()}
        if exit_code is not None:
            event.update(taskExecution={"exitCode": exit_code}, taskState=state)
        job["status"]["statusEvents"].append(event)
        job["status"]["state"] = state
        job["updateTime"] = now_rfc3339()

    def _state(self, name: str) -> int | None:
        with self.lock:
            job = self.jobs.get(name)
            return job["status"]["state"] if job else None

    def _advance(self, name: str, state: int, description: str, exit_code: int | None = None) -> bool:
        """Move a job on unless it was deleted or cancelled meanwhile (then the caller stops)."""
        with self.lock:
            job = self.jobs.get(name)
            if job is None or job["status"]["state"] in (DELETION, CANCELLING, CANCELLED):
                return False
            self._set_state(job, state, description, exit_code)
            return True

    def _run_job(self, name: str) -> None:
        try:
            self._execute(name)
        except Exception as exc:  # a fake bug or an unsupported job: fail the job visibly, not silently
            self._kill(name)
            self._advance(name, FAILED, f"fake GCP Batch error: {exc!r}")

    def _execute(self, name: str) -> None:
        with self.lock:
            job = json.loads(json.dumps(self.jobs[name]))
        spec = job["taskGroups"][0]["taskSpec"]
        container_spec = spec["runnables"][0]["container"]
        env = spec["runnables"][0].get("environment", {}).get("variables", {})
        time.sleep(0.05)
        if not self._advance(name, SCHEDULED, "Job state is set from QUEUED to SCHEDULED"):
            return
        with tempfile.TemporaryDirectory(prefix="gcp-fake-") as scratch:
            mounts = self._stage_volumes(spec.get("volumes", []), Path(scratch))
            try:
                self.docker.images.get(container_spec["imageUri"])
            except ImageNotFound:
                self._advance(name, FAILED, f"Task failed: pulling image {container_spec['imageUri']} failed: "
                              "not found (the fake pulls nothing: local images only)")
                return
            try:
                container = self._create(job, container_spec, env, mounts)
            except APIError as exc:
                self._advance(name, FAILED, f"Task failed: cannot create the container: {exc.explanation}")
                return
            with self.lock:
                self.containers[name] = container
            if not self._advance(name, RUNNING, "Job state is set from SCHEDULED to RUNNING"):
                self._kill(name)
                return
            container.start()
            exit_code = self._wait(name, container, job, _seconds(spec.get("maxRunDuration")))
            if exit_code is None:  # deleted or cancelled meanwhile: the container is already gone
                return
            self._unstage_volumes(mounts)
            self._kill(name)  # the VM goes away with the job: nothing stays on the engine
            state = SUCCEEDED if exit_code == 0 else FAILED
            verb = "succeeded" if state == SUCCEEDED else f"failed with exit code {exit_code}"
            self._advance(name, state, f"Task {verb}", exit_code)

    def _stage_volumes(self, volumes: list[dict[str, Any]], scratch: Path) -> list[tuple[Path, str, str, str]]:
        """(local dir, mountPath, bucket, prefix) per GCS volume, filled with the prefix's objects."""
        mounts = []
        for index, volume in enumerate(volumes):
            if "gcs" not in volume:
                raise ValueError(f"the fake only supports GCS volumes, not {volume}")
            bucket, _, prefix = volume["gcs"]["remotePath"].partition("/")
            prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
            local = scratch / f"volume-{index}"
            local.mkdir()
            for blob in self.storage.list_blobs(bucket, prefix=prefix):
                target = local / blob.name[len(prefix):]
                if blob.name.endswith("/"):  # a folder placeholder: gcsfuse shows it as a directory
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                blob.download_to_filename(str(target))
            local.chmod(0o777)
            mounts.append((local, volume["mountPath"], bucket, prefix))
        return mounts

    def _unstage_volumes(self, mounts: list[tuple[Path, str, str, str]]) -> None:
        for local, _, bucket_name, prefix in mounts:
            bucket = self.storage.bucket(bucket_name)
            for path in sorted(local.rglob("*")):
                if path.is_file():
                    bucket.blob(prefix + str(path.relative_to(local))).upload_from_filename(str(path))

    def _create(self, job: dict[str, Any], spec: dict[str, Any], env: dict[str, str],
                mounts: list[tuple[Path, str, str, str]]) -> Any:
        # Batch mounts each volume into the container at its mountPath, plus the container's own "host:dest[:mode]"
        # binds (a list: one host dir may be bound twice), host paths resolved under a volume's mountPath.
        binds = [f"{local}:{mount_path}:rw" for local, mount_path, _, _ in mounts]
        for entry in spec.get("volumes", []):
            host, _, rest = entry.partition(":")
            target, _, mode = rest.partition(":")
            for local, mount_path, _, _ in mounts:
                if host == mount_path or host.startswith(mount_path + "/"):
                    binds.append(f"{local}{host[len(mount_path):]}:{target}:{mode or 'rw'}")
        kwargs: dict[str, Any] = {"command": spec.get("commands") or None, "environment": env, "volumes": binds,
                                  "network_mode": "host", "detach": True,
                                  "labels": {FAKE_LABEL: self.fake_id, "celestra.gcp-job": job["name"]}}
        if spec.get("entrypoint"):
            kwargs["entrypoint"] = shlex.split(spec["entrypoint"])
        options = shlex.split(spec.get("options", ""))  # the docker-run options this fake understands
        for index, option in enumerate(options):
            if option in ("--workdir", "-w"):
                kwargs["working_dir"] = options[index + 1]
            elif option.startswith("--workdir="):
                kwargs["working_dir"] = option.split("=", 1)[1]
        return self.docker.containers.create(spec["imageUri"], **kwargs)

    def _wait(self, name: str, container: Any, job: dict[str, Any], max_run: float | None) -> int | None:
        readers = [threading.Thread(target=self._record, args=(container, job, s), daemon=True)
                   for s in ("stdout", "stderr")]
        for reader in readers:
            reader.start()
        deadline = time.monotonic() + max_run if max_run else None
        exit_code: int | None = None
        while exit_code is None:
            try:
                exit_code = int(container.wait(timeout=0.2)["StatusCode"])
            except NotFound:
                break
            except Exception:  # still running
                if deadline is not None and time.monotonic() >= deadline:
                    self._kill_only(container)
                    exit_code = MAX_RUN_DURATION_EXIT
        for reader in readers:
            reader.join(10)
        return exit_code if self._state(name) == RUNNING else None

    def _record(self, container: Any, job: dict[str, Any], stream: str) -> None:
        """Each output line becomes a log entry as it comes; a final full read adds what the follow missed."""
        which = {"stdout": stream == "stdout", "stderr": stream == "stderr"}
        sent, rest = 0, b""
        try:
            for chunk in container.logs(**which, stream=True, follow=True):
                *lines, rest = (rest + chunk).split(b"\n")
                for line in lines:
                    self._entry(job, line, stream)
                    sent += 1
            full = container.logs(**which, stream=False).split(b"\n")
        except (NotFound, APIError):  # removed by a delete
            return
        if full and full[-1] == b"":
            full.pop()
        for line in full[sent:]:
            self._entry(job, line, stream)

    def _entry(self, job: dict[str, Any], line: bytes, stream: str) -> None:
        project, location, job_id = job["name"].split("/")[1::2]
        self.logs.append({
            "logName": f"projects/{project}/logs/batch_task_logs", "insertId": uuid.uuid4().hex,
            "resource": {"type": "generic_task", "labels": {"project_id": project, "location": location,
                                                            "job": job_id}},
            "timestamp": now_rfc3339(), "receiveTimestamp": now_rfc3339(),
            "severity": "INFO" if stream == "stdout" else "ERROR",
            "textPayload": line.decode("utf-8", "replace").rstrip("\r"),
            "labels": {**job.get("labels", {}), "job_uid": job["uid"], "task_id": f"task/{job['uid']}-group0-0"},
        })

    def _kill(self, name: str) -> None:
        with self.lock:
            container = self.containers.pop(name, None)
        if container is not None:
            self._kill_only(container)
            with contextlib.suppress(NotFound, APIError):  # already gone
                container.remove(force=True)

    @staticmethod
    def _kill_only(container: Any) -> None:
        with contextlib.suppress(NotFound, APIError):  # already stopped or gone
            container.kill()

def _seconds(duration: str | None) -> float | None:
    return float(duration.rstrip("s")) if duration else None


def _handler(fake: GcpFake) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the clients' sessions expect

        def log_message(self, format: str, *args: Any) -> None:  # quiet: pytest shows failures, not traffic
            pass

        def _reply(self, code: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(length) or b"{}") if length else {}

        def _route(self, method: str) -> None:
            url = urlparse(self.path)
            fake.requests.append((method, url.path))
            fake.authorizations.append((url.path, self.headers.get("Authorization")))
            if fake.accepts is not None and not fake.accepts(self.headers.get("Authorization")):
                self._reply(401, rest_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials"))
                return
            body = self._body() if method == "POST" else {}
            job = JOB_PATH.match(url.path)
            op = OP_PATH.match(url.path)
            if method == "POST" and url.path == "/v2/entries:list":
                self._reply(*fake.logs.list(body))
            elif job and method == "POST" and not job.group(3):
                job_id = parse_qs(url.query).get("jobId", [""])[0]
                self._reply(*fake.create_job(job.group(1), job.group(2), job_id, body))
            elif job and job.group(3):
                name = f"projects/{job.group(1)}/locations/{job.group(2)}/jobs/{job.group(3)}"
                if method == "GET" and not job.group(4):
                    self._reply(*fake.get_job(name))
                elif method == "DELETE" and not job.group(4):
                    self._reply(*fake.end_job(name, delete=True))
                elif method == "POST" and job.group(4):
                    self._reply(*fake.end_job(name, delete=False))
                else:
                    self._reply(404, rest_error(404, "NOT_FOUND", f"{method} {url.path} is not faked"))
            elif op and method == "GET":
                self._reply(*fake.get_operation(op.group(1)))
            else:
                self._reply(404, rest_error(404, "NOT_FOUND", f"{method} {url.path} is not faked"))

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def do_DELETE(self) -> None:
            self._route("DELETE")

    return Handler
