"""A WorkingDirectory's `cache` (Kestra's): the files matching `patterns` when its children are done are kept in
internal storage, and put back into the folder of the next execution of the same task (same flow, same loop value)
before anything else is staged, until `ttl` has passed since they were kept.

The cache is one zip archive per task and loop value, under `<namespace>/_cache/` (no flow id starts with `_`, and
no task reads there: `read()` and the storage tasks see execution and namespace files only). The archive's comment
holds when it was made, so the ttl needs no metadata from the storage backend.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from datetime import UTC, datetime
from pathlib import Path

from app import runtime
from app.model.flowables import Cache
from app.store.storage import StorageError, key_to_uri


def cache_uri(namespace: str, flow_id: str, task_id: str, value: str | None) -> str:
    loop = hashlib.sha256((value or "").encode()).hexdigest()[:16]
    return key_to_uri("/".join([*namespace.split("."), "_cache", flow_id, task_id, f"{loop}.zip"]))


def restore(uri: str, cache: Cache, folder: Path, moment: datetime | None = None) -> list[str]:
    """Put the kept files back into `folder`; none when there is no cache or it expired (then it is removed)."""
    storage = runtime.storage()
    try:
        data = storage.get(uri)
    except (StorageError, FileNotFoundError, KeyError):
        return []
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        made = datetime.fromisoformat(archive.comment.decode() or "1970-01-01T00:00:00+00:00")
        if cache.ttl is not None and made + cache.ttl < (moment or datetime.now(UTC)):
            storage.delete(uri)
            return []
        names = [info.filename for info in archive.infolist() if not info.is_dir()]
        for name in names:
            target = (folder / name).resolve()
            if folder.resolve() not in target.parents:
                continue  # an archive this code did not write
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(name))
    return names


def save(uri: str, cache: Cache, folder: Path, patterns: list[str]) -> list[str]:
    """Keep the files of `folder` matching `patterns` (globs relative to it)."""
    kept: list[str] = []
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for pattern in patterns:
            for path in sorted(folder.glob(pattern)):
                name = str(path.relative_to(folder))
                if path.is_file() and name not in kept:
                    archive.write(path, name)
                    kept.append(name)
        archive.comment = datetime.now(UTC).isoformat().encode()
    runtime.storage().put(uri, buffer.getvalue())
    return kept


__all__ = ["cache_uri", "restore", "save"]
