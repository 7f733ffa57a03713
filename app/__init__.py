"""Celestra: Kestra-style YAML flows executed on Celery.

`celery -A app worker` finds the Celery application as `app.celery`; `from app import Client` is the Python API.
Both are loaded lazily so importing the package stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Client", "celery"]


def __getattr__(name: str) -> Any:
    if name == "celery":
        from app.celery_app import get_celery

        return get_celery()
    if name == "Client":
        from app.client import Client

        return Client
    raise AttributeError(name)
