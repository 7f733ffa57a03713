"""Shared embedded runtime for the unit tests that run flows.

The embedded runtime (in-memory broker, in-process worker thread, SQLite) is process-global: one home folder for
the whole session, and each module that runs flows re-points the runtime at it when another module (the Kestra
conformance suite, say) configured different settings meanwhile.
"""

from __future__ import annotations

from typing import Any

import pytest

from app.settings import Settings


@pytest.fixture(scope="session")
def celestra_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(home=tmp_path_factory.mktemp("celestra-home"))


@pytest.fixture(scope="module")
def client(celestra_settings: Settings) -> Any:
    from app import runtime
    from app.client import Client

    if runtime.settings() is celestra_settings:
        return Client()
    return Client(settings=celestra_settings)



def pytest_terminal_summary(terminalreporter: Any) -> None:
    """How many cases the fuzz properties ran (tests/unit/test_fuzz.py), each without a crash if the run passed."""
    import sys

    for name, module in list(sys.modules.items()):
        counts = getattr(module, "FUZZ_COUNTS", None) if name.endswith("test_fuzz") else None
        for prop, count in sorted((counts or {}).items()):
            terminalreporter.write_line(f"fuzz: {prop}: {count} cases")
