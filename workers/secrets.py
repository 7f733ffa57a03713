"""Secrets, resolved on the worker only (Kestra OSS convention: env SECRET_<NAME> holds base64)."""

from __future__ import annotations

import base64
import binascii
import os

from app.errors import TaskFailure

MASK = "********"


class SecretResolver:
    def __init__(self, prefix: str = "SECRET_"):
        self.prefix = prefix
        self.seen: set[str] = set()

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

    def remember(self, value: str) -> None:
        if value:
            self.seen.add(value)
            for line in value.splitlines():
                if len(line) >= 4:
                    self.seen.add(line)

    def mask(self, text: str) -> str:
        for value in sorted(self.seen, key=len, reverse=True):
            if value in text:
                text = text.replace(value, MASK)
        return text
