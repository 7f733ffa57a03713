"""Schema migrations (Alembic), applied when a Store opens the database."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

HERE = Path(__file__).parent


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    return config


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest revision; a no-op (one query) when it already is."""
    config = alembic_config()
    head = ScriptDirectory.from_config(config).get_current_head()
    with engine.connect() as conn:
        if MigrationContext.configure(conn).get_current_revision() == head:
            return
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Server and every worker process open the store at start: one migrates, the others wait for it.
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(7201550312)"))
            if MigrationContext.configure(conn).get_current_revision() == head:
                return
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
