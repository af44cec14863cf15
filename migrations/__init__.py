"""Alembic migrations: the source of truth for the database schema."""
