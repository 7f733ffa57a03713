"""Fixtures shared by the runner tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def aws() -> Iterator[Any]:
    """One moto server for the whole run: moto keeps its state per process, so a second server would share it."""
    from aws_services import running_aws  # imports boto3 and moto: only when an AWS test runs

    yield from running_aws()
