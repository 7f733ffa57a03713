"""Kestra's core storage tasks (workers/plugins/storage.py), run as real flows through the public Client: their
outputs, the files they leave (read back with Client.download), and what they refuse."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from app.errors import FlowValidationError
from app.model.states import State
from app.store.storage import StorageNotFoundError, namespace_file_uri

NS = "storage.tests"


def flow(text: str, **values: str) -> str:
    text = textwrap.dedent(text).strip() + "\n"
    for name, value in values.items():
        text = text.replace(f"<{name}>", value)
    return text


def run_ok(client: Any, text: str) -> dict[str, dict[str, Any]]:
    ex = client.run(text, wait=True, timeout=60)
    assert ex.state == State.SUCCESS, ex.to_json()
    return {run.task_id: run.outputs for run in ex.task_runs}


def failure(client: Any, text: str, task_id: str) -> str:
    ex = client.run(text, wait=True, timeout=60)
    assert ex.state == State.FAILED, ex.to_json()
    run = next(r for r in ex.task_runs if r.task_id == task_id)
    assert run.state == State.FAILED and run.error is not None
    return str(run.error)


def write_then(task: str, content: str = "1\\n2\\n3\\n", extension: str = ".txt", namespace: str = NS) -> str:
    """A flow writing `content` (a YAML double-quoted string) to a file, then running `task` (indented YAML)."""
    return flow("""
        id: storage_flow
        namespace: <ns>
        tasks:
          - id: write
            type: io.kestra.plugin.core.storage.Write
            content: "<content>"
            extension: "<ext>"
        """, ns=namespace, content=content, ext=extension) + textwrap.indent(textwrap.dedent(task).strip(), "  ") + "\n"


# -- Write and Size --------------------------------------------------------------------------------------------------
def test_write_stores_the_content_and_size_counts_its_bytes(client: Any) -> None:
    outputs = run_ok(client, write_then("""
        - id: size
          type: io.kestra.plugin.core.storage.Size
          uri: "{{ outputs.write.uri }}"
        - id: plain
          type: io.kestra.core.tasks.storages.Size
          uri: "{{ outputs.write.uri }}"
        """, content="héllo {{ flow.id }}"))
    uri = outputs["write"]["uri"]
    assert uri.startswith("kestra:///storage/tests/storage_flow/executions/") and uri.endswith(".txt")
    assert client.download(uri) == "héllo storage_flow".encode()
    assert outputs["size"]["size"] == len("héllo storage_flow".encode()) == outputs["plain"]["size"]


def test_write_without_an_extension_makes_a_tmp_file(client: Any) -> None:
    outputs = run_ok(client, flow("""
        id: write_tmp
        namespace: <ns>
        tasks:
          - id: write
            type: io.kestra.plugin.core.storage.Write
            content: 42
        """, ns=NS))
    assert outputs["write"]["uri"].endswith(".tmp") and client.download(outputs["write"]["uri"]) == b"42"


# -- Delete ----------------------------------------------------------------------------------------------------------
def test_delete_removes_the_file_and_says_whether_it_existed(client: Any) -> None:
    outputs = run_ok(client, write_then("""
        - id: delete
          type: io.kestra.plugin.core.storage.Delete
          uri: "{{ outputs.write.uri }}"
        - id: again
          type: io.kestra.core.tasks.storages.Delete
          uri: "{{ outputs.write.uri }}"
        """))
    uri = outputs["write"]["uri"]
    assert outputs["delete"] == {"uri": uri, "deleted": True}
    assert outputs["again"] == {"uri": uri, "deleted": False}
    with pytest.raises(StorageNotFoundError):
        client.download(uri)


def test_delete_of_a_missing_file_fails_with_error_on_missing(client: Any) -> None:
    message = failure(client, write_then("""
        - id: delete
          type: io.kestra.plugin.core.storage.Delete
          uri: "{{ outputs.write.uri }}.gone"
          errorOnMissing: "{{ true }}"
        """), "delete")
    assert "Unable to find file" in message and ".txt.gone" in message


# -- Concat ----------------------------------------------------------------------------------------------------------
def test_concat_a_list_with_a_separator_after_each_file(client: Any) -> None:
    outputs = run_ok(client, write_then("""
        - id: second
          type: io.kestra.plugin.core.storage.Write
          content: "b"
        - id: concat
          type: io.kestra.plugin.core.storage.Concat
          files:
            - "{{ outputs.write.uri }}"
            - "{{ outputs.second.uri }}"
          separator: "\\n"
          extension: .csv
        """, content="a"))
    uri = outputs["concat"]["uri"]
    assert uri.endswith(".csv") and client.download(uri) == b"a\nb\n"


def test_concat_a_json_string_of_uris_without_separator(client: Any) -> None:
    outputs = run_ok(client, write_then("""
        - id: split
          type: io.kestra.plugin.core.storage.Split
          from: "{{ outputs.write.uri }}"
          rows: 1
        - id: concat
          type: io.kestra.core.tasks.storages.Concat
          files: "{{ outputs.split.uris }}"
        """, content="x\\ny\\nz"))
    uri = outputs["concat"]["uri"]
    assert uri.endswith(".tmp") and client.download(uri) == b"x\ny\nz\n"


# -- Split -----------------------------------------------------------------------------------------------------------
def split_task(*properties: str) -> str:
    return "- id: split\n  type: io.kestra.plugin.core.storage.Split\n  from: '{{ outputs.write.uri }}'\n" + "".join(
        f"  {line}\n" for line in properties)


def split(client: Any, mode: str, content: str, separator: str | None = None) -> list[bytes]:
    sep = [f'separator: "{separator}"'] if separator is not None else []
    outputs = run_ok(client, write_then(split_task(mode, *sep), content=content))
    uris = outputs["split"]["uris"]
    assert all(uri.endswith(".txt") and "/tasks/split/" in uri for uri in uris)
    return [client.download(uri) for uri in uris]


def test_split_by_rows(client: Any) -> None:
    assert split(client, 'rows: "{{ 1 + 1 }}"', "1\\n2\\n3\\n4\\n5") == [b"1\n2\n", b"3\n4\n", b"5\n"]


def test_split_in_partitions_round_robin_dropping_the_empty_ones(client: Any) -> None:
    assert split(client, "partitions: 2", "1\\n2\\n3\\n4\\n5\\n") == [b"1\n3\n5\n", b"2\n4\n"]
    assert split(client, "partitions: 4", "1\\n2") == [b"1\n", b"2\n"]


def test_split_by_bytes_starts_a_file_once_the_last_reached_the_size(client: Any) -> None:
    lines = [f"{i:>20}" for i in range(100)]  # 21 bytes each with its \n: 49 lines reach 1KB
    chunks = split(client, "bytes: 1KB", "\\n".join(lines))
    assert [chunk.count(b"\n") for chunk in chunks] == [49, 49, 2]
    assert b"".join(chunks) == ("\n".join(lines) + "\n").encode()
    assert split(client, "bytes: 5", "aaaa\\nbb\\ncc\\nd") == [b"aaaa\n", b"bb\ncc\n", b"d\n"]


def test_split_by_regex_groups_lines_by_what_the_first_group_captures(client: Any) -> None:
    content = "[a] one\\n[b] two\\nnoise\\n[a] three"
    assert split(client, 'regexPattern: "\\\\[(\\\\w+)\\\\]"', content, separator="\\r\\n") == [
        b"[a] one\r\n[a] three\r\n", b"[b] two\r\n"]


def test_split_reads_crlf_lines_and_writes_them_with_the_separator(client: Any) -> None:
    assert split(client, "rows: 2", "a\\r\\nb\\r\\nc", separator=";") == [b"a;b;", b"c;"]


@pytest.mark.parametrize(("modes", "message"), [
    (["rows: 2", "partitions: 2"], "exactly one of bytes, partitions, rows or regexPattern; got partitions and rows"),
    ([], "exactly one of bytes, partitions, rows or regexPattern; got none of them"),
    (["bytes: 10XB"], "bytes must be a positive size"),
    (["rows: 0"], "rows must be a whole number of at least 1"),
])
def test_split_without_exactly_one_valid_mode_is_refused_at_load(client: Any, modes: list[str], message: str) -> None:
    with pytest.raises(FlowValidationError, match=message):
        client.validate(write_then(split_task(*modes)))


# -- Reverse ---------------------------------------------------------------------------------------------------------
def test_reverse_puts_the_last_line_first_and_keeps_the_extension(client: Any) -> None:
    outputs = run_ok(client, write_then("""
        - id: reverse
          type: io.kestra.plugin.core.storage.Reverse
          from: "{{ outputs.write.uri }}"
        - id: joined
          type: io.kestra.core.tasks.storages.Reverse
          from: "{{ outputs.write.uri }}"
          separator: ","
        """, content="1\\n2\\n\\n3\\n", extension=".csv"))
    assert outputs["reverse"]["uri"].endswith(".csv")
    assert client.download(outputs["reverse"]["uri"]) == b"3\n\n2\n1\n"
    assert client.download(outputs["joined"]["uri"]) == b"3,,2,1,"


def test_reverse_walks_back_through_a_file_larger_than_its_block(client: Any, tmp_path: Path) -> None:
    lines = [f"line {i} " + "x" * (i % 50) for i in range(6000)]  # about 200KB: several 64KB blocks
    (tmp_path / "big.log").write_text("\r\n".join(lines))
    client.upload_namespace_files(NS, tmp_path)
    outputs = run_ok(client, flow("""
        id: reverse_big
        namespace: <ns>
        tasks:
          - id: reverse
            type: io.kestra.plugin.core.storage.Reverse
            from: "<uri>"
        """, ns=NS, uri=namespace_file_uri(NS, "big.log")))
    assert client.download(outputs["reverse"]["uri"]) == ("\n".join(reversed(lines)) + "\n").encode()


def test_reverse_decodes_and_encodes_with_the_charset(client: Any, tmp_path: Path) -> None:
    (tmp_path / "latin.txt").write_bytes("é\nà\n".encode("latin-1"))
    client.upload_namespace_files(NS, tmp_path)
    outputs = run_ok(client, flow("""
        id: reverse_latin
        namespace: <ns>
        tasks:
          - id: reverse
            type: io.kestra.plugin.core.storage.Reverse
            from: "<uri>"
            charset: ISO-8859-1
        """, ns=NS, uri=namespace_file_uri(NS, "latin.txt")))
    assert client.download(outputs["reverse"]["uri"]) == "à\né\n".encode("latin-1")


# -- PurgeCurrentExecutionFiles --------------------------------------------------------------------------------------
def test_purge_deletes_the_files_of_this_execution_only(client: Any) -> None:
    kept = run_ok(client, write_then("", content="kept"))["write"]["uri"]
    outputs = run_ok(client, write_then("""
        - id: second
          type: io.kestra.plugin.core.storage.Write
          content: "b"
        - id: purge
          type: io.kestra.plugin.core.storage.PurgeCurrentExecutionFiles
        """))
    purged = {outputs["write"]["uri"], outputs["second"]["uri"]}
    assert set(outputs["purge"]["uris"]) == purged
    for uri in purged:
        with pytest.raises(StorageNotFoundError):
            client.download(uri)
    assert client.download(kept) == b"kept"  # another execution of the same flow


def test_purge_of_child_executions_is_refused_not_ignored(client: Any) -> None:
    with pytest.raises(FlowValidationError, match="includeChildExecutions is not supported yet"):
        client.validate(write_then("""
            - id: purge
              type: io.kestra.plugin.core.storage.PurgeCurrentExecutionFiles
              includeChildExecutions: true
            """))


# -- the namespace boundary ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def foreign_uri(client: Any) -> str:
    """A file of another execution in the child namespace storage.tests.child."""
    return str(run_ok(client, write_then("", content="secret", namespace=NS + ".child"))["write"]["uri"])


@pytest.mark.parametrize("task", [
    "type: io.kestra.plugin.core.storage.Size\n  uri: <uri>",
    "type: io.kestra.plugin.core.storage.Delete\n  uri: <uri>",
    "type: io.kestra.plugin.core.storage.Reverse\n  from: <uri>",
    "type: io.kestra.plugin.core.storage.Split\n  from: <uri>\n  rows: 1",
    "type: io.kestra.plugin.core.storage.Concat\n  files: ['{{ outputs.write.uri }}', '<uri>']",
])
def test_a_file_of_another_namespace_is_refused_naming_it(client: Any, foreign_uri: str, task: str) -> None:
    message = failure(client, write_then("- id: other\n  " + task.replace("<uri>", foreign_uri)), "other")
    assert foreign_uri in message and "is not a file of the namespace 'storage.tests'" in message
    assert client.download(foreign_uri) == b"secret"  # neither read nor deleted


def test_namespace_files_of_another_namespace_and_odd_uris_are_refused(client: Any, tmp_path: Path) -> None:
    (tmp_path / "shared.txt").write_text("theirs")
    client.upload_namespace_files("elsewhere", tmp_path)
    theirs = namespace_file_uri("elsewhere", "shared.txt")
    for uri, expected in [(theirs, "is not a file of the namespace"),
                          ("kestra:///storage/tests/../../elsewhere/_files/shared.txt", "Invalid storage URI"),
                          ("file:///etc/passwd", "Invalid storage URI"),
                          ("kestra:///storage/tests/f/other/x/y.txt", "is not a file of the namespace")]:
        message = failure(client, write_then(f"- id: other\n  type: Size\n  uri: '{uri}'"), "other")
        assert expected in message and uri in message
    assert client.download(theirs) == b"theirs"
