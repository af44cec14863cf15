"""Engine and session factory, and the unit of work that services commit through."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


def is_in_memory_sqlite(database_url: str) -> bool:
    """``sqlite://``, ``sqlite:///`` and ``sqlite:///:memory:`` (any driver, any query
    string, SQLAlchemy's ``mode=memory`` URIs too) all name a database that lives in memory."""
    from sqlalchemy.engine import make_url

    try:
        url = make_url(database_url)
    except Exception:  # noqa: BLE001 - an unparsable URL fails later with its own error
        return False
    if url.get_backend_name() != "sqlite":
        return False
    database = url.database or ""
    return (database in ("", ":memory:") or database.startswith("file::memory:") or "mode=memory" in database
            or url.query.get("mode") == "memory")


def make_engine(url: str, pool_size: int = 10) -> Engine:
    """An engine for ``url``; SQLite gets foreign keys on and a busy timeout for threads.
    ``pool_size``: connections kept (the server passes its request concurrency for SQLite,
    whose connections cost nothing; a PostgreSQL server's own connection limit applies)."""
    if url.startswith("sqlite"):
        # SQLAlchemy gives an in-memory database a single-connection pool, without sizes.
        pool = {} if is_in_memory_sqlite(url) else {"pool_size": pool_size, "max_overflow": pool_size}
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **pool)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(connection, _record) -> None:  # noqa: ANN001 - DB-API connection
            cursor = connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            if ":memory:" not in url:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


class UnitOfWork:
    """One transaction per request: the service calls ``commit()`` when its change is
    complete; anything else (an error, an early return) is rolled back on exit, so a
    request never leaves half its change behind."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._session_factory = session_factory
        self.session: Session | None = None

    def __enter__(self) -> "UnitOfWork":
        self.session = self._session_factory()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self.session is not None
        self.session.rollback()
        self.session.close()

    def commit(self) -> None:
        assert self.session is not None
        self.session.commit()

    def pause(self) -> None:
        """Before long work in a change (the encoder, the inner loop): commit what is
        pending (nothing, or caches such as a rebuilt adapter) and give the connection
        back to the pool, so that a slow change never holds one while others wait.
        Loaded objects keep their values (``expire_on_commit=False``); the change's own
        writes come later, checked against concurrent ones by the task row's version."""
        assert self.session is not None
        self.session.commit()

    def release(self) -> None:
        """End the (read-only) transaction and hand the connection back to the pool,
        e.g. before a long wait on the encoder; the session stays usable."""
        assert self.session is not None
        self.session.rollback()
