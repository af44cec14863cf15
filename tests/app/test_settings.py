"""Settings: environment variables, production safety, inner-loop overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.settings import Settings

STRONG_KEY = "q8ZJx-3mN1vT_pK7rW2eY9aBcD4fGhLs"  # 32 characters, many different
from models.inner_loop import InnerLoopConfig


def test_reads_fewshot_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEWSHOT_MAX_TEXT_CHARS", "123")
    monkeypatch.setenv("FEWSHOT_DATABASE_URL", "sqlite:///x.db")
    settings = Settings(_env_file=None)
    assert settings.max_text_chars == 123 and settings.database_url == "sqlite:///x.db"


def test_production_refuses_unsafe_defaults() -> None:
    with pytest.raises(ValidationError, match="ADMIN_KEY"):
        Settings(_env_file=None, environment="production")
    with pytest.raises(ValidationError, match="ADMIN_KEY"):
        Settings(_env_file=None, environment="production", admin_key="short")
    with pytest.raises(ValidationError, match="ADMIN_KEY"):
        Settings(_env_file=None, environment="production", admin_key=" " * 30)
    with pytest.raises(ValidationError, match="ADMIN_KEY"):
        Settings(_env_file=None, environment="production", admin_key="a" * 24)  # long but guessable
    with pytest.raises(ValidationError, match="in-memory"):
        Settings(_env_file=None, environment="production", admin_key=STRONG_KEY, database_url="sqlite:///:memory:")
    assert Settings(_env_file=None, environment="production", admin_key=STRONG_KEY).environment == "production"


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "sqlite:///:memory:", "sqlite+pysqlite://",
                                 "sqlite:///file:tasks?mode=memory&uri=true", "sqlite:///file::memory:?uri=true"])
def test_production_refuses_every_spelling_of_an_in_memory_database(url: str) -> None:
    with pytest.raises(ValidationError, match="in-memory"):
        Settings(_env_file=None, environment="production", admin_key=STRONG_KEY, database_url=url)


@pytest.mark.parametrize("url", ["sqlite:///./fewshot.db", "sqlite:////var/lib/fewshot/tasks.db",
                                 "postgresql+psycopg://fewshot:secret@db:5432/fewshot"])
def test_production_accepts_databases_on_disk(url: str) -> None:
    assert Settings(_env_file=None, environment="production", admin_key=STRONG_KEY, database_url=url).database_url == url


def test_admin_key_is_secret() -> None:
    settings = Settings(_env_file=None, admin_key="super-secret-admin-key-value")
    assert "super-secret" not in repr(settings)


def test_inner_loop_overrides_only_what_is_set() -> None:
    learned = InnerLoopConfig(steps=7, learning_rate=0.3, proximal=0.2, scale=11.0)
    assert Settings(_env_file=None).inner_loop(learned) == learned
    overridden = Settings(_env_file=None, inner_steps=0, inner_scale=5.0).inner_loop(learned)
    assert overridden == InnerLoopConfig(steps=0, learning_rate=0.3, proximal=0.2, scale=5.0)


def test_limits_are_validated() -> None:
    with pytest.raises(ValidationError):
        Settings(_env_file=None, max_labels_per_task=1)
    with pytest.raises(ValidationError):
        Settings(_env_file=None, max_body_bytes=10)


def test_label_limit_cannot_exceed_the_label_column() -> None:
    with pytest.raises(ValidationError, match="max_label_chars"):
        Settings(_env_file=None, max_label_chars=201)


def test_the_alembic_command_reads_the_database_url_like_the_server(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """``alembic upgrade head`` with the URL in ``.env`` migrates that database, not ./fewshot.db."""
    from app.settings import configured_database_url

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FEWSHOT_DATABASE_URL", raising=False)
    monkeypatch.setenv("FEWSHOT_ENVIRONMENT", "production")  # other settings need not be valid for this
    (tmp_path / ".env").write_text(f"FEWSHOT_DATABASE_URL=sqlite:///{tmp_path}/from-dotenv.db\n")
    assert configured_database_url() == f"sqlite:///{tmp_path}/from-dotenv.db"
    monkeypatch.setenv("FEWSHOT_DATABASE_URL", "sqlite:///from-env.db")
    assert configured_database_url() == "sqlite:///from-env.db"


def test_api_docs_are_off_in_production_unless_asked_for(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from app.main import create_app
    from tests.fakes import FakeEncoder

    url = f"sqlite:///{tmp_path}/docs.db"
    for settings, served in ((Settings(_env_file=None, database_url=url), True),
                             (Settings(_env_file=None, database_url=url, environment="production", admin_key=STRONG_KEY), False),
                             (Settings(_env_file=None, database_url=url, environment="production", admin_key=STRONG_KEY,
                                       api_docs=True), True)):
        client = TestClient(create_app(settings, encoder=FakeEncoder()))  # no lifespan needed for the docs
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert (client.get(path).status_code == 200) is served, (path, settings.environment)
