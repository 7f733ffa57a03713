"""The process's settings, store and internal storage, built once from the settings and used everywhere."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from app import settings as app_settings
from app.settings import Settings

if TYPE_CHECKING:
    from app.store.database import Store
    from app.store.storage import Storage

_lock = threading.Lock()
_store: Store | None = None
_storage: Storage | None = None


def _after_fork() -> None:
    global _lock
    _lock = threading.Lock()  # a thread of the parent may have held it: the child has no such thread


os.register_at_fork(after_in_child=_after_fork)


def configure(settings: Settings) -> None:
    """Use these settings from now on (the CLI's --config, tests): the store and storage are built anew."""
    global _store, _storage
    with _lock:
        app_settings.configure(settings)
        _store, _storage = None, None


def settings() -> Settings:
    return app_settings.current()


def store() -> Store:
    global _store
    if _store is None:
        with _lock:
            if _store is None:
                from app.store.database import Store

                _store = Store(settings().resolved_database_url)
    return _store


def storage() -> Storage:
    global _storage
    if _storage is None:
        from app.store.storage import storage_from_url

        s = settings()
        _storage = storage_from_url(s.storage_url, Path(s.resolved_storage_url))
    return _storage
