"""No secret reaches the database: a flow that logs, returns, labels, fails with and outputs its secrets, in the
encodings a template or a script can produce, leaves none of them in any stored row."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
import sqlalchemy as sa

from app import runtime
from app.model.states import State
from app.store.masking import MASK, Masker, forms_of

ENV_SECRET = "Env-S3cret/with+chars ok"
INPUT_SECRET = "Input-Pa55word:42"

FLOW = """
id: secrets_at_rest
namespace: unit.secrets.rest
inputs:
  - id: password
    type: SECRET
outputs:
  - id: leaked
    type: STRING
    value: "{{ inputs.password }} / {{ inputs.password | base64encode }}"
tasks:
  - id: logs
    type: io.kestra.plugin.core.log.Log
    message:
      - "plain {{ secret('UNIT_REST_TOKEN') }}"
      - "b64 {{ secret('UNIT_REST_TOKEN') | base64encode }}"
      - "basic {{ ('user:' ~ secret('UNIT_REST_TOKEN')) | base64encode }}"
      - "upper {{ secret('UNIT_REST_TOKEN') | upper }} lower {{ secret('UNIT_REST_TOKEN') | lower }}"
      - "url {{ secret('UNIT_REST_TOKEN') | urlencode }}"
      - "input {{ inputs.password }} {{ inputs.password | base64encode }} {{ inputs.password | upper }}"
  - id: returned
    type: io.kestra.plugin.core.debug.Return
    format: "{{ secret('UNIT_REST_TOKEN') }}|{{ ('x' ~ inputs.password) | base64encode }}"
  - id: values
    type: io.kestra.plugin.core.output.OutputValues
    values:
      token: "{{ secret('UNIT_REST_TOKEN') }}"
      nested:
        "{{ inputs.password }}": ["{{ inputs.password | lower }}"]
  - id: label
    type: io.kestra.plugin.core.execution.Labels
    labels:
      token: "{{ secret('UNIT_REST_TOKEN') | base64encode }}"
  - id: script
    type: io.kestra.plugin.scripts.shell.Commands
    taskRunner:
      type: io.kestra.plugin.core.runner.Process
    env:
      TOKEN: "{{ secret('UNIT_REST_TOKEN') }}"
    commands:
      - echo "script says $TOKEN"
      - printf '%s' "$TOKEN" | base64
      - echo '::{"outputs":{"fromScript":"'"$(printf '%s' "$TOKEN" | base64)"'"}}::'
"""

FAILING = """
id: secrets_at_rest_failing
namespace: unit.secrets.rest
tasks:
  - id: fails
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: "cannot go on with {{ secret('UNIT_REST_TOKEN') }} ({{ secret('UNIT_REST_TOKEN') | base64encode }})"
"""


def giveaways(value: str) -> set[str]:
    """What a scan of stored text must never find: the value and its encodings that are long enough to mean it."""
    raw = value.encode()
    return {value, value.upper(), value.lower(), quote(value, safe=""), quote_plus(value),
            base64.b64encode(raw).decode().rstrip("="), base64.urlsafe_b64encode(raw).decode().rstrip("=")}


def test_no_stored_row_holds_a_secret(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_UNIT_REST_TOKEN", base64.b64encode(ENV_SECRET.encode()).decode())
    ex = client.run(FLOW, inputs={"password": INPUT_SECRET}, timeout=60)
    assert ex.state == State.SUCCESS, ex.to_json()
    failed = client.run(FAILING, timeout=60)
    assert failed.state == State.FAILED
    assert failed.task_runs[0].error == f"cannot go on with {MASK} ({MASK})"

    store = runtime.store()
    found: list[str] = []
    with store.engine.connect() as conn:
        metadata = sa.MetaData()
        metadata.reflect(conn)
        for table in metadata.sorted_tables:
            for row in conn.execute(sa.select(table)):
                text = json.dumps([str(cell) for cell in row])
                for secret in (ENV_SECRET, INPUT_SECRET):
                    found += [f"{table.name}: {form!r}" for form in giveaways(secret) if form in text]
    assert not found, found

    # The masks are where the secrets were: the flow did store what it logged and returned, masked.
    logs = [row["message"] for row in store.logs(ex.id)]
    assert "plain ********" in logs and "b64 ********" in logs and "url ********" in logs
    assert any(line.startswith("script says ********") for line in logs), logs
    returned = next(run for run in ex.task_runs if run.task_id == "returned")
    assert returned.outputs["value"].startswith(MASK + "|")
    assert ex.outputs["leaked"] == f"{MASK} / {MASK}"


def test_base64_of_a_secret_inside_a_longer_text_is_masked_at_every_alignment() -> None:
    masker = Masker()
    masker.remember("correct horse battery")
    for prefix in ("", "a", "ab", "abc", "user:"):
        encoded = base64.b64encode((prefix + "correct horse battery" + "!?").encode()).decode()
        masked = masker.mask(encoded)
        assert MASK in masked, prefix
        # What is left around the mask is at most the few characters that mix the secret with its neighbours.
        assert len(masked.replace(MASK, "")) <= len(base64.b64encode((prefix + "!?").encode())) + 4


def test_short_values_mask_only_themselves() -> None:
    assert forms_of("abc") == {"abc"}  # an upper-case 'ABC' or a 3-character base64 would mask ordinary text
    assert forms_of("") == set()
    masker = Masker()
    masker.remember("line-one\nline-two")
    assert masker.mask("got line-two only") == f"got {MASK} only"
    assert masker.mask_value({"k line-one": ["LINE-ONE\nLINE-TWO", 3]}) == {f"k {MASK}": [MASK, 3]}


CHILD = """
id: secrets_child_{kind}
namespace: unit.secrets.rest
inputs:
  - id: token
    type: {kind}
tasks:
  - id: length
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ inputs.token | length }}}}"
"""

PARENT = """
id: secrets_parent_{kind}
namespace: unit.secrets.rest
inputs:
  - id: password
    type: SECRET
tasks:
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: unit.secrets.rest
    flowId: secrets_child_{kind}
    inputs:
      token: "{{{{ inputs.password }}}}"
    labels:
      leaked: "{{{{ inputs.password }}}}"
"""


def test_a_secret_input_passed_to_a_subflow_stays_encrypted_or_is_refused(client: Any) -> None:
    for kind in ("SECRET", "STRING"):
        client.deploy(CHILD.format(kind=kind))
    ok = client.run(PARENT.format(kind="SECRET"), inputs={"password": INPUT_SECRET}, timeout=60)
    assert ok.state == State.SUCCESS, ok.to_json()
    refused = client.run(PARENT.format(kind="STRING"), inputs={"password": INPUT_SECRET}, timeout=60)
    assert refused.state == State.FAILED
    assert "declare it `type: SECRET`" in (refused.task_runs[0].error or "")

    store = runtime.store()
    with store.engine.connect() as conn:
        metadata = sa.MetaData()
        metadata.reflect(conn)
        leaks = [table.name for table in metadata.sorted_tables for row in conn.execute(sa.select(table))
                 if INPUT_SECRET in json.dumps([str(cell) for cell in row])]
    assert not leaks, leaks


def test_flowables_store_no_secret_input(client: Any) -> None:
    ex = client.run("""
id: secrets_in_flowables
namespace: unit.secrets.rest
inputs:
  - id: password
    type: SECRET
tasks:
  - id: switch
    type: io.kestra.plugin.core.flow.Switch
    value: "{{ inputs.password }}"
    cases:
      other:
        - {id: never, type: io.kestra.plugin.core.log.Log, message: x}
    defaults:
      - {id: seen, type: io.kestra.plugin.core.log.Log, message: default}
  - id: broken
    type: io.kestra.plugin.core.flow.If
    condition: "{{ inputs.password | number }}"
    then:
      - {id: then, type: io.kestra.plugin.core.log.Log, message: x}
""", inputs={"password": INPUT_SECRET}, timeout=60)
    assert ex.state == State.FAILED
    switch = next(run for run in ex.task_runs if run.task_id == "switch")
    assert switch.outputs["value"] == MASK and switch.outputs["defaults"] is True
    broken = next(run for run in ex.task_runs if run.task_id == "broken")
    assert broken.error and INPUT_SECRET not in broken.error
    store = runtime.store()
    assert not [row for row in store.logs(ex.id) if INPUT_SECRET in row["message"]]
    with store.engine.connect() as conn:
        rows = [json.dumps([str(cell) for cell in row]) for table, column in
                (("task_runs", "execution_id"), ("logs", "execution_id"), ("executions", "id"))
                for row in conn.execute(sa.text(f"select * from {table} where {column} = :id"), {"id": ex.id})]
    assert rows and not [row for row in rows if INPUT_SECRET in row]
