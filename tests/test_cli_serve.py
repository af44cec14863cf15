"""`fewshot serve` refuses bad settings with one line on stderr before starting anything."""

from __future__ import annotations

import pytest

from app.cli import main


def test_unsafe_production_settings_are_one_line_errors(monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FEWSHOT_ENVIRONMENT", "production")
    monkeypatch.setenv("FEWSHOT_ADMIN_KEY", "short")
    monkeypatch.setenv("FEWSHOT_DATABASE_URL", "sqlite://")
    assert main(["serve", "--port", "1"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "FEWSHOT_ADMIN_KEY" in error and "in-memory" in error
    assert "Traceback" not in error


def test_an_invalid_setting_is_named_by_its_variable(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FEWSHOT_MAX_TOP_K", "0")
    assert main(["serve", "--port", "1"]) == 2
    assert capsys.readouterr().err.startswith("error: FEWSHOT_MAX_TOP_K: ")


def test_serve_passes_its_options_to_uvicorn(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import uvicorn

    calls: list[dict] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append({"app": app, **kwargs}))
    monkeypatch.delenv("FEWSHOT_ADMIN_KEY", raising=False)
    assert main(["serve", "--port", "8123", "--limit-concurrency", "5", "--log-level", "warning",
                 "--graceful-timeout", "60"]) == 0
    assert calls == [{"app": "app.main:create_app", "factory": True, "host": "127.0.0.1", "port": 8123, "workers": 1,
                      "log_level": "warning", "limit_concurrency": 5, "timeout_graceful_shutdown": 60.0,
                      "server_header": False}]
    assert main(["serve"]) == 0 and calls[-1]["timeout_graceful_shutdown"] is None  # wait for every request
    # several workers would each generate their own admin key: refused (a key from .env counts)
    assert main(["serve", "--workers", "2"]) == 2
    assert "FEWSHOT_ADMIN_KEY" in capsys.readouterr().err
    monkeypatch.setenv("FEWSHOT_ADMIN_KEY", "test-admin-key-0123456789abcdef")
    assert main(["serve", "--workers", "2"]) == 0 and calls[-1]["workers"] == 2
