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
