"""Run Alembic programmatically (the server at start, the tests per database).

Several processes may migrate one database at once: ``fewshot serve --workers N`` starts
N workers that each run the migrations, and so do containers scaled side by side. Alembic
does not guard against that (two of them both create the first table and one crashes
at start), so :func:`upgrade_head` holds a lock across processes while it migrates: a
PostgreSQL advisory lock, or a lock file beside a SQLite file. Whoever comes second
then finds the database at head and has nothing to do."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import make_url

import migrations
from app.db.session import is_in_memory_sqlite

MIGRATIONS_DIR = Path(migrations.__file__).resolve().parent
#: The advisory lock's key on PostgreSQL (any fixed 64-bit number; this one spells "fewshot").
ADVISORY_LOCK_KEY = 0x66657773686F74


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade_head(database_url: str) -> None:
    with migration_lock(database_url):
        command.upgrade(alembic_config(database_url), "head")


def downgrade_base(database_url: str) -> None:
    with migration_lock(database_url):
        command.downgrade(alembic_config(database_url), "base")


@contextlib.contextmanager
def migration_lock(database_url: str) -> Iterator[None]:
    """Held by one process at a time per database (others wait); a no-op where no other
    process can reach the database (in-memory SQLite) or no lock is known (other backends)."""
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend == "postgresql":
        engine = create_engine(url, poolclass=pool.NullPool)
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
                connection.commit()
                try:
                    yield
                finally:
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY})
                    connection.commit()
        finally:
            engine.dispose()
    elif backend == "sqlite" and not is_in_memory_sqlite(database_url):
        with _file_lock(_sqlite_path(url.database or "")):
            yield
    else:
        yield


def _sqlite_path(database: str) -> Path:
    """The file of a SQLite URL's database part (a plain path, or a ``file:`` URI's path)."""
    if database.startswith("file:"):
        database = database.removeprefix("file:").split("?", 1)[0]
    return Path(database)


@contextlib.contextmanager
def _file_lock(database: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``<database>.migrate-lock`` (POSIX; elsewhere no lock)."""
    try:
        import fcntl
    except ImportError:  # Windows: one process at a time is up to the operator
        yield
        return
    if not database.parent.is_dir():  # SQLite itself will say that the folder is missing
        yield
        return
    with open(database.with_name(database.name + ".migrate-lock"), "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
