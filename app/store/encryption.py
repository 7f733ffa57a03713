"""SECRET inputs are stored encrypted (Fernet: AES-128-CBC + HMAC-SHA256) and decrypted only where a task renders.

The key is `encryption_key` (CELESTRA_ENCRYPTION_KEY; `celestra keygen` makes one), the same on every client, server
and worker of a cluster. An embedded run with no key configured keeps one under its home folder.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from app import settings as app_settings
from app.errors import ConfigError

PREFIX = "enc:v1:"  # marks a stored ciphertext, so a value is never decrypted twice or by mistake
KEY_FILE = "encryption.key"
_lock = threading.Lock()
_ciphers: dict[str, Fernet] = {}


def _after_fork() -> None:
    """A forked pool process must not inherit the lock held by a thread of its parent (the heartbeat's)."""
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork)


def new_key() -> str:
    return Fernet.generate_key().decode()


def encrypt(text: str) -> str:
    return PREFIX + _cipher().encrypt(text.encode()).decode()


def decrypt(value: Any) -> Any:
    """The plain value of a stored SECRET input; anything not encrypted comes back as it is."""
    if not (isinstance(value, str) and value.startswith(PREFIX)):
        return value
    try:
        return _cipher().decrypt(value[len(PREFIX):].encode()).decode()
    except InvalidToken:
        raise ConfigError("Cannot decrypt a SECRET input: this process's encryption_key is not the one it was "
                          "encrypted with (set the same CELESTRA_ENCRYPTION_KEY on clients, server and workers)"
                          ) from None


def _cipher() -> Fernet:
    settings = app_settings.current()
    key = settings.encryption_key.get_secret_value() if settings.encryption_key else None
    if key is None:
        if not settings.embedded:
            raise ConfigError("SECRET inputs are stored encrypted: set CELESTRA_ENCRYPTION_KEY (make one with "
                              "`celestra keygen`) on clients, server and workers")
        key = _embedded_key(settings.home)
    with _lock:
        if key not in _ciphers:
            try:
                _ciphers[key] = Fernet(key.encode())
            except ValueError:
                raise ConfigError("encryption_key is not a valid key: make one with `celestra keygen`") from None
        return _ciphers[key]


def _embedded_key(home: Path) -> str:
    path = home / KEY_FILE
    with _lock:
        if not path.exists():
            home.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # readable by its owner only
            with os.fdopen(descriptor, "w") as file:
                file.write(new_key())
        return path.read_text().strip()
