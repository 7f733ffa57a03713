"""Internal storage URIs (`kestra:///namespace/flow/...`): how a flow names a stored file."""

from __future__ import annotations

SCHEME = "kestra://"


def is_storage_uri(value: object) -> bool:
    return isinstance(value, str) and value.startswith(SCHEME)
