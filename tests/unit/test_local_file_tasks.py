"""The fs.local tasks work on the disk of the worker that runs them, inside the folders its operator allowed and
nowhere else (a symbolic link out of them is refused too), with Kestra's properties and outputs."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from app import runtime
from app.model.states import State

NS = "unit.local"


@pytest.fixture
def allowed(tmp_path: Path, monkeypatch: Any) -> Path:
    root = tmp_path / "allowed"
    root.mkdir()
    monkeypatch.setattr(runtime.settings(), "local_files_allowed_paths", [root])
    return root


def run(client: Any, tasks: str) -> Any:
    source = f"id: local_files\nnamespace: {NS}\ntasks:\n" + textwrap.indent(textwrap.dedent(tasks), "  ")
    return client.run(source, wait=True, timeout=30)


def outputs(ex: Any, task_id: str) -> dict[str, Any]:
    return next(r.outputs for r in ex.task_runs if r.task_id == task_id)


def test_list_copy_move_delete_on_the_workers_disk(client: Any, allowed: Path) -> None:
    (allowed / "in" / "sub").mkdir(parents=True)
    for name, text in (("a.csv", "1"), ("b.csv", "22"), ("c.txt", "333"), ("sub/d.csv", "4444")):
        (allowed / "in" / name).write_text(text)
    ex = run(client, f"""\
        - {{id: flat, type: io.kestra.plugin.fs.local.List, from: "{allowed}/in", regExp: ".*\\\\.csv"}}
        - {{id: deep, type: io.kestra.plugin.fs.local.List, from: "{allowed}/in", recursive: true, maxFiles: 3}}
        - {{id: copy, type: io.kestra.plugin.fs.local.Copy, from: "{allowed}/in/a.csv", to: "{allowed}/out/"}}
        - {{id: copy_again, type: io.kestra.plugin.fs.local.Copy, from: "{allowed}/in/b.csv",
            to: "{allowed}/out/a.csv", overwrite: true}}
        - {{id: move, type: io.kestra.plugin.fs.local.Move, from: "{allowed}/in/sub", to: "{allowed}/moved"}}
        - {{id: delete, type: io.kestra.plugin.fs.local.Delete, from: "{allowed}/in/c.txt"}}
        - {{id: delete_missing, type: io.kestra.plugin.fs.local.Delete, from: "{allowed}/in/c.txt"}}
        - {{id: delete_folder, type: io.kestra.plugin.fs.local.Delete, from: "{allowed}/moved", recursive: true}}
        """)
    assert ex.state == State.SUCCESS, [(r.task_id, r.state, r.error) for r in ex.task_runs]
    flat = outputs(ex, "flat")
    assert flat["count"] == 2 and [f["name"] for f in flat["files"]] == ["a.csv", "b.csv"]
    first = flat["files"][0]
    assert first["uri"] == (allowed / "in" / "a.csv").as_uri() and first["size"] == 1
    assert first["parent"] == str(allowed / "in") and first["isDirectory"] is False and first["modifiedDate"]
    assert outputs(ex, "deep")["count"] == 3, "maxFiles bounds the listing"
    assert any("more than maxFiles (3)" in row["message"] for row in client.logs(ex.id))
    assert outputs(ex, "copy")["uri"] == (allowed / "out" / "a.csv").as_uri()
    assert (allowed / "out" / "a.csv").read_text() == "22", "overwrite: true replaced the copy"
    assert outputs(ex, "move")["uri"] == (allowed / "moved").as_uri() and not (allowed / "in" / "sub").exists()
    assert outputs(ex, "delete") == {"deleted": True} and outputs(ex, "delete_missing") == {"deleted": False}
    assert outputs(ex, "delete_folder") == {"deleted": True} and not (allowed / "moved").exists()


def test_what_would_lose_data_or_leave_the_allowed_folders_fails_saying_why(client: Any, allowed: Path,
                                                                            tmp_path: Path) -> None:
    (allowed / "a.txt").write_text("a")
    (allowed / "b.txt").write_text("b")
    (allowed / "folder").mkdir()
    (allowed / "folder" / "x").write_text("x")
    (allowed / "escape").symlink_to(tmp_path)
    cases = {
        "overwrite": (f"{{id: t, type: io.kestra.plugin.fs.local.Copy, from: '{allowed}/a.txt', "
                      f"to: '{allowed}/b.txt'}}", "already exists (set overwrite: true"),
        "outside": ("{id: t, type: io.kestra.plugin.fs.local.List, from: /etc}", "is outside the folders"),
        "symlink": (f"{{id: t, type: io.kestra.plugin.fs.local.List, from: '{allowed}/escape'}}",
                    "is outside the folders"),
        "relative": ("{id: t, type: io.kestra.plugin.fs.local.List, from: data}", "must be an absolute path"),
        "full folder": (f"{{id: t, type: io.kestra.plugin.fs.local.Delete, from: '{allowed}/folder'}}",
                        "is a folder that is not empty"),
        "missing": (f"{{id: t, type: io.kestra.plugin.fs.local.Delete, from: '{allowed}/nope', "
                    "errorOnMissing: true}", "does not exist"),
        "into itself": (f"{{id: t, type: io.kestra.plugin.fs.local.Move, from: '{allowed}/folder', "
                        f"to: '{allowed}/folder/inner'}}", "cannot go into itself"),
        "bad regex": (f"{{id: t, type: io.kestra.plugin.fs.local.List, from: '{allowed}', regExp: '['}}",
                      "is not a valid regular expression"),
    }
    for name, (task, message) in cases.items():
        ex = run(client, f"- {task}\n")
        assert ex.state == State.FAILED, name
        assert message in ex.task_runs[0].error, (name, ex.task_runs[0].error)
    assert (allowed / "b.txt").read_text() == "b" and (allowed / "folder" / "x").exists()


def test_with_no_allowed_folder_the_tasks_are_refused(client: Any, monkeypatch: Any, tmp_path: Path) -> None:
    monkeypatch.setattr(runtime.settings(), "local_files_allowed_paths", [])
    ex = run(client, f"- {{id: t, type: io.kestra.plugin.fs.local.List, from: '{tmp_path}'}}\n")
    assert ex.state == State.FAILED
    assert "CELESTRA_LOCAL_FILES_ALLOWED_PATHS" in ex.task_runs[0].error
