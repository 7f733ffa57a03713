"""The Docker runner's container and registry properties, each seen taking effect on a real Docker engine.

Container settings are read from inside the container (cgroup limits, /dev/shm, /etc/hosts, the user, the network
interfaces) and from what the engine recorded for it. Registry credentials go to a registry started by the test,
on loopback (which the engine treats as an insecure registry): it asks for Basic or Bearer auth and records what
the engine sends, then answers "manifest unknown", so that each pull ends without any image being needed.
Needs DOCKER_HOST (`.ci/start-dockerd`) and deploy/images/build.sh's images; skips locally without them, fails in CI.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from runner_conformance import ListSink

from runners import RunnerError, runner_for
from runners.base import CommandSpec, RunControl, RunnerPolicy, RunResult

docker = pytest.importorskip("docker")
SHELL_IMAGE = "celestra/busybox:local"
LABEL = "celestra.test-options"
RUN = uuid.uuid4().hex[:12]


@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    try:
        client = docker.from_env()
        client.ping()
        client.images.get(SHELL_IMAGE)
    except Exception as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Docker engine or test image unavailable in CI: {exc}")
        pytest.skip(f"no Docker engine with {SHELL_IMAGE} (run .ci/start-dockerd and deploy/images/build.sh): {exc}")
    yield client
    for container in client.containers.list(all=True, filters={"label": f"{LABEL}={RUN}"}):
        container.remove(force=True)
    client.close()


def spec(workdir: Path, script: str, image: str = SHELL_IMAGE) -> CommandSpec:
    workdir.mkdir(exist_ok=True)
    return CommandSpec(command=["/bin/sh", "-c", script], working_dir=workdir, container_image=image,
                       labels={LABEL: RUN, "celestra.taskrun": uuid.uuid4().hex},
                       name=f"celestra-options-{uuid.uuid4().hex[:12]}")


def run(options: dict[str, Any], command: CommandSpec,
        policy: RunnerPolicy | None = None) -> tuple[RunResult, ListSink]:
    sink = ListSink()
    result = runner_for("docker", {"pullPolicy": "NEVER", **options}, policy=policy).run(command, sink, RunControl())
    return result, sink


def left(engine: Any, command: CommandSpec) -> list[Any]:
    return engine.containers.list(all=True, filters={"label": f"celestra.taskrun={command.labels['celestra.taskrun']}"})


# -- container settings ---------------------------------------------------------------------------------------
CGROUP = ("cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes; "
          "cut -d' ' -f1 /sys/fs/cgroup/cpu.max 2>/dev/null || cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us; ")


def test_cpu_memory_shm_network_user_and_hosts_shape_the_container(engine: Any, tmp_path: Path) -> None:
    command = spec(tmp_path / "work", CGROUP + "df -k /dev/shm | tail -n 1 | awk '{print $2}'; id -u; id -g; "
                                               "grep db.internal /etc/hosts; ls /sys/class/net")
    result, sink = run({
        "cpu": {"cpus": 0.5}, "shmSize": "32m", "networkMode": "none", "user": "1000:1000",
        "extraHosts": ["db.internal:10.1.2.3"], "delete": False,
        "memory": {"memory": "64m", "memorySwap": "128m", "memorySwappiness": 10, "memoryReservation": "32m",
                   "oomKillDisable": True},
    }, command)
    assert result.exit_code == 0, sink.lines
    memory, quota, shm, uid, gid, hosts, *interfaces = sink.stream("stdout")
    assert (memory, quota, shm, uid, gid) == (str(64 * 2**20), "50000", "32768", "1000", "1000")
    assert hosts.split() == ["10.1.2.3", "db.internal"]
    assert interfaces == ["lo"]  # networkMode none: no interface but loopback
    (container,) = left(engine, command)  # delete: false keeps it
    host = container.attrs["HostConfig"]
    assert (host["NanoCpus"], host["Memory"], host["MemorySwap"], host["MemoryReservation"]) == (
        5 * 10**8, 64 * 2**20, 128 * 2**20, 32 * 2**20)
    assert (host["MemorySwappiness"], host["OomKillDisable"], host["ShmSize"]) == (10, True, 32 * 2**20)
    assert (host["NetworkMode"], host["ExtraHosts"], container.attrs["Config"]["User"]) == (
        "none", ["db.internal:10.1.2.3"], "1000:1000")
    container.remove(force=True)


def test_entry_point_replaces_the_images(engine: Any, tmp_path: Path) -> None:
    command = spec(tmp_path / "work", "echo never")
    result, sink = run({"entryPoint": ["/bin/echo", "entry"]}, command)
    assert result.exit_code == 0 and sink.stream("stdout") == ["entry /bin/sh -c echo never"]
    assert left(engine, command) == []


def test_volumes_mount_host_folders_as_written(engine: Any, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "in.txt").write_text("from the host")
    command = spec(tmp_path / "work", "cat /data/in.txt; echo; touch /data/new 2>/dev/null || echo read-only")
    result, sink = run({"volumes": [f"{shared}:/data:ro"]}, command, RunnerPolicy(allow_volumes=True))
    assert result.exit_code == 0 and sink.stream("stdout") == ["from the host", "read-only"]
    assert sorted(p.name for p in shared.iterdir()) == ["in.txt"]


def test_privileged_asks_the_engine_for_every_capability(engine: Any, tmp_path: Path) -> None:
    command = spec(tmp_path / "work", "grep CapEff /proc/self/status")
    try:
        result, sink = run({"privileged": True, "delete": False}, command)
        assert result.exit_code == 0 and sink.stream("stdout")[0].endswith("ffffffff"), sink.lines
    except RunnerError as exc:  # a sandboxed engine may not be allowed to grant them: it says so
        assert "caps" in str(exc), exc
    (container,) = left(engine, command)
    assert container.attrs["HostConfig"]["Privileged"] is True
    container.remove(force=True)
    command = spec(tmp_path / "plain", "grep CapEff /proc/self/status")
    result, sink = run({}, command)
    assert result.exit_code == 0 and not sink.stream("stdout")[0].endswith("ffffffff")


def test_device_requests_reach_the_engine_and_a_missing_driver_fails_leaving_nothing(engine: Any,
                                                                                    tmp_path: Path) -> None:
    requests = [{"driver": "celestra-test-gpu", "count": 2, "capabilities": [["gpu", "utility"]],
                 "options": {"visible": "all"}},
                {"driver": "celestra-test-gpu", "deviceIds": ["0", "3"], "capabilities": [["gpu"]]}]
    command = spec(tmp_path / "work", "true")
    with pytest.raises(RunnerError, match='Cannot start the container: .*device driver "celestra-test-gpu"'):
        run({"deviceRequests": requests}, command)
    assert left(engine, command) == [] and engine.volumes.list(filters={"name": f"{command.name}-work"}) == []
    command = spec(tmp_path / "kept", "true")
    with pytest.raises(RunnerError, match="celestra-test-gpu"):
        run({"deviceRequests": requests, "delete": False}, command)
    (container,) = left(engine, command)
    assert container.attrs["HostConfig"]["DeviceRequests"] == [
        {"Driver": "celestra-test-gpu", "Count": 2, "DeviceIDs": [], "Capabilities": [["gpu", "utility"]],
         "Options": {"visible": "all"}},
        {"Driver": "celestra-test-gpu", "Count": 0, "DeviceIDs": ["0", "3"], "Capabilities": [["gpu"]],
         "Options": {}}]
    container.remove(force=True)


# -- registry credentials -------------------------------------------------------------------------------------
class Registry(ThreadingHTTPServer):
    """A registry that wants auth (`scheme` Basic or Bearer), records it, and holds no image."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), RegistryHandler)
        self.scheme = "Basic"
        self.seen: list[tuple[str, str, str | None]] = []  # (method, path, Authorization)
        self.token_forms: list[dict[str, list[str]]] = []

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def manifest_auth(self) -> list[str | None]:
        return [auth for _, path, auth in self.seen if "/manifests/" in path]


class RegistryHandler(BaseHTTPRequestHandler):
    server: Registry

    def log_message(self, *args: Any) -> None:
        pass

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        auth = self.headers.get("Authorization")
        self.server.seen.append((self.command, self.path, auth))
        if self.path.startswith("/token"):
            return self._reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": "no anonymous token"}]})
        if not auth or not auth.startswith(self.server.scheme + " "):
            challenge = ('Basic realm="celestra-test"' if self.server.scheme == "Basic" else
                         f'Bearer realm="http://{self.server.host}/token",service="celestra-test"')
            return self._reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                               {"WWW-Authenticate": challenge})
        if self.path.rstrip("/") == "/v2":
            return self._reply(200, {})
        self._reply(404, {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]})

    def do_POST(self) -> None:  # the OAuth2 refresh-token exchange an identity token starts
        form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode())
        self.server.seen.append((self.command, self.path, self.headers.get("Authorization")))
        self.server.token_forms.append(form)
        self._reply(200, {"access_token": "exchanged-" + form.get("refresh_token", [""])[0], "expires_in": 300})

    def _reply(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)


@pytest.fixture
def registry(engine: Any) -> Iterator[Registry]:
    server = Registry()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def pull(registry: Registry, tmp_path: Path, options: dict[str, Any]) -> str:
    """Run a task of an image of the test registry; the pull fails (no image), the error says how."""
    command = spec(tmp_path / uuid.uuid4().hex[:8], "true", image=f"{registry.host}/private/app:1")
    with pytest.raises(RunnerError) as failed:
        run({**options, "pullPolicy": "ALWAYS"}, command)
    return str(failed.value)


def test_credentials_for_the_images_registry_are_sent_with_the_pull(registry: Registry, tmp_path: Path) -> None:
    error = pull(registry, tmp_path, {"credentials": {"username": "deploy", "password": "s3cret"}})
    assert registry.manifest_auth() and set(registry.manifest_auth()) == {basic("deploy", "s3cret")}
    assert "manifest unknown" in error or "not found" in error, error


@pytest.mark.parametrize("declared", ["{host}", "http://{host}/v2/", "https://{host}"])
def test_credentials_registry_and_an_auth_string(registry: Registry, tmp_path: Path, declared: str) -> None:
    auth = base64.b64encode(b"robot:t0ken").decode()
    pull(registry, tmp_path, {"credentials": {"registry": declared.format(host=registry.host), "auth": auth}})
    assert set(registry.manifest_auth()) == {basic("robot", "t0ken")}


def test_credentials_of_another_registry_are_not_sent(registry: Registry, tmp_path: Path) -> None:
    error = pull(registry, tmp_path, {"credentials": {"registry": "registry.example.com", "username": "deploy",
                                                      "password": "s3cret"}})
    assert all(auth is None for _, _, auth in registry.seen), registry.seen
    assert "auth" in error.lower(), error  # the engine says it had no credentials


@pytest.mark.parametrize("as_text", [False, True])
def test_config_json_gives_the_auth_of_the_images_registry(registry: Registry, tmp_path: Path, as_text: bool) -> None:
    config: Any = {"auths": {"registry.example.com": {"auth": base64.b64encode(b"other:x").decode()},
                             f"http://{registry.host}": {"auth": base64.b64encode(b"from-config:pw").decode()}}}
    pull(registry, tmp_path, {"config": json.dumps(config) if as_text else config})
    assert set(registry.manifest_auth()) == {basic("from-config", "pw")}


def test_explicit_credentials_win_over_the_config(registry: Registry, tmp_path: Path) -> None:
    config = {"auths": {registry.host: {"auth": base64.b64encode(b"from-config:pw").decode()}}}
    pull(registry, tmp_path, {"config": config, "credentials": {"username": "explicit", "password": "pw"}})
    assert set(registry.manifest_auth()) == {basic("explicit", "pw")}


def test_a_config_that_is_not_json_is_a_clear_error(registry: Registry, tmp_path: Path) -> None:
    assert "Docker `config` is not a JSON document" in pull(registry, tmp_path, {"config": "{not json"})
    assert registry.seen == []


def test_registry_token_is_sent_as_the_bearer(registry: Registry, tmp_path: Path) -> None:
    registry.scheme = "Bearer"
    pull(registry, tmp_path, {"credentials": {"registryToken": "reg-tok"}})
    assert set(registry.manifest_auth()) == {"Bearer reg-tok"}
    assert registry.token_forms == []  # used as it is, not exchanged


def test_identity_token_is_exchanged_for_an_access_token(registry: Registry, tmp_path: Path) -> None:
    registry.scheme = "Bearer"
    pull(registry, tmp_path, {"credentials": {"identityToken": "refresh-me"}})
    assert registry.token_forms and registry.token_forms[0]["grant_type"] == ["refresh_token"]
    assert registry.token_forms[0]["refresh_token"] == ["refresh-me"]
    assert set(registry.manifest_auth()) == {"Bearer exchanged-refresh-me"}
