"""SECRET inputs: stored encrypted, seen in plain text only by the task that renders them, masked in logs."""

from __future__ import annotations

import stat
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from typer.testing import CliRunner

from app import runtime
from app.cli import cli
from app.engine import events
from app.errors import ConfigError
from app.model.loader import load_flow
from app.model.states import State
from app.settings import Settings
from app.store import encryption
from app.store.tables import executions

FLOW = """id: with_secret
namespace: unit.secrets
inputs:
  - id: password
    type: SECRET
tasks:
  - id: length
    type: io.kestra.plugin.core.debug.Return
    format: "{{ inputs.password | length }}"
  - id: said
    type: io.kestra.plugin.core.log.Log
    message: "the password is {{ inputs.password }}"
"""


def test_a_secret_input_is_stored_encrypted_and_used_in_plain_text_by_its_task(client: Any) -> None:
    ex = client.run(FLOW, inputs={"password": "hunter22"})
    assert ex.state == State.SUCCESS
    assert ex.task_runs[0].outputs == {"value": "8"}  # the task rendered the plain value
    with runtime.store().engine.connect() as conn:
        stored = conn.execute(sa.select(executions.c.inputs).where(executions.c.id == ex.id)).scalar_one()
    assert stored["password"].startswith(encryption.PREFIX) and "hunter22" not in str(stored)
    assert ex.to_json()["inputs"] == {"password": "********"}
    messages = [row["message"] for row in client.logs(ex.id)]
    assert "the password is ********" in messages and not any("hunter22" in m for m in messages)
    key_file = runtime.settings().home / encryption.KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_a_process_with_another_key_cannot_read_it_and_says_so(client: Any) -> None:
    token = encryption.encrypt("hunter22")
    embedded = runtime.settings()
    runtime.configure(embedded.model_copy(update={"encryption_key": SecretStr(encryption.new_key())}))
    try:
        with pytest.raises(ConfigError, match="not the one it was encrypted with"):
            encryption.decrypt(token)
    finally:
        runtime.configure(embedded)
    assert encryption.decrypt(token) == "hunter22"


def test_a_cluster_without_a_key_refuses_secret_inputs_before_storing_anything(client: Any) -> None:
    embedded = runtime.settings()
    runtime.configure(Settings(broker_url="redis://127.0.0.1:1/0", home=embedded.home))
    try:
        with pytest.raises(ConfigError, match="CELESTRA_ENCRYPTION_KEY"):
            events.new_execution(load_flow(FLOW), FLOW, {"password": "hunter22"})
    finally:
        runtime.configure(embedded)


def test_keygen_prints_a_key_the_settings_accept(client: Any) -> None:
    result = CliRunner().invoke(cli, ["keygen"])
    assert result.exit_code == 0
    key = result.stdout.strip()
    embedded = runtime.settings()
    runtime.configure(embedded.model_copy(update={"encryption_key": SecretStr(key)}))
    try:
        assert encryption.decrypt(encryption.encrypt("x")) == "x"
    finally:
        runtime.configure(embedded)


def test_a_worker_with_another_key_fails_the_run_saying_why_instead_of_losing_it(client: Any) -> None:
    flow = load_flow(FLOW)
    embedded = runtime.settings()
    runtime.configure(embedded.model_copy(update={"encryption_key": SecretStr(encryption.new_key())}))
    try:
        ex = events.create_execution(flow, FLOW, {"password": "hunter22"})  # encrypted with another key
    finally:
        runtime.configure(embedded)
    events.start(ex.id)
    ended = client.wait(ex.id, timeout=30)
    assert ended.state == State.FAILED
    assert "not the one it was encrypted with" in (ended.task_runs[0].error or "")


def test_a_step_that_renders_a_secret_it_cannot_decrypt_fails_the_execution_instead_of_hanging(client: Any) -> None:
    source = """id: branch_on_secret
namespace: unit.secrets
inputs:
  - id: password
    type: SECRET
tasks:
  - id: check
    type: io.kestra.plugin.core.flow.If
    condition: "{{ inputs.password | length > 3 }}"
    then:
      - id: long
        type: io.kestra.plugin.core.log.Log
        message: long enough
"""
    embedded = runtime.settings()
    runtime.configure(embedded.model_copy(update={"encryption_key": SecretStr(encryption.new_key())}))
    try:
        ex = events.create_execution(load_flow(source), source, {"password": "hunter22"})
    finally:
        runtime.configure(embedded)
    events.start(ex.id)  # the executor renders the condition here, with the embedded key: it cannot decrypt
    ended = client.wait(ex.id, timeout=30)
    assert ended.state == State.FAILED
    assert "not the one it was encrypted with" in (ended.task_runs[0].error or "")
