"""The REST API as a real `celestra webserver` process (embedded: SQLite, no broker), driven over HTTP with httpx
and with Kestra's own Python client, kestrapy, unchanged: create a flow, execute it with inputs, wait, read its
logs, kill a running one. Kestra's paths with and without the `main` tenant; nobody gets in without credentials."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

CELESTRA = str(Path(sys.executable).parent / "celestra")
AUTH = ("ada", "lovelace")
NS = "company.team"
FLOW = f"""id: hello
namespace: {NS}
inputs:
  - id: who
    type: STRING
  - id: times
    type: INT
    defaults: 2
  - id: attachment
    type: FILE
    required: false
tasks:
  - id: greet
    type: io.kestra.plugin.core.log.Log
    message: "Hello {{{{ inputs.who }}}} x{{{{ inputs.times }}}}"
  - id: answer
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ inputs.who | upper }}}}"
"""
SLOW = f"""id: slow
namespace: {NS}
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT60S
"""


@dataclass
class Api:
    url: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    home: Path

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, **kwargs)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    home, port = tmp_path_factory.mktemp("api-home"), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELESTRA_")}
    env.update(CELESTRA_HOME=str(home), CELESTRA_API_PORT=str(port), CELESTRA_API_BASIC_AUTH=":".join(AUTH),
               PYTHONUNBUFFERED="1")
    log = open(home / "webserver.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen([CELESTRA, "webserver"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, (home / "webserver.log").read_text()
        time.sleep(0.1)
    try:
        yield Api(url, env, process, home)
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def test_nothing_gets_in_without_credentials(api: Api) -> None:
    with api.client() as http:
        for path in ("/api/v1/main/flows/search", "/api/v1/flows/search", "/api/v1/main/executions/x"):
            refused = http.get(path)
            assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Basic")
        assert http.get("/api/v1/flows/search", auth=("ada", "wrong")).status_code == 401
        assert http.get("/api/v1/flows/search", headers={"Authorization": "Bearer cel_nope"}).status_code == 401
        assert http.get("/health").json() == {"status": "UP"}
    made = subprocess.run([CELESTRA, "api-token", "create", "ci"], env=api.env, capture_output=True, text=True,
                          timeout=60, check=True)
    token = made.stdout.strip()
    assert token.startswith("cel_")
    with api.client(headers={"Authorization": f"Bearer {token}"}) as http:
        assert http.get("/api/v1/main/flows/search").status_code == 200
    listed = subprocess.run([CELESTRA, "api-token", "list"], env=api.env, capture_output=True, text=True,
                            timeout=60, check=True)
    assert "ci" in listed.stdout and token not in listed.stdout
    subprocess.run([CELESTRA, "api-token", "revoke", "ci"], env=api.env, timeout=60, check=True)
    with api.client(headers={"Authorization": f"Bearer {token}"}) as http:
        assert http.get("/api/v1/main/flows/search").status_code == 401


def test_flows_over_http_in_kestras_shapes(api: Api) -> None:
    with api.client(auth=AUTH) as http:
        yaml_body = {"Content-Type": "application/x-yaml"}
        bad = http.post("/api/v1/main/flows", content="id: broken\nnamespace: x\ntasks: 3\n", headers=yaml_body)
        assert bad.status_code == 422 and "tasks" in bad.json()["message"]
        created = http.post("/api/v1/main/flows", content=FLOW.replace("id: hello", "id: crud"), headers=yaml_body)
        assert created.status_code == 200, created.text
        body = created.json()
        assert (body["id"], body["namespace"], body["revision"], body["deleted"]) == ("crud", NS, 1, False)
        assert body["tasks"][0]["id"] == "greet" and body["source"].startswith("id: crud")
        again = http.post("/api/v1/main/flows", content=FLOW.replace("id: hello", "id: crud"), headers=yaml_body)
        assert again.status_code == 422 and "already exists" in again.json()["message"]
        changed = FLOW.replace("id: hello", "id: crud").replace("x{{ inputs.times }}", "times {{ inputs.times }}")
        updated = http.put(f"/api/v1/flows/{NS}/crud", content=changed, headers=yaml_body)
        assert updated.status_code == 200 and updated.json()["revision"] == 2
        assert http.get(f"/api/v1/main/flows/{NS}/crud", params={"revision": 1}).json()["source"].startswith(
            "id: crud")
        assert [r["revision"] for r in http.get(f"/api/v1/main/flows/{NS}/crud/revisions").json()] == [1, 2]
        found = http.get("/api/v1/main/flows/search", params={"filters[namespace][PREFIX]": "company"}).json()
        assert found["total"] >= 1 and "crud" in [f["id"] for f in found["results"]]
        assert http.get("/api/v1/main/flows/search", params={"filters[labels][EQUALS]": "a"}).status_code == 400
        checked = http.post("/api/v1/main/flows/validate", content=FLOW + "---\nid: bad\nnamespace: x\n",
                            headers=yaml_body).json()
        assert "constraints" not in checked[0] and checked[0]["flow"] == "hello"
        assert checked[1]["flow"] == "bad" and "tasks" in checked[1]["constraints"]
        assert http.get("/api/v1/main/flows/company.team/nowhere").status_code == 404
        assert http.delete(f"/api/v1/main/flows/{NS}/crud").status_code == 204
        assert http.get(f"/api/v1/main/flows/{NS}/crud").status_code == 404


def test_executions_and_logs_over_http(api: Api) -> None:
    with api.client(auth=AUTH) as http:
        http.post("/api/v1/main/flows", content=FLOW, headers={"Content-Type": "application/x-yaml"})
        done = http.post(f"/api/v1/main/executions/{NS}/hello", params={"wait": "true", "labels": "team:data"},
                         files={"who": (None, "ada"), "times": (None, "3"),
                                "attachment": ("notes.txt", b"some notes")})
        assert done.status_code == 200, done.text
        ex = done.json()
        assert ex["state"]["current"] == "SUCCESS" and ex["labels"] == [{"key": "team", "value": "data"}]
        assert ex["inputs"]["who"] == "ada" and ex["inputs"]["times"] == 3
        assert ex["inputs"]["attachment"].startswith("kestra:///") and ex["inputs"]["attachment"].endswith(
            "notes.txt")
        [greet, answer] = ex["taskRunList"]
        assert answer["outputs"] == {"value": "ADA"} and greet["state"]["current"] == "SUCCESS"
        assert http.get(f"/api/v1/executions/{ex['id']}").json()["id"] == ex["id"]
        logs = http.get(f"/api/v1/main/logs/{ex['id']}", params={"minLevel": "INFO", "taskId": "greet"}).json()
        assert [line["message"] for line in logs] == ["Hello ada x3"]
        assert logs[0]["executionId"] == ex["id"] and logs[0]["flowId"] == "hello"
        assert "INFO Hello ada x3" in http.get(f"/api/v1/main/logs/{ex['id']}/download").text
        with http.stream("GET", f"/api/v1/main/logs/{ex['id']}/follow") as stream:
            events = "".join(stream.iter_text())
        assert "Hello ada x3" in events and events.rstrip().endswith("event: end\ndata: {}")
        bad = http.post(f"/api/v1/main/executions/{NS}/hello", files={"who": (None, "x"), "times": (None, "many")})
        assert bad.status_code == 422 and "times" in bad.json()["message"]
        path = http.post(f"/api/v1/main/executions/{NS}/hello",
                         files={"who": (None, "x"), "attachment": (None, "/etc/passwd")})
        assert path.status_code == 422 and "kestra://" in path.json()["message"]
        served_file = FLOW.replace("id: hello", "id: sneaky").replace(
            "    type: FILE\n    required: false", "    type: FILE\n    defaults: /etc/hostname")
        assert http.post("/api/v1/main/flows", content=served_file,
                         headers={"Content-Type": "application/x-yaml"}).status_code == 200
        sneaky = http.post(f"/api/v1/main/executions/{NS}/sneaky", files={"who": (None, "x")})
        assert sneaky.status_code == 422 and "not a path of the server" in sneaky.json()["message"]
        assert http.post(f"/api/v1/main/executions/{NS}/hello", json={"who": "x"}).status_code == 415
        replayed = http.post(f"/api/v1/main/executions/{ex['id']}/replay")
        assert replayed.status_code == 200 and replayed.json()["id"] != ex["id"]
        assert http.post(f"/api/v1/main/executions/{ex['id']}/restart").status_code in (200, 409)
        assert http.post(f"/api/v1/main/executions/{ex['id']}/resume").status_code == 409
        assert http.get("/api/v1/main/executions/search", params={"sort": "state"}).status_code == 400
        assert http.get("/api/v1/main/executions/search", params={"q": "x"}).status_code == 400
        page = http.get("/api/v1/main/executions/search",
                        params={"filters[namespace][EQUALS]": NS, "filters[state][IN]": "SUCCESS", "size": 1}).json()
        assert page["total"] >= 1 and len(page["results"]) == 1
        assert http.get("/api/v1/main/executions/noSuchOne").status_code == 404


def test_kestras_python_client_runs_its_core_calls_unchanged(api: Api) -> None:
    from kestrapy import Configuration, KestraClient

    kestra = KestraClient(Configuration(host=api.url, username=AUTH[0], password=AUTH[1]))
    created = kestra.flows.create_flow("main", FLOW.replace("id: hello", "id: from_sdk"))
    assert (created.namespace, created.id, created.revision) == (NS, "from_sdk", 1)
    assert kestra.flows.flow(NS, "from_sdk", "main").revision == 1
    ran = kestra.executions.create_execution("main", NS, "from_sdk", wait=True, inputs={"who": "grace", "times": 4})
    assert ran.state.current.value == "SUCCESS" and ran.flow_id == "from_sdk"
    fetched = kestra.executions.execution(ran.id, "main")
    assert [run.task_id for run in fetched.task_run_list or []] == ["greet", "answer"]
    lines = kestra.logs.list_logs_from_execution(ran.id, "main", min_level="INFO")
    assert "Hello grace x4" in [line.message for line in lines]
    kestra.flows.create_flow("main", SLOW)
    running = kestra.executions.create_execution("main", NS, "slow")
    deadline = time.monotonic() + 30
    while kestra.executions.execution(running.id, "main").state.current.value != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    kestra.executions.kill_execution(running.id, "main")
    while kestra.executions.execution(running.id, "main").state.current.value != "KILLED":
        assert time.monotonic() < deadline, "the killed execution never ended KILLED"
        time.sleep(0.1)


HOOKED = f"""id: hooked
namespace: {NS}
inputs:
  - id: who
    type: STRING
tasks:
  - id: echo
    type: io.kestra.plugin.core.debug.Return
    format: >-
      {{{{ inputs.who }}}} {{{{ trigger.body.n }}}} {{{{ trigger.parameters.tag[0] }}}}
      {{{{ trigger.headers['x-source'][0] }}}}
outputs:
  - id: said
    type: STRING
    value: "{{{{ outputs.echo.value }}}}"
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: s3cr3t-Key_1
    inputs:
      who: "{{{{ trigger.body.who }}}}"
  - id: disabled_hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: switched-off
    disabled: true
  - id: waiting
    type: io.kestra.plugin.core.trigger.Webhook
    key: w41t-for-it
    wait: true
    returnOutputs: true
    inputs:
      who: "{{{{ trigger.body.who }}}}"
"""


def test_a_webhook_starts_one_execution_with_the_request_and_can_return_its_outputs(api: Api) -> None:
    with api.client(auth=AUTH) as http:
        assert http.post("/api/v1/main/flows", content=HOOKED,
                         headers={"Content-Type": "application/x-yaml"}).status_code == 200
    with api.client() as http:  # no credentials: the key is the webhook's
        started = http.post(f"/api/v1/main/executions/webhook/{NS}/hooked/s3cr3t-Key_1", params={"tag": "t1"},
                            json={"who": "ada", "n": 7}, headers={"X-Source": "ci"})
        assert started.status_code == 200, started.text
        ex = started.json()
        assert ex["flowId"] == "hooked" and ex["trigger"]["id"] == "hook"
        assert ex["trigger"]["variables"]["body"] == {"who": "ada", "n": 7}
        answered = http.put(f"/api/v1/executions/webhook/{NS}/hooked/w41t-for-it", params={"tag": "t2"},
                            json={"who": "grace", "n": 8}, headers={"X-Source": "ci2"})
        assert answered.status_code == 200 and answered.json() == {"said": "grace 8 t2 ci2"}
        assert http.post(f"/api/v1/main/executions/webhook/{NS}/hooked/wrong-key", json={}).status_code == 404
        assert http.post(f"/api/v1/main/executions/webhook/{NS}/hooked/switched-off", json={}).status_code == 404
        assert http.get(f"/api/v1/main/executions/webhook/{NS}/nowhere/s3cr3t-Key_1").status_code == 404
        missing = http.post(f"/api/v1/main/executions/webhook/{NS}/hooked/s3cr3t-Key_1", content=b"not json")
        assert missing.status_code == 422 and "who" in missing.json()["message"]
    with api.client(auth=AUTH) as http:
        done = http.get(f"/api/v1/executions/{ex['id']}").json()
        deadline = time.monotonic() + 30
        while done["state"]["current"] != "SUCCESS":
            assert time.monotonic() < deadline, done
            time.sleep(0.1)
            done = http.get(f"/api/v1/executions/{ex['id']}").json()
        assert done["outputs"] == {"said": "ada 7 t1 ci"}


def test_secret_inputs_are_masked_in_every_answer(api: Api) -> None:
    secret_flow = f"""id: guarded
namespace: {NS}
inputs:
  - id: password
    type: SECRET
tasks:
  - id: use
    type: io.kestra.plugin.core.log.Log
    message: "got it"
"""
    with api.client(auth=AUTH) as http:
        assert http.post("/api/v1/main/flows", content=secret_flow,
                         headers={"Content-Type": "application/x-yaml"}).status_code == 200
        started = http.post(f"/api/v1/main/executions/{NS}/guarded", files={"password": (None, "hunter2")})
        waited = http.post(f"/api/v1/main/executions/{NS}/guarded", params={"wait": "true"},
                           files={"password": (None, "hunter2")})
        found = http.get("/api/v1/main/executions/search", params={"flowId": "guarded"})
        got = http.get(f"/api/v1/main/executions/{started.json()['id']}")
    for answer in (started, waited, found, got):
        assert answer.status_code == 200 and "hunter2" not in answer.text and "enc:" not in answer.text
    assert got.json()["inputs"] == {"password": "******"}


def test_execution_files_namespace_files_and_kv(api: Api) -> None:
    with api.client(auth=AUTH) as http:
        http.post("/api/v1/main/flows", content=FLOW, headers={"Content-Type": "application/x-yaml"})
        ex = http.post(f"/api/v1/main/executions/{NS}/hello", params={"wait": "true"},
                       files={"who": (None, "ada"), "attachment": ("notes.txt", b"some notes")}).json()
        uri = ex["inputs"]["attachment"]
        got = http.get(f"/api/v1/main/executions/{ex['id']}/file", params={"path": uri})
        assert got.status_code == 200 and got.content == b"some notes"
        assert 'filename="notes.txt"' in got.headers["Content-Disposition"]
        other = http.post(f"/api/v1/main/executions/{NS}/hello", params={"wait": "true"},
                          files={"who": (None, "b")}).json()
        assert http.get(f"/api/v1/main/executions/{other['id']}/file", params={"path": uri}).status_code == 422
        sneaky = uri.rsplit("/executions/", 1)[0] + f"/executions/{other['id']}/../{ex['id']}/x"
        assert http.get(f"/api/v1/main/executions/{other['id']}/file", params={"path": sneaky}).status_code == 422
        put = http.post(f"/api/v1/main/namespaces/{NS}/files", params={"path": "/scripts/run.py"},
                        files={"fileContent": ("run.py", b"print(1)")})
        assert put.status_code == 204
        assert http.get(f"/api/v1/main/namespaces/{NS}/files", params={"path": "/scripts/run.py"}).content == \
            b"print(1)"
        listed = http.get(f"/api/v1/main/namespaces/{NS}/files/directory").json()
        assert {"fileName": "run.py", "type": "File", "path": "/scripts/run.py"} in listed
        assert http.get(f"/api/v1/main/namespaces/{NS}/files", params={"path": "../../x"}).status_code == 422
        assert http.delete(f"/api/v1/main/namespaces/{NS}/files", params={"path": "/scripts/run.py"}).status_code \
            == 204
        assert http.put(f"/api/v1/main/namespaces/{NS}/kv/limit", content=b"42").status_code == 204
        assert http.get(f"/api/v1/main/namespaces/{NS}/kv/limit").json() == {"type": "NUMBER", "value": 42}
        assert {"key": "limit"} in http.get(f"/api/v1/main/namespaces/{NS}/kv").json()
        assert http.delete(f"/api/v1/main/namespaces/{NS}/kv/limit").json() is True
        assert http.get(f"/api/v1/main/namespaces/{NS}/kv/limit").status_code == 404


def test_labels_and_deletion_of_an_ended_execution(api: Api) -> None:
    from kestrapy import Configuration, KestraClient

    kestra = KestraClient(Configuration(host=api.url, username=AUTH[0], password=AUTH[1]))
    with api.client(auth=AUTH) as http:
        if http.get(f"/api/v1/main/flows/{NS}/hello").status_code == 404:
            http.post("/api/v1/main/flows", content=FLOW, headers={"Content-Type": "application/x-yaml"})
        if http.get(f"/api/v1/main/flows/{NS}/slow").status_code == 404:
            http.post("/api/v1/main/flows", content=SLOW, headers={"Content-Type": "application/x-yaml"})
        ended = http.post(f"/api/v1/main/executions/{NS}/hello", params={"wait": "true", "labels": "team:data"},
                          files={"who": (None, "ada"), "attachment": ("a.txt", b"attached")}).json()
        assert ended["state"]["current"] == "SUCCESS"
        # Kestra's client sets labels (add or update: team changes, stage is added).
        labelled = kestra.executions.set_labels_on_terminated_execution(
            ended["id"], "main", [{"key": "team", "value": "ml"}, {"key": "stage", "value": "prod"}])
        assert {label.key: label.value for label in labelled.labels or []} == {"team": "ml", "stage": "prod"}
        assert http.post(f"/api/v1/executions/{ended['id']}/labels",
                         json=[{"key": "system.readOnly", "value": "x"}]).status_code == 400
        running = http.post(f"/api/v1/main/executions/{NS}/slow").json()
        refused = http.post(f"/api/v1/main/executions/{running['id']}/labels", json=[{"key": "a", "value": "b"}])
        assert refused.status_code == 400 and "not terminated" in refused.json()["message"]
        assert http.delete(f"/api/v1/main/executions/{running['id']}").status_code == 409  # kill it first
        http.delete(f"/api/v1/main/executions/{running['id']}/kill")

        # Deleted: the execution, its logs and its files are gone.
        uri = ended["inputs"]["attachment"]
        assert http.get(f"/api/v1/main/executions/{ended['id']}/file", params={"path": uri}).content == b"attached"
        assert [p.read_bytes() for p in api.home.rglob("a.txt") if ended["id"] in str(p)] == [b"attached"]
        kestra.executions.delete_execution(ended["id"], "main")
        assert http.get(f"/api/v1/main/executions/{ended['id']}").status_code == 404
        assert http.get(f"/api/v1/main/logs/{ended['id']}").status_code == 404
        assert http.delete(f"/api/v1/main/executions/{ended['id']}").status_code == 404
        assert http.post(f"/api/v1/main/executions/{ended['id']}/labels",
                         json=[{"key": "a", "value": "b"}]).status_code == 404
        assert [p for p in api.home.rglob("a.txt") if ended["id"] in str(p)] == []


def test_worker_groups_and_triggers_of_celestra_own(api: Api) -> None:
    with api.client(auth=AUTH) as http:
        groups = http.get("/api/v1/main/celestra/worker-groups").json()
        assert groups["embedded"] is True and groups["defaultQueue"] == "celery"
        created = http.post("/api/v1/main/flows", content=SCHEDULED, headers={"Content-Type": "application/x-yaml"})
        assert created.status_code == 200, created.text
        found = http.get("/api/v1/celestra/triggers", params={"namespace": NS}).json()["results"]
        by_id = {(t["flowId"], t["id"]): t for t in found}
        nightly = by_id[("scheduled", "nightly")]
        assert nightly["type"] == "io.kestra.plugin.core.trigger.Schedule" and nightly["disabled"] is False
        assert by_id[("scheduled", "switched_off")]["disabled"] is True
        assert by_id[("scheduled", "hook")]["state"] is None  # a Webhook keeps no server state


SCHEDULED = f"""id: scheduled
namespace: {NS}
tasks:
  - id: hi
    type: io.kestra.plugin.core.log.Log
    message: hi
triggers:
  - id: nightly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 3 * * *"
  - id: switched_off
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 4 * * *"
    disabled: true
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: scheduled-hook-key
"""
