"""Internal storage: where execution files (inputs, outputs, logs) live, addressed by ``kestra://`` URIs.

Kestra names every stored file by a URI of the form
``kestra:///<namespace with / instead of .>/<flowId>/executions/<executionId>/...``. The URI path (without
the leading slash) is used as the object key, so the same URI maps to ``<root>/<key>`` on a local disk and
to ``s3://<bucket>/<prefix>/<key>`` on S3; flows never see which backend is behind it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, cast
from urllib.parse import unquote, urlsplit

from app.model.storage_uri import SCHEME
from app.model.storage_uri import is_storage_uri as is_storage_uri  # part of this module's API

if TYPE_CHECKING:
    from collections.abc import Iterator

# Temp files of in-flight atomic writes carry this prefix so list() never reports half-written data.
_TMP_PREFIX = ".celestra-tmp-"
# S3 downloads are buffered in memory up to this size, then spill to a temp file (see S3Storage.open).
_SPOOL_MAX = 8 * 1024 * 1024


class StorageError(Exception):
    """Any failure of the internal storage: bad URI, missing object, backend error."""


class StorageNotFoundError(StorageError):
    """The URI is well-formed but nothing is stored under it."""


def _clean_segments(path: str, what: str) -> list[str]:
    """Split a slash path into segments, refusing anything that could climb out of its parent."""
    segments: list[str] = []
    for seg in path.replace("\\", "/").split("/"):
        if seg in ("", "."):
            continue
        if seg == ".." or "\x00" in seg:
            raise StorageError(f"Invalid {what} {path!r}: '..' and NUL are not allowed")
        segments.append(seg)
    return segments


def uri_to_key(uri: str, *, allow_root: bool = False) -> str:
    """Return the object key of a ``kestra://`` URI (its path without leading slash).

    ``allow_root`` lets list() take ``kestra:///`` itself; a file operation always needs a non-empty key.
    """
    if not isinstance(uri, str) or not uri.startswith(SCHEME):
        raise StorageError(f"Invalid storage URI {uri!r}: must start with {SCHEME!r}")
    key = "/".join(_clean_segments(uri[len(SCHEME) :], "storage URI"))
    if not key and not allow_root:
        raise StorageError(f"Invalid storage URI {uri!r}: empty path")
    return key


def key_to_uri(key: str) -> str:
    return f"{SCHEME}/{key}"


def _namespace_segments(namespace: str) -> list[str]:
    if not namespace or any(not part for part in namespace.split(".")):
        raise StorageError(f"Invalid namespace {namespace!r}")
    return _clean_segments(namespace.replace(".", "/"), "namespace")


def _single_segment(value: str, what: str) -> str:
    # flow and execution ids become exactly one directory level; a '/' would silently shift the layout.
    if not value or "/" in value or "\\" in value or value in (".", ".."):
        raise StorageError(f"Invalid {what} {value!r}")
    return value


def execution_uri(namespace: str, flow_id: str, execution_id: str, *parts: str) -> str:
    """URI of a file belonging to one execution, e.g. its inputs or a task's outputs.

    >>> execution_uri("io.kestra.tests", "f", "abc", "inputs", "file", "a.txt")
    'kestra:///io/kestra/tests/f/executions/abc/inputs/file/a.txt'
    """
    segments = [
        *_namespace_segments(namespace),
        _single_segment(flow_id, "flow id"),
        "executions",
        _single_segment(execution_id, "execution id"),
    ]
    for part in parts:
        segments.extend(_clean_segments(part, "path part"))
    return key_to_uri("/".join(segments))


def namespace_file_uri(namespace: str, path: str) -> str:
    """URI of a namespace file (the ``_files`` area shared by all flows of a namespace)."""
    rel = _clean_segments(path, "namespace file path")
    if not rel:
        raise StorageError(f"Invalid namespace file path {path!r}")
    return key_to_uri("/".join([*_namespace_segments(namespace), "_files", *rel]))


def namespace_files_prefix(namespace: str) -> str:
    """URI prefix under which every namespace file of `namespace` lives."""
    return key_to_uri("/".join([*_namespace_segments(namespace), "_files"]))


def owned_by(uri: str, namespace: str, *, area: bool = False) -> str | None:
    """`uri`, normalized, when it names a file of `namespace`: an execution file of one of its flows
    (`<ns>/<flowId>/executions/<id>/...`) or one of its namespace files (`<ns>/_files/...`); with `area`, any
    prefix inside the namespace (a listing). None otherwise, also for a URI that is not one."""
    try:
        segments, own = uri_to_key(str(uri).strip(), allow_root=area).split("/"), _namespace_segments(namespace)
    except StorageError:
        return None
    rest = segments[len(own):]
    ours = segments[:len(own)] == own and (area or (len(rest) >= 2 and rest[0] == "_files")  # no flow id has '_'
                                           or (len(rest) >= 4 and rest[1] == "executions"))
    return key_to_uri("/".join(segments)) if ours else None


def _key_matches(key: str, prefix: str) -> bool:
    # Prefixes are directory-like: "executions/ab" must not match "executions/abc/...".
    return not prefix or key == prefix or key.startswith(prefix + "/")


class Storage(ABC):
    """Backend-agnostic file store keyed by ``kestra://`` URIs."""

    @abstractmethod
    def put(self, uri: str, data: bytes | BinaryIO) -> str:
        """Store ``data`` (bytes or a readable binary stream) under ``uri``, replacing it; return ``uri``."""

    @abstractmethod
    def get(self, uri: str) -> bytes:
        """Whole content; raises StorageNotFoundError if absent."""

    @abstractmethod
    def open(self, uri: str) -> BinaryIO:
        """Readable binary stream; the caller closes it. Raises StorageNotFoundError if absent."""

    @abstractmethod
    def exists(self, uri: str) -> bool: ...

    @abstractmethod
    def delete(self, uri: str) -> bool:
        """Remove one object; True if it existed."""

    @abstractmethod
    def list(self, prefix_uri: str) -> list[str]:
        """Sorted URIs of every object equal to or below ``prefix_uri`` (recursive, directory semantics)."""


class LocalStorage(Storage):
    """Files under a root directory, safe to share between worker processes on one host or volume."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().resolve()

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    def _path(self, uri: str, *, allow_root: bool = False) -> Path:
        path = self.root / uri_to_key(uri, allow_root=allow_root)
        # Segment checks stop '..' but a symlink inside root could still point elsewhere.
        resolved = path.resolve()
        if resolved != self.root and self.root not in resolved.parents:
            raise StorageError(f"Storage URI {uri!r} escapes the storage root")
        return path

    def put(self, uri: str, data: bytes | BinaryIO) -> str:
        path = self._path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Readers in other processes must see either the old or the new file, never a partial one:
        # write a temp file in the same directory (same filesystem) and rename it over the target.
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=_TMP_PREFIX)
        try:
            with os.fdopen(fd, "wb") as tmp:
                if isinstance(data, bytes | bytearray | memoryview):
                    tmp.write(data)
                else:
                    shutil.copyfileobj(data, tmp)
                tmp.flush()
                os.fsync(tmp.fileno())
            # mkstemp creates 0600; workers running as another user on a shared volume need to read it.
            os.chmod(tmp_name, 0o644)
            os.replace(tmp_name, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
        return uri

    def get(self, uri: str) -> bytes:
        with self.open(uri) as fh:
            return fh.read()

    def open(self, uri: str) -> BinaryIO:
        path = self._path(uri)
        try:
            return cast(BinaryIO, path.open("rb"))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise StorageNotFoundError(f"File not found in storage: {uri}") from exc

    def exists(self, uri: str) -> bool:
        return self._path(uri).is_file()

    def delete(self, uri: str) -> bool:
        try:
            self._path(uri).unlink()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return False
        return True

    def list(self, prefix_uri: str) -> list[str]:
        base = self._path(prefix_uri, allow_root=True)
        if base.is_file():
            return [key_to_uri(base.relative_to(self.root).as_posix())]
        if not base.is_dir():
            return []
        return sorted(
            key_to_uri(p.relative_to(self.root).as_posix())
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(_TMP_PREFIX)
        )


def _import_boto3() -> Any:
    try:
        import boto3
    except ImportError as exc:  # boto3 is an optional extra; say how to get it instead of a bare ImportError
        raise StorageError("S3 storage needs boto3: pip install celestra[aws]") from exc
    return boto3


class S3Storage(Storage):
    """Objects in an S3 bucket (or S3-compatible store) under an optional key prefix."""

    def __init__(self, bucket: str, prefix: str = "", *, client: Any = None) -> None:
        if not bucket:
            raise StorageError("S3 storage needs a bucket name")
        self.bucket = bucket
        self.prefix = "/".join(_clean_segments(prefix, "S3 prefix"))
        if client is None:
            boto3 = _import_boto3()
            # MinIO/LocalStack and friends are reached by overriding the endpoint.
            endpoint = os.environ.get("CELESTRA_S3_ENDPOINT_URL") or None
            client = boto3.client("s3", endpoint_url=endpoint)
        self.client = client

    def __repr__(self) -> str:
        return f"S3Storage(bucket={self.bucket!r}, prefix={self.prefix!r})"

    def _object_key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix and key else (self.prefix or key)

    def _key(self, uri: str) -> str:
        return self._object_key(uri_to_key(uri))

    @staticmethod
    def _is_not_found(exc: Exception) -> bool:
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
        return code in ("404", "NoSuchKey", "NotFound")

    @contextlib.contextmanager
    def _errors(self, uri: str) -> Iterator[None]:
        # Translate botocore errors so callers only ever handle StorageError, whatever the backend.
        try:
            yield
        except StorageError:
            raise
        except Exception as exc:
            if self._is_not_found(exc):
                raise StorageNotFoundError(f"File not found in storage: {uri}") from exc
            raise StorageError(f"S3 error on {uri}: {exc}") from exc

    def put(self, uri: str, data: bytes | BinaryIO) -> str:
        key = self._key(uri)
        with self._errors(uri):
            if isinstance(data, bytes | bytearray | memoryview):
                self.client.put_object(Bucket=self.bucket, Key=key, Body=bytes(data))
            else:
                # upload_fileobj streams and switches to multipart for big files instead of buffering them.
                self.client.upload_fileobj(data, self.bucket, key)
        return uri

    def get(self, uri: str) -> bytes:
        with self._errors(uri):
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(uri))["Body"]
            try:
                return cast(bytes, body.read())
            finally:
                body.close()

    def open(self, uri: str) -> BinaryIO:
        # botocore's StreamingBody is not seekable and holds an HTTP connection; a spooled copy is a real,
        # seekable file object that stays in memory for small files. The caller owns it, hence no `with`.
        spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MAX)  # noqa: SIM115
        try:
            with self._errors(uri):
                body = self.client.get_object(Bucket=self.bucket, Key=self._key(uri))["Body"]
                try:
                    shutil.copyfileobj(body, spool)
                finally:
                    body.close()
        except BaseException:
            spool.close()
            raise
        spool.seek(0)
        return cast(BinaryIO, spool)

    def exists(self, uri: str) -> bool:
        key = self._key(uri)
        try:
            with self._errors(uri):
                self.client.head_object(Bucket=self.bucket, Key=key)
        except StorageNotFoundError:
            return False
        return True

    def delete(self, uri: str) -> bool:
        # S3 deletes are idempotent and never say whether the key existed, so ask first.
        if not self.exists(uri):
            return False
        with self._errors(uri):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(uri))
        return True

    def list(self, prefix_uri: str) -> list[str]:
        prefix = uri_to_key(prefix_uri, allow_root=True)
        full_prefix = self._object_key(prefix)
        strip = len(self.prefix) + 1 if self.prefix else 0
        uris: list[str] = []
        with self._errors(prefix_uri):
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full_prefix):
                for obj in page.get("Contents", []):
                    key = str(obj["Key"])[strip:]
                    if key and _key_matches(key, prefix):
                        uris.append(key_to_uri(key))
        return sorted(uris)


def storage_from_url(url: str | None, default_root: Path) -> Storage:
    """Build the storage named by a URL (settings / CLI).

    ``None`` or empty -> LocalStorage(default_root); ``file:///abs/path`` or a plain path -> LocalStorage;
    ``s3://bucket/prefix`` -> S3Storage.
    """
    if not url:
        return LocalStorage(default_root)
    if "://" not in url:
        return LocalStorage(Path(url))
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise StorageError(f"Unsupported file URL {url!r}: remote hosts are not supported")
        if not parts.path:
            raise StorageError(f"Invalid storage URL {url!r}: missing path")
        return LocalStorage(Path(unquote(parts.path)))
    if scheme == "s3":
        return S3Storage(parts.netloc, unquote(parts.path))
    raise StorageError(f"Unsupported storage URL {url!r}: use a path, file:///path or s3://bucket/prefix")


class NamespaceStorage(Storage):
    """The internal storage as a task sees it: the execution files and namespace files of its own namespace, and
    nothing else (a task of one team cannot read, overwrite or delete another's files)."""

    def __init__(self, inner: Storage, namespace: str) -> None:
        self.inner, self.namespace = inner, namespace

    def _own(self, uri: str, area: bool = False) -> str:
        owned = owned_by(uri, self.namespace, area=area)
        if owned is None:
            raise StorageError(f"'{uri}' is not a file of the namespace '{self.namespace}': a task may only use the "
                               "execution files and namespace files of its own namespace")
        return owned

    def put(self, uri: str, data: bytes | BinaryIO) -> str:
        return self.inner.put(self._own(uri), data)

    def get(self, uri: str) -> bytes:
        return self.inner.get(self._own(uri))

    def open(self, uri: str) -> BinaryIO:
        return self.inner.open(self._own(uri))

    def exists(self, uri: str) -> bool:
        return self.inner.exists(self._own(uri))

    def delete(self, uri: str) -> bool:
        return self.inner.delete(self._own(uri))

    def list(self, prefix_uri: str) -> list[str]:
        return self.inner.list(self._own(prefix_uri, area=True))
