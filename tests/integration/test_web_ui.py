"""The web UI in a real headless Chromium (Debian's, driven by Playwright's Python package), against a real
cluster: `celestra server` serving the API and the UI, a default worker, a `gpu` worker and an `onprem` one, on
Redis + PostgreSQL. The browser starts a flow from the form generated from its inputs, watches its logs arrive
while it runs, reads the worker group and worker of each task run, kills a running execution, and is shown each
problem of a flow at its line. The execution page's screenshot is saved to test-artifacts/execution-page.png."""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from groups_support import HOST, GroupsCluster, fresh_redis_database, groups_cluster, wait_until

pytestmark = pytest.mark.integration
NS = "celestra.it.ui"
AUTH = ("ada", "lovelace")
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
BROWSER_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"]
GREETER = f"""\
id: greeter
namespace: {NS}
inputs:
  - id: who
    type: STRING
  - id: times
    type: INT
    defaults: 2
  - id: color
    type: SELECT
    values: [red, blue]
    defaults: red
tasks:
  - id: greet
    type: io.kestra.plugin.core.log.Log
    message: "Hello {{{{ inputs.who }}}} x{{{{ inputs.times }}}} in {{{{ inputs.color }}}}"
    workerGroup: {{key: gpu}}
  - id: ticks
    type: io.kestra.plugin.scripts.shell.Commands
    workerGroup: {{key: gpu}}
    commands:
      - for i in 1 2 3 4 5 6; do echo "tick $i"; sleep 1; done
  - id: done
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ inputs.who | upper }}}}"
triggers:
  - id: nightly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 3 * * *"
"""
SLEEPER = f"""\
id: sleeper
namespace: {NS}
tasks:
  - id: nap
    type: io.kestra.plugin.scripts.shell.Commands
    workerGroup: {{key: gpu}}
    commands:
      - sleep 120
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def ui(postgres_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GroupsCluster, str]]:
    port = _free_port()
    extra = {"CELESTRA_API_PORT": str(port), "CELESTRA_API_BASIC_AUTH": ":".join(AUTH)}
    with fresh_redis_database() as broker, groups_cluster(
            broker, postgres_server.create_database(), tmp_path_factory.mktemp("ui"), env_extra=extra) as cluster:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _healthy(url), 60, "the server's API to answer /health")
        with httpx.Client(base_url=url, auth=AUTH, timeout=30) as api:
            for source in (GREETER, SLEEPER):
                created = api.post("/api/v1/main/flows", content=source,
                                   headers={"Content-Type": "application/x-yaml"})
                assert created.status_code == 200, created.text
        yield cluster, url


def _healthy(url: str) -> bool | None:
    try:
        return httpx.get(url + "/health", timeout=1).status_code == 200 or None
    except httpx.HTTPError:
        return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        message = f"Debian's chromium is not installed ({CHROMIUM}): apt-get install chromium"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI is set: .ci/run installs it)", pytrace=False)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, ui: tuple[GroupsCluster, str]) -> Iterator[Any]:
    context = browser.new_context(base_url=ui[1], viewport={"width": 1300, "height": 900},
                                  http_credentials={"username": AUTH[0], "password": AUTH[1]})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.set_default_timeout(30_000)
    yield opened
    context.close()
    assert not errors, f"the page's script failed: {errors}"


def _execution_id(page: Any) -> str:
    page.wait_for_url("**/ui/main/executions/*/*/*")
    return str(page.url.rstrip("/").rsplit("/", 1)[-1])


def test_the_ui_is_refused_without_credentials(ui: tuple[GroupsCluster, str]) -> None:
    for path in ("/ui/main/executions", "/ui/assets/app.js", "/api/v1/main/celestra/worker-groups"):
        answer = httpx.get(ui[1] + path, timeout=10)
        assert answer.status_code == 401, path
        assert answer.headers["WWW-Authenticate"].startswith("Basic")  # the browser asks for credentials


def test_start_a_flow_from_its_form_and_watch_it_run_on_its_worker_group(
        page: Any, ui: tuple[GroupsCluster, str]) -> None:
    cluster, _ = ui
    page.goto("/ui/main/executions")
    page.get_by_role("heading", name="Executions").wait_for()
    page.locator("header nav a[data-section=flows]").click()
    page.get_by_role("link", name="greeter", exact=True).click()
    form = page.locator("form#execute")
    form.locator("input[name=who]").wait_for()  # the form is drawn once the flow has been read
    assert form.locator("select[name=color] option").all_inner_texts() == ["red", "blue"]
    assert form.locator("input[name=times]").input_value() == "2"  # the default, from the flow
    form.locator("input[name=who]").fill("Ada")
    form.locator("select[name=color]").select_option("blue")
    form.get_by_role("button", name="Execute").click()
    execution_id = _execution_id(page)

    # Logs arrive while the execution runs: a tick is on the page before the execution has ended.
    logs = page.locator("#logs")
    logs.get_by_text("tick 2").wait_for()
    assert cluster.client.get(execution_id).state.value == "RUNNING"
    assert page.locator("h1 .state").inner_text() == "RUNNING"
    assert logs.get_by_text("Hello Ada x2 in blue").count() == 1

    greet = page.locator("tr[data-task=greet]")
    assert greet.locator("td.worker-group").inner_text() == "gpu"
    assert greet.locator("td.worker").inner_text() == f"gpu@{HOST}"

    page.locator("h1 .state[data-state=SUCCESS]").wait_for(timeout=60_000)
    logs.get_by_text("tick 6").wait_for()
    assert page.locator("tr[data-task=done] .state").inner_text() == "SUCCESS"
    assert page.locator("#outputs").get_by_text("ADA").count() == 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "execution-page.png"), full_page=True)
    assert (ARTIFACTS / "execution-page.png").stat().st_size > 10_000

    # The executions list shows it, with its state, and filters by flow.
    page.locator("header nav a[data-section=executions]").click()
    page.locator("input[name=flowId]").fill("greeter")
    page.locator("input[name=flowId]").dispatch_event("change")
    row = page.locator(f"tr[data-execution='{execution_id}']")
    row.locator(".state[data-state=SUCCESS]").wait_for()


def test_kill_a_running_execution_from_its_page(page: Any, ui: tuple[GroupsCluster, str]) -> None:
    cluster, _ = ui
    page.goto(f"/ui/main/flows/edit/{NS}/sleeper")
    page.locator("form#execute").get_by_role("button", name="Execute").click()
    execution_id = _execution_id(page)
    page.locator("tr[data-task=nap] .state[data-state=RUNNING]").wait_for()

    # Meanwhile the worker groups page shows the gpu worker running it.
    groups = page.context.new_page()
    groups.goto("/ui/main/worker-groups")
    gpu = groups.locator("tr[data-group=gpu]")
    gpu.get_by_text(f"gpu@{HOST}").wait_for()
    gpu.get_by_text(f"{NS}.sleeper / nap").wait_for()
    assert groups.locator("tr[data-group=idle] td.workers").inner_text() == "none alive"
    groups.close()

    page.get_by_role("button", name="Kill").click()
    page.locator("h1 .state[data-state=KILLED]").wait_for(timeout=60_000)
    assert cluster.client.get(execution_id).state.value == "KILLED"
    assert page.get_by_role("button", name="Kill").count() == 0  # an ended execution has no Kill


def test_the_editor_shows_each_problem_at_its_line_and_creates_the_flow(
        page: Any, ui: tuple[GroupsCluster, str]) -> None:
    cluster, _ = ui
    flow_id = f"edited_{uuid.uuid4().hex[:6]}"
    page.goto("/ui/main/flows/new")
    page.locator("#problems li.ok").wait_for()  # the template is valid
    source = (f"id: {flow_id}\nnamespace: {NS}\ntasks:\n  - id: say\n    type: io.kestra.plugin.core.log.Log\n"
              "    mesage: hi\n")
    page.locator("#source").fill(source)
    problem = page.locator("#problems li[data-line='6']")
    problem.wait_for()
    assert "did you mean 'message'" in problem.inner_text()
    assert page.locator(".gutter span.bad").all_inner_texts() == ["4", "6"]  # missing message; the typo
    page.get_by_role("button", name="Create").click()
    assert "Fix the problems" in page.locator(".error").inner_text()

    page.locator("#source").fill(source.replace("mesage", "message"))
    page.locator("#problems li.ok").wait_for()
    page.get_by_role("button", name="Create").click()
    page.wait_for_url(f"**/ui/main/flows/edit/{NS}/{flow_id}")
    from app import runtime

    assert runtime.store().get_flow(NS, flow_id)[0] == 1  # deployed: revision 1 in the cluster's store
    page.locator("form#execute").get_by_text("This flow has no inputs.").wait_for()


def test_the_triggers_page_lists_a_schedule_with_its_next_date(page: Any, ui: tuple[GroupsCluster, str]) -> None:
    page.goto("/ui/main/triggers")
    row = page.locator(f"tr[data-trigger='{NS}.greeter.nightly']")
    row.wait_for()
    assert "Schedule" in row.inner_text()
    wait_until(lambda: row.locator("td").nth(4).inner_text().strip() or None, 30,
               "the server to compute the schedule's next date")
