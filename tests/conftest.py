"""Fixtures: a fresh migrated database per test (SQLite, and PostgreSQL when
``FEWSHOT_TEST_POSTGRES_URL`` is set), and the app over it with the fake encoder."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from app.db.migrate import upgrade_head
from app.db.session import make_engine
from app.main import create_app
from app.settings import Settings
from tests.fakes import FakeEncoder
from tests.helpers import ADMIN_KEY, create_tenant

POSTGRES_ENV = "FEWSHOT_TEST_POSTGRES_URL"

# The tests' tensors are tiny: extra intra-op threads only add synchronisation, and on
# a busy 2-core machine their spin-waiting made each 50-step adaptation take seconds.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's FEWSHOT_* variables must not change what the tests see."""
    for name in list(os.environ):
        if name.startswith("FEWSHOT_") and not name.startswith("FEWSHOT_TEST_"):
            monkeypatch.delenv(name)


def _fresh_postgres(admin_url: str) -> Iterator[str]:
    """A new, empty database on the server of ``admin_url``; dropped afterwards."""
    name = f"fewshot_test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of the backend named by ``request.param``."""
    backend = getattr(request, "param", "sqlite")
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'fewshot.db'}"
        return
    admin_url = os.environ.get(POSTGRES_ENV)
    if not admin_url:
        pytest.skip(f"set {POSTGRES_ENV} to test PostgreSQL")
    yield from _fresh_postgres(admin_url)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that uses a database runs once per backend."""
    if "empty_database_url" in metafunc.fixturenames:
        no_postgres = pytest.mark.skipif(
            not os.environ.get(POSTGRES_ENV), reason=f"set {POSTGRES_ENV} to test PostgreSQL"
        )
        backends = ["sqlite", pytest.param("postgres", marks=no_postgres)]
        metafunc.parametrize("empty_database_url", backends, indirect=True)


@pytest.fixture
def database_url(empty_database_url: str) -> str:
    """A fresh database at the head revision (``alembic upgrade head``)."""
    upgrade_head(empty_database_url)
    return empty_database_url


@pytest.fixture
def db_engine(database_url: str) -> Iterator[Engine]:
    """A separate engine on the test database, for looking at rows directly."""
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def make_settings(database_url: str, **overrides: Any) -> Settings:
    """Test settings: the fixed admin key, no checkpoint, no ``.env`` file."""
    values: dict[str, Any] = {"database_url": database_url, "admin_key": ADMIN_KEY, "checkpoint": "none"}
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module to change limits for all its tests."""
    return {}


@pytest.fixture
def fake_encoder() -> FakeEncoder:
    return FakeEncoder()


@pytest.fixture
def build_app(database_url: str, settings_overrides: dict[str, Any]) -> Callable[..., FastAPI]:
    """``build_app(encoder, **overrides)``: a new app over this test's database."""

    def build(encoder: FakeEncoder, **overrides: Any) -> FastAPI:
        return create_app(make_settings(database_url, **{**settings_overrides, **overrides}), encoder=encoder)

    return build


@pytest.fixture
def app(build_app: Callable[..., FastAPI], fake_encoder: FakeEncoder) -> FastAPI:
    return build_app(fake_encoder)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """An httpx-based client; entering it runs the app's lifespan (start-up, shutdown)."""
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def tenant(client: TestClient) -> dict[str, str]:
    """Auth headers of a new tenant."""
    return create_tenant(client, "tenant-a")


@pytest.fixture
def other_tenant(client: TestClient) -> dict[str, str]:
    """Auth headers of a second, unrelated tenant."""
    return create_tenant(client, "tenant-b")
