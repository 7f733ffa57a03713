"""`celestra flower` as a real Flower process on the Redis broker: where it listens and who it answers.

Flower alone binds every interface while its banner says 127.0.0.1, and serves its pages (and /metrics even with
basic auth) to anyone. `celestra flower` binds 127.0.0.1 unless given --address, and refuses to start without
credentials (CELESTRA_FLOWER_BASIC_AUTH) or an explicit --no-auth. Where it listens is read twice: from the kernel's
table of listening sockets, and by connecting through another local address, which must be refused.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import ipaddress
import json
import os
import secrets
import socket
import struct
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from groups_support import CELESTRA, REPO, Service, fresh_redis_database, groups_cluster, unavailable, wait_until

pytestmark = pytest.mark.integration

READY_TIMEOUT = 60.0
# The pages the security issue names, and the API; /worker/NAME shows a worker's configuration and pids.
PROTECTED = ("/workers", "/worker/nobody@nowhere", "/broker", "/tasks", "/metrics", "/api/workers")
SIOCGIFADDR = 0x8915  # Linux ioctl: an interface's IPv4 address


@pytest.fixture(scope="module")
def broker_url() -> Iterator[str]:
    try:
        import flower  # noqa: F401
    except ImportError as exc:
        unavailable("Flower (pip install celestra[flower])", exc)
    # A Redis database of its own: Flower switches task events on in every worker on its broker.
    with fresh_redis_database() as url:
        yield url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def flower_env(broker_url: str, home: Path, **extra: str) -> dict[str, str]:
    # Neither this session's CELESTRA_* nor FLOWER_* variables: each test states the whole configuration.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELESTRA_", "FLOWER_"))}
    env.update(CELESTRA_BROKER_URL=broker_url, CELESTRA_HOME=str(home), PYTHONUNBUFFERED="1", COLUMNS="250",
               NO_COLOR="1", **extra)
    return env


@dataclass
class Reply:
    status: int
    body: bytes


def get(url: str, credential: str | None = None, timeout: float = 10) -> Reply:
    request = urllib.request.Request(url)
    if credential is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(credential.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Reply(response.status, response.read())
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, exc.read())


def listening_addresses(port: int) -> set[str]:
    """Local addresses of the sockets listening on `port`, from /proc/net/tcp and tcp6 (host byte order words)."""
    found = set()
    for name, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(f"/proc/net/{name}").read_text().splitlines()[1:]:
                fields = line.split()
                address, _, port_hex = fields[1].partition(":")
                if fields[3] != "0A" or int(port_hex, 16) != port:  # 0A: LISTEN
                    continue
                words = [int(address[i:i + 8], 16) for i in range(0, len(address), 8)]
                found.add(socket.inet_ntop(family, struct.pack(f"={len(words)}I", *words)))
    return found


def other_local_addresses() -> list[str]:
    """Addresses of this host other than 127.0.0.1: each interface's IPv4 address, and 127.0.0.2 (on the loopback
    interface, yet refused by a socket bound to 127.0.0.1 alone), so the check never lacks one."""
    addresses = {"127.0.0.2"}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            with contextlib.suppress(OSError):
                packed = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
                addresses.add(socket.inet_ntoa(packed[20:24]))
    return sorted(a for a in addresses if a != "127.0.0.1")


def refused(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=3):
            return False
    except ConnectionRefusedError:
        return True


@contextlib.contextmanager
def running_flower(args: list[str], env: dict[str, str], logs: Path, port: int) -> Iterator[Service]:
    service = Service.start(f"flower-{port}", [*CELESTRA, "flower", f"--port={port}", *args], env, logs)
    try:
        def ready() -> bool:
            assert service.alive, f"celestra flower exited ({service.process.returncode}):\n{service.tail()}"
            # /healthcheck answers without credentials (see test_healthcheck_stays_open...).
            try:
                return get(f"http://127.0.0.1:{port}/healthcheck", timeout=2).status == 200
            except OSError:
                return False

        wait_until(ready, READY_TIMEOUT, "Flower to answer /healthcheck", poll=0.2, on_timeout=service.tail)
        yield service
    finally:
        service.stop()


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    path = tmp_path / "logs"
    path.mkdir()
    return path


def credentials() -> tuple[str, str]:
    # token_urlsafe never holds the comma or colon that would split an entry.
    return f"admin:{secrets.token_urlsafe(12)}", f"ops:{secrets.token_urlsafe(12)}"


def test_flower_listens_on_loopback_only_and_every_page_needs_the_credentials(
        broker_url: str, tmp_path: Path, logs: Path) -> None:
    admin, ops = credentials()
    port = free_port()
    env = flower_env(broker_url, tmp_path / "home", CELESTRA_FLOWER_BASIC_AUTH=f"{admin},{ops}")
    with running_flower([], env, logs, port) as service:
        assert listening_addresses(port) == {"127.0.0.1"}, service.tail()
        for address in other_local_addresses():
            assert refused(address, port), f"Flower accepted a connection on {address}:{port}"

        base = f"http://127.0.0.1:{port}"
        wrong = f"admin:{secrets.token_urlsafe(12)}"
        for path in PROTECTED:
            assert get(base + path).status == 401, f"{path} answered without credentials"
            assert get(base + path, wrong).status == 401, f"{path} answered a wrong password"
        for credential in (admin, ops):  # every comma-separated credential is accepted
            for path in ("/workers", "/metrics", "/api/workers", "/broker"):
                reply = get(base + path, credential)
                assert reply.status == 200, (path, reply.status, reply.body[:300])
        assert b"# HELP flower_" in get(base + "/metrics", admin).body  # Flower's Prometheus metrics
        assert get(base + "/worker/nobody@nowhere", admin).status == 404  # past the login, an unknown worker
        unauthorized = get(base + "/workers")
        assert unauthorized.body == b"Access denied"

        log = service.log.read_text(errors="replace")
        assert f"Visit me at http://127.0.0.1:{port}" in log, log  # Flower's banner, now true
        assert "Flower listens on 127.0.0.1 (this host only" in log, log
        assert "2 credentials from CELESTRA_FLOWER_BASIC_AUTH" in log, log
        for credential in (admin, ops):
            assert credential.split(":", 1)[1] not in log, "a password reached the log"


def test_healthcheck_stays_open_for_probes(broker_url: str, tmp_path: Path, logs: Path) -> None:
    """Flower's /healthcheck checks no credentials by design (probes carry none) and says only "OK"."""
    port = free_port()
    env = flower_env(broker_url, tmp_path / "home", CELESTRA_FLOWER_BASIC_AUTH="admin:" + secrets.token_hex(8))
    with running_flower([], env, logs, port):
        reply = get(f"http://127.0.0.1:{port}/healthcheck")
        assert (reply.status, reply.body) == (200, b"OK")


def test_address_option_overrides_the_loopback_default(broker_url: str, tmp_path: Path, logs: Path) -> None:
    admin, _ = credentials()
    port = free_port()
    env = flower_env(broker_url, tmp_path / "home", CELESTRA_FLOWER_BASIC_AUTH=admin)
    with running_flower(["--address=0.0.0.0"], env, logs, port) as service:
        assert listening_addresses(port) == {"0.0.0.0"}, service.tail()
        others = [a for a in other_local_addresses() if not ipaddress.ip_address(a).is_loopback] or ["127.0.0.2"]
        for address in others:  # reachable there now, and still behind the credentials
            assert get(f"http://{address}:{port}/workers").status == 401
            assert get(f"http://{address}:{port}/workers", admin).status == 200
        log = service.log.read_text(errors="replace")
        assert f"Visit me at http://0.0.0.0:{port}" in log, log
        assert "Flower listens on 0.0.0.0 (every IPv4 interface)" in log, log


def test_no_auth_opens_pages_and_api_on_purpose_still_on_loopback(
        broker_url: str, tmp_path: Path, logs: Path) -> None:
    port = free_port()
    with running_flower(["--no-auth"], flower_env(broker_url, tmp_path / "home"), logs, port) as service:
        assert listening_addresses(port) == {"127.0.0.1"}, service.tail()
        base = f"http://127.0.0.1:{port}"
        for path in ("/workers", "/metrics", "/api/workers"):
            assert get(base + path).status == 200, path
        assert "NO authentication (--no-auth)" in service.log.read_text(errors="replace")


@pytest.mark.parametrize("setting", [None, "", "admin", "admin:", ":secret", "admin:secret,"],
                         ids=["unset", "empty", "no-colon", "no-password", "no-user", "empty-entry"])
def test_flower_refuses_to_start_without_valid_credentials_or_opt_out(
        broker_url: str, tmp_path: Path, setting: str | None) -> None:
    port = free_port()
    extra = {} if setting is None else {"CELESTRA_FLOWER_BASIC_AUTH": setting}
    env = flower_env(broker_url, tmp_path / "home", **extra)
    result = subprocess.run([*CELESTRA, "flower", f"--port={port}"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode != 0, result.stdout + result.stderr
    message = " ".join(result.stderr.split())
    assert "CELESTRA_FLOWER_BASIC_AUTH" in message, message
    if not setting:
        assert "CELESTRA_FLOWER_BASIC_AUTH=user:password" in message and "--no-auth" in message, message
    else:
        assert "is not user:password" in message, message
        if ":" in setting and setting.split(":", 1)[1].strip(","):
            assert setting.split(":", 1)[1].strip(",") not in message  # the password is never repeated
    assert "Visit me" not in result.stdout + result.stderr
    assert listening_addresses(port) == set()


STATES_NS = "celestra.it.flower"
OUTCOMES = f"""\
id: outcomes
namespace: {STATES_NS}
tasks:
  - id: fine
    type: io.kestra.plugin.core.debug.Return
    format: ok
    workerGroup: {{key: gpu}}
  - id: boom
    type: io.kestra.plugin.scripts.shell.Commands
    workerGroup: {{key: onprem}}
    commands:
      - exit 3
"""


def test_flower_shows_a_failed_task_run_as_failure_and_names_flow_and_task(
        postgres_server: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Flower reads the workers' task events: a task run that FAILED ends its message FAILURE, not SUCCESS, and
    each message's name says which flow and task it ran."""
    root = tmp_path_factory.mktemp("flower-states")
    with fresh_redis_database() as broker, groups_cluster(broker, postgres_server.create_database(), root) as cluster:
        port = free_port()
        with running_flower(["--no-auth"], cluster.env, cluster.logs, port):
            def tasks() -> dict[str, Any]:
                return dict(json.loads(get(f"http://127.0.0.1:{port}/api/tasks").body))

            # Flower switches task events on in the workers it finds (every few seconds): run until it sees one.
            def seen() -> bool | None:
                cluster.run(OUTCOMES.replace("id: outcomes", "id: warm_up"))
                return any("warm_up" in (task.get("name") or "") for task in tasks().values()) or None

            wait_until(seen, 60, "Flower to receive the workers' task events", poll=0.5)
            ended = cluster.run(OUTCOMES)
            assert ended.state.value == "FAILED"

            def settled() -> dict[str, str] | None:
                states = {t["name"]: t["state"] for t in tasks().values() if ".outcomes:" in (t.get("name") or "")}
                return states if len(states) == 2 and "STARTED" not in states.values() else None

            states = wait_until(settled, 30, "Flower to see both task runs end")
            assert states == {f"celestra.run_task[{STATES_NS}.outcomes:fine]": "SUCCESS",
                              f"celestra.run_task[{STATES_NS}.outcomes:boom]": "FAILURE"}
            failed = next(t for t in tasks().values() if t.get("name", "").endswith(":boom]"))
            assert "task boom" in failed["exception"] and ended.id in failed["exception"]
