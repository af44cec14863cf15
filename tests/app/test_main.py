"""App start-up, health, the OpenAPI document and the error-body contract."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.main import create_app
from tests.conftest import make_settings
from tests.fakes import FakeEncoder

V1_PATHS = {
    "/v1/tenants": {"post"},
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
