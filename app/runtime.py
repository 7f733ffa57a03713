"""Process-wide singletons built from settings: store, storage, flow cache. Configured once, used everywhere."""

from __future__ import annotations

import hashlib
import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from app.settings import Settings, get_settings

if TYPE_CHECKING:
    from app.flow import Flow
    from app.storage import Storage
    from app.store import Store

_lock = threading.Lock()
_settings: Settings | None = None
_store: Store | None = None
_storage: Storage | None = None


def configure(settings: Settings) -> None:
    """Use these settings from now on (the CLI's --config, tests)."""
    global _settings, _store, _storage
    with _lock:
        _settings, _store, _storage = settings, None, None


def settings() -> Settings:
    return _settings or get_settings()


def store() -> Store:
    global _store
    if _store is None:
        with _lock:
            if _store is None:
                from app.store import Store

                _store = Store(settings().resolved_database_url)
    return _store


def storage() -> Storage:
    global _storage
    if _storage is None:
        from app.storage import storage_from_url

        s = settings()
        _storage = storage_from_url(s.storage_url, Path(s.resolved_storage_url))
    return _storage


def parse_flow(source: str) -> Flow:
    """Parsed flows are cached by content: every task run of an execution re-reads the same source."""
    return _parse_cached(hashlib.sha1(source.encode()).hexdigest(), source)


@lru_cache(maxsize=256)
def _parse_cached(_digest: str, source: str) -> Flow:
    from app.loader import load_flow

    return load_flow(source, "<stored flow>")
