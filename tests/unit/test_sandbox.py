"""What flows must not read: the worker's environment, through templates or through a script's environment."""

from __future__ import annotations

from typing import Any

import pytest

from app import templating
from app.model.states import State
from runners.base import RunnerPolicy

PLANTED = "planted-7f3a9c"  # a value that must never come out


@pytest.fixture
def planted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELESTRA_ENCRYPTION_KEY_FOR_TEST", PLANTED)
    monkeypatch.setenv("SECRET_FOR_TEST", PLANTED)
    monkeypatch.setenv("SOME_TOKEN_FOR_TEST", PLANTED)


@pytest.mark.parametrize("expression", [
    "env", "$ENV", "$ENV.SECRET_FOR_TEST", "env.CELESTRA_ENCRYPTION_KEY_FOR_TEST", "[env[]]", "$ENV | tostring",
])
def test_jq_cannot_read_the_environment(planted: None, expression: str) -> None:
    rendered = templating.render(f"{{{{ {{}} | jq('{expression}') }}}}", {})
    assert PLANTED not in rendered


def test_jq_cannot_load_modules_from_disk() -> None:
    with pytest.raises(templating.TemplateError, match="syntax error"):
        templating.render("""{{ {} | jq('import "passwd" as $p; $p') }}""", {})


def test_jq_programs_keep_working() -> None:
    data = {"a": [1, 2, 3], "env": "field"}
    assert templating.render("{{ data | jq('.a | map(. * 2) # doubled') }}", {"data": data}) == "[[2,4,6]]"
    assert templating.render("{{ data | jq('def twice: . * 2; .a[] | twice') }}", {"data": data}) == "[2,4,6]"
    assert templating.render("{{ data | jq('.env') }}", {"data": data}) == '["field"]'


def test_the_inherited_environment_is_an_allow_list_without_secrets() -> None:
    environ = {"PATH": "/bin", "HOME": "/root", "CELESTRA_DATABASE_URL": "postgresql://u:pw@db", "SECRET_X": "eA==",
               "AWS_SECRET_ACCESS_KEY": "k", "EXTRA": "e"}
    assert RunnerPolicy().inherited(environ) == {"PATH": "/bin", "HOME": "/root"}
    widened = RunnerPolicy(inherited_env=("PATH", "EXTRA", "CELESTRA_DATABASE_URL", "SECRET_X"))
    assert widened.inherited(environ) == {"PATH": "/bin", "EXTRA": "e"}  # CELESTRA_* and SECRET_* never


SCRIPT = """
id: env_probe
namespace: company.team
tasks:
  - id: probe
    type: io.kestra.plugin.scripts.shell.Commands
    env:
      OWN: declared
    commands:
      - echo "key=${CELESTRA_ENCRYPTION_KEY_FOR_TEST:-} secret=${SECRET_FOR_TEST:-} token=${SOME_TOKEN_FOR_TEST:-}"
      - echo "own=$OWN"
      - env | grep -c FOR_TEST || true
      - command -v sh >/dev/null && echo "path ok"
"""


def test_a_script_sees_only_its_own_env_and_the_allowed_part_of_the_workers(planted: None, client: Any) -> None:
    ex = client.run(SCRIPT, timeout=60)
    assert ex.state == State.SUCCESS, ex.to_json()
    lines = [row["message"] for row in client.logs(ex.id) if row["task_id"] == "probe"]
    assert lines == ["key= secret= token=", "own=declared", "0", "path ok"]
