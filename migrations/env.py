"""Alembic environment: the URL comes from the caller's config (``fewshot migrate``, the
server, the tests), else the service's settings (``FEWSHOT_DATABASE_URL``, then ``.env``),
so the ``alembic`` command migrates the database the server uses."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

from app.db.tables import Base
from app.settings import configured_database_url

config = context.config
target_metadata = Base.metadata
url = config.get_main_option("sqlalchemy.url") or configured_database_url()


def run_migrations_offline() -> None:
    raise SystemExit("offline SQL generation (alembic --sql) is not supported: migrations 0002 and 0004 read "
                     "rows to move data; run them against the database (`fewshot migrate`)")


def run_migrations_online() -> None:
    connectable = engine_from_config({"sqlalchemy.url": url}, prefix="sqlalchemy.", poolclass=pool.NullPool)
    with connectable.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
