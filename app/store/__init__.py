"""Persistence: the database (SQLAlchemy + Alembic), internal storage, encryption at rest."""
