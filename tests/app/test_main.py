"""App start-up, health, the OpenAPI document and the error-body contract."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.main import create_app
from tests.conftest import make_settings
from tests.fakes import FakeEncoder

V1_PATHS = {
    "/v1/tenants": {"get", "post"},
    "/v1/tenants/{tenant_id}": {"delete"},
    "/v1/tenants/{tenant_id}/keys": {"get", "post"},
    "/v1/tenants/{tenant_id}/keys/{key_id}": {"delete"},
    "/v1/tasks": {"get", "post"},
    "/v1/tasks/import": {"post"},
    "/v1/tasks/{task_id}": {"get", "patch", "delete"},
    "/v1/tasks/{task_id}/examples": {"get", "post"},
    "/v1/tasks/{task_id}/remove": {"post"},
    "/v1/tasks/{task_id}/versions": {"get"},
    "/v1/tasks/{task_id}/rollback": {"post"},
    "/v1/tasks/{task_id}/predict": {"post"},
    "/v1/tasks/{task_id}/evaluate": {"post"},
    "/v1/tasks/{task_id}/export": {"get"},
}


def test_healthz_reports_the_loaded_encoder(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "encoder": "fake-encoder-v1", "device": "cpu"}


def test_healthz_is_503_before_start_up(database_url: str) -> None:
    app = create_app(make_settings(database_url), encoder=FakeEncoder())
    response = TestClient(app).get("/healthz")  # no `with`: the lifespan has not run
    assert response.status_code == 503 and response.json()["status"] == "starting"


def test_openapi_lists_every_v1_path(client: TestClient) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path, methods in V1_PATHS.items():
        assert path in paths, path
        assert methods <= set(paths[path]), (path, set(paths[path]))
    assert {path for path in paths if path.startswith("/v1")} == set(V1_PATHS)


def test_unknown_route_has_the_error_body(client: TestClient) -> None:
    response = client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_wrong_method_has_the_error_body(client: TestClient, tenant: dict[str, str]) -> None:
    response = client.put("/v1/tasks", headers=tenant, json={})
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


def test_app_shuts_down_cleanly(app: FastAPI) -> None:
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
    assert app.state.engine is None


def test_a_database_that_stops_answering_is_503_not_a_plain_500(app: FastAPI, tmp_path: Path) -> None:
    from sqlalchemy import create_engine

    from app.db.session import make_session_factory

    with TestClient(app, raise_server_exceptions=False) as client:
        tenant = client.post("/v1/tenants", json={"name": "acme"}, headers={"Authorization": f"Bearer {app.state.admin_key}"})
        headers = {"Authorization": f"Bearer {tenant.json()['api_key']}"}
        assert client.get("/v1/tasks", headers=headers).status_code == 200
        # the database goes away (here: a file in a folder that does not exist)
        app.state.session_factory = make_session_factory(create_engine(f"sqlite:///{tmp_path}/gone/fewshot.db"))
        health = client.get("/healthz")
        assert health.status_code == 503 and health.json() == {"status": "database_unavailable"}
        listed = client.get("/v1/tasks", headers=headers)
        assert listed.status_code == 503 and listed.json()["error"] == "database_unavailable"
        assert listed.headers["retry-after"] == "5"


def test_an_unexpected_error_is_a_json_500(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.routers import health

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(health, "text", broken)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/healthz")
    assert response.status_code == 500
    assert response.json() == {"error": "internal_error", "detail": "internal server error"}


def test_which_database_errors_mean_unavailable() -> None:
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from app.errors import _is_unavailable

    def error(message: str) -> OperationalError:
        return OperationalError("SELECT 1", {}, sqlite3.OperationalError(message))

    assert _is_unavailable(error("database is locked"))  # another writer past the busy timeout: retry
    assert _is_unavailable(error("unable to open database file"))
    assert not _is_unavailable(error("no such table: tasks"))  # a bug (or a missing migration), not an outage



def test_overloaded_and_an_exhausted_pool_are_503_with_retry_after(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    from app.errors import Overloaded
    from app.services.tasks import TaskService

    with TestClient(app, raise_server_exceptions=False) as client:
        tenant = client.post("/v1/tenants", json={"name": "acme"}, headers={"Authorization": f"Bearer {app.state.admin_key}"})
        headers = {"Authorization": f"Bearer {tenant.json()['api_key']}"}
        task = client.post("/v1/tasks", headers=headers, json={"name": "t", "examples": [
            {"text": "play a song", "label": "music"}, {"text": "wake me up", "label": "alarm"}]}).json()

        def overloaded(*args: object, **kwargs: object) -> None:
            raise Overloaded("8192 texts are already queued for the encoder; retry shortly")

        monkeypatch.setattr(app.state.engine, "predict", overloaded)
        response = client.post(f"/v1/tasks/{task['id']}/predict", json={"texts": ["hi"]}, headers=headers)
        assert (response.status_code, response.json()["error"], response.headers["retry-after"]) == (503, "overloaded", "1")

        def no_connection(*args: object, **kwargs: object) -> None:
            raise PoolTimeout("QueuePool limit of size 5 overflow 10 reached")

        monkeypatch.setattr(TaskService, "list", no_connection)
        response = client.get("/v1/tasks", headers=headers)
        assert (response.status_code, response.json()["error"], response.headers["retry-after"]) == (
            503, "database_unavailable", "5")


def test_without_an_admin_key_one_is_generated_and_printed(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    app = create_app(make_settings(database_url, admin_key=None), encoder=FakeEncoder())
    with TestClient(app) as client:
        printed = capsys.readouterr().err
        key = printed.split("this run's admin key: ")[1].split()[0]
        assert len(key) >= 40 and key == app.state.admin_key
        assert client.post("/v1/tenants", json={"name": "a"}, headers={"Authorization": f"Bearer {key}"}).status_code == 201
