"""namespace.UploadFiles, DownloadFiles and DeleteFiles, run as flows through the Client: Kestra's patterns,
destinations and conflicts, within the task's own namespace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app import runtime
from app.errors import FlowValidationError
from app.model.states import State
from app.store.storage import namespace_file_uri
from workers.plugins.namespace_files import matcher

NS = "ns.files"


def flow(flow_id: str, tasks: str, namespace: str = NS) -> str:
    return f"id: {flow_id}\nnamespace: {namespace}\ntasks:\n{tasks}"


def seed(namespace: str, files: dict[str, str]) -> None:
    for path, text in files.items():
        runtime.storage().put(namespace_file_uri(namespace, path), text.encode())


def names(namespace: str) -> list[str]:
    prefix = namespace_file_uri(namespace, "x").removesuffix("/x")
    return [uri.removeprefix(prefix) for uri in runtime.storage().list(prefix)]


def test_patterns_match_as_kestras_globs_and_regexes() -> None:
    assert matcher(["**input.txt"])("/input.txt") and matcher(["**input.txt"])("/a/b/input.txt")
    assert matcher(["*.sql"])("/q.sql") and matcher(["*.sql"])("/deep/q.sql")  # no leading / or **: any depth
    assert not matcher(["/*.sql"])("/deep/q.sql") and matcher(["/*.sql"])("/q.sql")
    assert matcher(["glob:/dbt/**"])("/dbt/models/a.sql") and not matcher(["glob:/dbt/**"])("/other/a.sql")
    assert matcher(["/{a,b}.txt"])("/b.txt") and not matcher(["/{a,b}.txt"])("/c.txt")
    assert matcher(["regex:/logs/\\d+\\.log"])("/logs/12.log") and not matcher(["regex:/logs/\\d+"])("/logs/x")


def test_download_then_delete_the_files_a_pattern_matches(client: Any) -> None:
    seed(NS, {"input.txt": "one", "sub/input.txt": "two", "sub/other.csv": "three"})
    ex = client.run(flow("download", """\
  - id: download
    type: io.kestra.plugin.core.namespace.DownloadFiles
    namespace: ns.files
    files:
      - "**input.txt"
    destination: copies
  - id: read
    type: io.kestra.plugin.core.debug.Return
    format: "{{ read(outputs.download.files['/sub/input.txt']) }}"
  - id: delete
    type: io.kestra.plugin.core.namespace.DeleteFiles
    namespace: "{{ flow.namespace }}"
    files: "/sub/**"
"""), timeout=60)
    assert ex.state == State.SUCCESS, ex.to_json()
    files = next(r.outputs["files"] for r in ex.task_runs if r.task_id == "download")
    assert sorted(files) == ["/input.txt", "/sub/input.txt"]
    assert f"/executions/{ex.id}/tasks/download/" in files["/input.txt"]
    assert files["/sub/input.txt"].endswith("/copies/sub/input.txt")  # under `destination`, at its path
    assert next(r.outputs["value"] for r in ex.task_runs if r.task_id == "read") == "two"
    assert names(NS) == ["/input.txt"]


def test_upload_from_a_working_directory_and_from_a_files_map_with_conflicts(client: Any) -> None:
    seed("ns.upload", {"kept.txt": "old"})
    ex = client.run(flow("upload", """\
  - id: wd
    type: io.kestra.plugin.core.flow.WorkingDirectory
    inputFiles:
      dbt/models/a.sql: select 1
      notes.md: hi
    tasks:
      - id: upload
        type: io.kestra.plugin.core.namespace.UploadFiles
        files: ["glob:**/dbt/**"]
        destination: /projects
  - id: write
    type: io.kestra.plugin.core.storage.Write
    content: new
  - id: skip
    type: io.kestra.plugin.core.namespace.UploadFiles
    filesMap:
      kept.txt: "{{ outputs.write.uri }}"
      fresh.txt: "{{ outputs.write.uri }}"
    conflict: SKIP
  - id: refuse
    type: io.kestra.plugin.core.namespace.UploadFiles
    filesMap: '{"kept.txt": "{{ outputs.write.uri }}"}'
    conflict: ERROR
""", namespace="ns.upload"), timeout=60)
    assert ex.state == State.FAILED
    assert names("ns.upload") == ["/fresh.txt", "/kept.txt", "/projects/dbt/models/a.sql"]
    storage = runtime.storage()
    assert storage.get(namespace_file_uri("ns.upload", "kept.txt")) == b"old"  # SKIP left it
    assert storage.get(namespace_file_uri("ns.upload", "projects/dbt/models/a.sql")) == b"select 1"
    refused = next(r for r in ex.task_runs if r.task_id == "refuse")
    assert "already exists" in refused.error and "conflict: ERROR" in refused.error
    overwrite = client.run(flow("overwrite", """\
  - id: write
    type: io.kestra.plugin.core.storage.Write
    content: newer
  - id: upload
    type: io.kestra.plugin.core.namespace.UploadFiles
    filesMap:
      kept.txt: "{{ outputs.write.uri }}"
""", namespace="ns.upload"), timeout=60)
    assert overwrite.state == State.SUCCESS
    assert storage.get(namespace_file_uri("ns.upload", "kept.txt")) == b"newer"


def test_other_namespaces_and_misplaced_options_are_refused(client: Any, tmp_path: Path) -> None:
    seed("ns.secret", {"key.pem": "x"})
    ex = client.run(flow("steal", """\
  - id: download
    type: io.kestra.plugin.core.namespace.DownloadFiles
    namespace: ns.secret
    files: "**"
"""), timeout=60)
    assert ex.state == State.FAILED and "uses only those of its own namespace 'ns.files'" in ex.task_runs[0].error
    outside = client.run(flow("outside", """\
  - id: upload
    type: io.kestra.plugin.core.namespace.UploadFiles
    files: ["**"]
"""), timeout=60)
    assert outside.state == State.FAILED and "WorkingDirectory" in outside.task_runs[0].error
    with pytest.raises(FlowValidationError, match="deleteParentFolder is not supported yet"):
        client.validate(flow("folders", "  - id: d\n    type: io.kestra.plugin.core.namespace.DeleteFiles\n"
                                        "    namespace: ns.files\n    files: x\n    deleteParentFolder: true\n"))
