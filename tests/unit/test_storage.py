"""Internal storage: URI helpers, LocalStorage on tmp_path and S3Storage on moto."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.store.storage import (
    LocalStorage,
    S3Storage,
    Storage,
    StorageError,
    StorageNotFoundError,
    execution_uri,
    is_storage_uri,
    namespace_file_uri,
    storage_from_url,
    uri_to_key,
)

BASE = "kestra:///io/kestra/tests/f/executions/abc"


# -- URI helpers --


def test_execution_uri_layout() -> None:
    uri = execution_uri("io.kestra.tests", "f", "abc", "inputs", "file", "a.txt")
    assert uri == "kestra:///io/kestra/tests/f/executions/abc/inputs/file/a.txt"
    assert execution_uri("ns", "f", "e") == "kestra:///ns/f/executions/e"
    # A part may itself be a sub path.
    assert execution_uri("ns", "f", "e", "outputs/t1/out.json") == "kestra:///ns/f/executions/e/outputs/t1/out.json"


@pytest.mark.parametrize(
    ("namespace", "flow_id", "execution_id", "parts"),
    [
        ("ns", "f", "e", ("..", "x")),
        ("ns", "f", "e", ("a/../../b",)),
        ("ns", "../f", "e", ()),
        ("ns", "f", "a/b", ()),
        ("ns", "", "e", ()),
        ("", "f", "e", ()),
        ("io..tests", "f", "e", ()),
    ],
)
def test_execution_uri_rejects_bad_parts(
    namespace: str, flow_id: str, execution_id: str, parts: tuple[str, ...]
) -> None:
    with pytest.raises(StorageError):
        execution_uri(namespace, flow_id, execution_id, *parts)


def test_namespace_file_uri() -> None:
    assert namespace_file_uri("company.team", "scripts/run.py") == "kestra:///company/team/_files/scripts/run.py"
    assert namespace_file_uri("company.team", "/run.py") == "kestra:///company/team/_files/run.py"
    with pytest.raises(StorageError):
        namespace_file_uri("company.team", "../secret")
    with pytest.raises(StorageError):
        namespace_file_uri("company.team", "")


def test_uri_to_key() -> None:
    assert uri_to_key("kestra:///a/b/c.txt") == "a/b/c.txt"
    assert uri_to_key("kestra:///", allow_root=True) == ""
    assert is_storage_uri("kestra:///a") and not is_storage_uri("s3://a") and not is_storage_uri(3)
    for bad in ("s3://bucket/key", "/a/b", "kestra:///", "kestra:///a/../../b"):
        with pytest.raises(StorageError):
            uri_to_key(bad)


# -- LocalStorage --


@pytest.fixture
def local(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "storage")


def test_local_round_trip(local: LocalStorage) -> None:
    uri = f"{BASE}/inputs/file/a.txt"
    assert not local.exists(uri)
    assert local.put(uri, b"hello") == uri
    assert local.exists(uri)
    assert local.get(uri) == b"hello"
    with local.open(uri) as fh:
        assert fh.read() == b"hello"
    assert (local.root / "io/kestra/tests/f/executions/abc/inputs/file/a.txt").read_bytes() == b"hello"


def test_local_put_stream_and_overwrite(local: LocalStorage) -> None:
    uri = f"{BASE}/out.bin"
    local.put(uri, io.BytesIO(b"x" * 100_000))
    assert local.get(uri) == b"x" * 100_000
    local.put(uri, b"short")
    assert local.get(uri) == b"short"
    # Only the target file remains: the temp file of the atomic write was renamed, not left behind.
    assert os.listdir(local.root / "io/kestra/tests/f/executions/abc") == ["out.bin"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_local_files_are_readable_by_other_users(local: LocalStorage) -> None:
    uri = local.put(f"{BASE}/perm.txt", b"x")
    mode = (local.root / uri_to_key(uri)).stat().st_mode & 0o777
    assert mode == 0o644


def test_local_failed_write_leaves_nothing(local: LocalStorage) -> None:
    class Broken(io.RawIOBase):
        def readinto(self, buffer: Any) -> int:
            raise OSError("disk on fire")

    uri = f"{BASE}/broken.bin"
    local.put(uri, b"old")
    with pytest.raises(OSError, match="disk on fire"):
        local.put(uri, Broken())  # type: ignore[arg-type]
    # The previous content survives and no temp file is left over.
    assert local.get(uri) == b"old"
    assert local.list(BASE) == [uri]
    assert len(os.listdir(local.root / "io/kestra/tests/f/executions/abc")) == 1


def test_local_missing(local: LocalStorage) -> None:
    uri = f"{BASE}/missing.txt"
    with pytest.raises(StorageNotFoundError):
        local.get(uri)
    with pytest.raises(StorageNotFoundError):
        local.open(uri)
    assert local.delete(uri) is False


def test_local_delete(local: LocalStorage) -> None:
    uri = local.put(f"{BASE}/d.txt", b"x")
    assert local.delete(uri) is True
    assert not local.exists(uri)
    assert local.delete(uri) is False


@pytest.mark.parametrize(
    "uri",
    ["kestra:///../escape.txt", "kestra:///a/../../escape.txt", "kestra:///a/..", "kestra:///a\\..\\..\\x"],
)
def test_local_rejects_dotdot(local: LocalStorage, uri: str) -> None:
    for call in (lambda: local.put(uri, b"x"), lambda: local.get(uri), lambda: local.exists(uri)):
        with pytest.raises(StorageError):
            call()
    assert not (local.root.parent / "escape.txt").exists()


def test_local_rejects_symlink_escape(local: LocalStorage, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    local.root.mkdir(parents=True)
    (local.root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(StorageError, match="escapes"):
        local.put("kestra:///link/x.txt", b"x")
    assert not (outside / "x.txt").exists()


def test_local_rejects_foreign_scheme(local: LocalStorage) -> None:
    with pytest.raises(StorageError, match="kestra://"):
        local.get("file:///etc/passwd")


def _fill(storage: Storage) -> list[str]:
    uris = [
        f"{BASE}/inputs/file/a.txt",
        f"{BASE}/outputs/t1/out.json",
        f"{BASE}/outputs/t2/out.json",
        "kestra:///io/kestra/tests/f/executions/abcd/other.txt",  # shares a string prefix, not a directory
    ]
    for uri in uris:
        storage.put(uri, uri.encode())
    return uris


def test_local_list(local: LocalStorage) -> None:
    uris = _fill(local)
    assert local.list(BASE) == sorted(uris[:3])
    assert local.list(BASE + "/") == sorted(uris[:3])
    assert local.list(f"{BASE}/outputs") == uris[1:3]
    assert local.list(f"{BASE}/outputs/t1/out.json") == [uris[1]]
    assert local.list(f"{BASE}/nothing") == []
    assert local.list("kestra:///") == sorted(uris)
    with pytest.raises(StorageError):
        local.list("kestra:///../")


def test_local_storages_share_a_root(tmp_path: Path) -> None:
    # Two instances (as in two worker processes) over one directory see each other's writes.
    a, b = LocalStorage(tmp_path), LocalStorage(tmp_path)
    uri = a.put(f"{BASE}/shared.txt", b"1")
    assert b.get(uri) == b"1"


# -- storage_from_url --


def test_storage_from_url_local(tmp_path: Path) -> None:
    default = storage_from_url(None, tmp_path / "default")
    assert isinstance(default, LocalStorage) and default.root == (tmp_path / "default").resolve()
    assert isinstance(storage_from_url("", tmp_path), LocalStorage)
    by_url = storage_from_url(f"file://{tmp_path}/s", Path("/unused"))
    assert isinstance(by_url, LocalStorage) and by_url.root == (tmp_path / "s").resolve()
    by_path = storage_from_url(str(tmp_path / "p"), Path("/unused"))
    assert isinstance(by_path, LocalStorage) and by_path.root == (tmp_path / "p").resolve()


def test_storage_from_url_rejects_unknown() -> None:
    with pytest.raises(StorageError, match="Unsupported"):
        storage_from_url("gs://bucket/x", Path("/tmp"))
    with pytest.raises(StorageError, match="remote"):
        storage_from_url("file://host/x", Path("/tmp"))


def test_storage_from_url_s3_without_boto3(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes `import boto3` raise ImportError, as if it were not installed.
    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(StorageError, match=r"pip install celestra\[aws\]"):
        storage_from_url("s3://bucket/prefix", Path("/tmp"))


# -- S3Storage --


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Storage]:
    pytest.importorskip("boto3")
    moto = pytest.importorskip("moto")
    # Fake credentials so boto3 never looks for real ones; moto intercepts every call anyway.
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("CELESTRA_S3_ENDPOINT_URL", raising=False)
    with moto.mock_aws():
        import boto3

        boto3.client("s3").create_bucket(Bucket="celestra-test")
        storage = storage_from_url("s3://celestra-test/base/prefix", Path("/unused"))
        assert isinstance(storage, S3Storage)
        yield storage


def test_s3_round_trip(s3: S3Storage) -> None:
    uri = f"{BASE}/inputs/file/a.txt"
    assert not s3.exists(uri)
    assert s3.put(uri, b"hello") == uri
    assert s3.exists(uri)
    assert s3.get(uri) == b"hello"
    with s3.open(uri) as fh:
        assert fh.read() == b"hello"
        fh.seek(0)  # open() returns a seekable copy, unlike botocore's stream
        assert fh.read(2) == b"he"
    # The bucket prefix is applied to the key.
    key = "base/prefix/io/kestra/tests/f/executions/abc/inputs/file/a.txt"
    obj = s3.client.get_object(Bucket="celestra-test", Key=key)
    assert obj["Body"].read() == b"hello"


def test_s3_put_stream(s3: S3Storage) -> None:
    uri = s3.put(f"{BASE}/big.bin", io.BytesIO(b"y" * 200_000))
    assert s3.get(uri) == b"y" * 200_000


def test_s3_missing_and_delete(s3: S3Storage) -> None:
    uri = f"{BASE}/missing.txt"
    with pytest.raises(StorageNotFoundError):
        s3.get(uri)
    with pytest.raises(StorageNotFoundError):
        s3.open(uri)
    assert s3.delete(uri) is False
    s3.put(uri, b"x")
    assert s3.delete(uri) is True
    assert not s3.exists(uri)


def test_s3_list(s3: S3Storage) -> None:
    uris = _fill(s3)
    assert s3.list(BASE) == sorted(uris[:3])
    assert s3.list(f"{BASE}/outputs") == uris[1:3]
    assert s3.list(f"{BASE}/outputs/t1/out.json") == [uris[1]]
    assert s3.list(f"{BASE}/nothing") == []
    assert s3.list("kestra:///") == sorted(uris)


def test_s3_rejects_dotdot(s3: S3Storage) -> None:
    with pytest.raises(StorageError):
        s3.put("kestra:///a/../../x", b"x")


def test_s3_backend_error_is_storage_error(s3: S3Storage) -> None:
    broken = S3Storage("no-such-bucket", client=s3.client)
    with pytest.raises(StorageError, match="S3 error"):
        broken.put(f"{BASE}/x", b"x")


def test_s3_endpoint_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("boto3")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("CELESTRA_S3_ENDPOINT_URL", "http://127.0.0.1:9000")
    storage = S3Storage("bucket")
    assert storage.client.meta.endpoint_url == "http://127.0.0.1:9000"
