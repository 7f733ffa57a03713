"""Alembic environment: runs on the connection handed over by app.store.migrations.upgrade."""

from __future__ import annotations

from alembic import context

from app.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # `alembic` command line (autogenerate): an engine from the configured URL
    import sqlalchemy as sa

    connection = sa.create_engine(context.config.get_main_option("sqlalchemy.url") or "sqlite://").connect()

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
