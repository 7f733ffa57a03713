"""Secrets, resolved on the worker only (Kestra OSS convention: env SECRET_<NAME> holds base64)."""

from __future__ import annotations

import base64
import binascii
import os

from app.errors import TaskFailure
from app.store.masking import Masker


class SecretResolver(Masker):
    """`secret(name)` for templates; every value it returns (and every SECRET input remembered) is then masked
    in what the attempt stores: logs, errors, outputs, labels."""

    def __init__(self, prefix: str = "SECRET_"):
        super().__init__()
        self.prefix = prefix

    def __call__(self, name: str) -> str:
        name = name.upper()
        raw = os.environ.get(self.prefix + name)
        if raw is None:
            raise TaskFailure(f"Secret '{name}' not found: set the environment variable {self.prefix}{name} "
                              "(base64 encoded) on the workers")
        try:
            value = base64.b64decode("".join(raw.split()), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise TaskFailure(f"Secret '{name}': {self.prefix}{name} is not valid base64") from exc
        self.remember(value)
        return value
