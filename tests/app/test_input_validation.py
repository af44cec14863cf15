"""Inputs no database can store, numbers beyond its columns, blank names, non-finite
thresholds, misspelt import keys and concurrent writers: each is a 4xx with the
``{"error", "detail"}`` body, never a 500, and leaves nothing behind."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from app.repositories.tasks import TaskRepository
from app.services import races
from tests.helpers import admin_headers, create_task, examples

Headers = dict[str, str]
JSON = {"content-type": "application/json"}


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """500s come back as answers (instead of raising), so that a test can see them."""
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def _error(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    assert response.status_code in statuses, (response.status_code, response.text[:500])
    body = response.json()
    assert set(body) == {"error", "detail"}, body
    return body


def _counts(db_engine: Engine) -> tuple[int, ...]:
    with db_engine.connect() as connection:
        return tuple(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar()
                     for table in ("tasks", "examples", "adapter_versions"))


def test_lone_surrogates_are_422(client: TestClient, tenant: Headers) -> None:
    raw = b'{"name":"x\\ud800","examples":[{"text":"a","label":"b"},{"text":"c","label":"d"}]}'
    body = _error(client.post("/v1/tasks", content=raw, headers={**tenant, **JSON}), 422)
    assert "input" not in body["detail"][0]  # the input is not echoed back
    _error(client.post("/v1/tenants", content=b'{"name":"x\\ud800"}', headers={**admin_headers(), **JSON}), 422)
    task = create_task(client, tenant)
    raw = b'{"examples":[{"text":"play music","label":"w\\udfff"}]}'
    _error(client.post(f"/v1/tasks/{task['id']}/evaluate", content=raw, headers={**tenant, **JSON}), 422)


def test_nul_characters_are_422(client: TestClient, tenant: Headers, db_engine: Engine) -> None:
    before = _counts(db_engine)
    for body in ({"name": "x", "examples": examples() + [{"text": "a\u0000b", "label": "weather"}]},
                 {"name": "x", "examples": examples() + [{"text": "ab", "label": "w\u0000"}]},
                 {"name": "x\u0000", "examples": examples()},
                 {"name": "x", "examples": examples(), "out_of_scope": ["\u0000"]}):
        _error(client.post("/v1/tasks", json=body, headers=tenant), 422)
    assert _counts(db_engine) == before
    task = create_task(client, tenant)
    _error(client.patch(f"/v1/tasks/{task['id']}", json={"name": "a\u0000"}, headers=tenant), 422)
    _error(client.post("/v1/tenants", json={"name": "a\u0000"}, headers=admin_headers()), 422)


def test_blank_texts_labels_and_names_are_422(client: TestClient, tenant: Headers) -> None:
    for body in ({"name": "x", "examples": examples() + [{"text": "   ", "label": "weather"}]},
                 {"name": "x", "examples": examples() + [{"text": "hello", "label": " \t"}]},
                 {"name": "   ", "examples": examples()},
                 {"name": "x", "examples": examples(), "out_of_scope": ["   "]},
                 {"name": "x", "examples": examples(), "unlabelled": ["\n"]},
                 {"name": "x", "labels": [{"name": "a"}, {"name": "  "}]}):
        _error(client.post("/v1/tasks", json=body, headers=tenant), 422)
    # A text to classify may be anything storable, even empty (a chat message can be).
    task = create_task(client, tenant)
    assert client.post(f"/v1/tasks/{task['id']}/predict", json={"texts": ["", "  "]}, headers=tenant).status_code == 200


@pytest.mark.parametrize("literal", [b"Infinity", b"-Infinity", b"NaN", b"1e999"])
def test_non_finite_thresholds_are_422(client: TestClient, tenant: Headers, literal: bytes) -> None:
    body = b'{"name":"x","examples":' + json.dumps(examples()).encode() + b',"oos_threshold":' + literal + b"}"
    _error(client.post("/v1/tasks", content=body, headers={**tenant, **JSON}), 422)
    task = create_task(client, tenant)
    path = f"/v1/tasks/{task['id']}"
    _error(client.patch(path, content=b'{"oos_threshold": ' + literal + b"}", headers={**tenant, **JSON}), 422)
    document = client.get(path + "/export", headers=tenant).json()
    raw = json.dumps(document).replace('"settings": {"oos_threshold": null}', '"settings": {"oos_threshold": ' + literal.decode() + "}")
    assert literal.decode() in raw
    _error(client.post("/v1/tasks/import", content=raw.encode(), headers={**tenant, **JSON}), 422)
    assert client.get(path, headers=tenant).json()["oos_threshold_override"] is None


def test_a_body_that_is_not_utf8_is_400_invalid_body(client: TestClient, tenant: Headers) -> None:
    body = b'{"name":"caf\xe9","examples":' + json.dumps(examples()).encode() + b"}"  # Latin-1, not UTF-8
    response = client.post("/v1/tasks", content=body, headers={**tenant, **JSON})
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_body", "detail": "the body could not be read: send JSON encoded as UTF-8"}
    malformed = client.post("/v1/tasks", content=b'{"name": ', headers={**tenant, **JSON})
    assert malformed.status_code == 422 and malformed.json()["error"] == "validation_error"


@pytest.mark.parametrize("value", [2**31, 2**63])
def test_versions_ids_and_offsets_beyond_the_columns_are_422(client: TestClient, tenant: Headers, value: int) -> None:
    task = create_task(client, tenant)
    base = f"/v1/tasks/{task['id']}"
    for method, path, body in [
        ("POST", base + "/predict", {"texts": ["play"], "version": value}),
        ("POST", base + "/evaluate", {"examples": [{"text": "play", "label": "music"}], "version": value}),
        ("POST", base + "/rollback", {"version": value}),
        ("POST", base + "/remove", {"example_ids": [value]}),
        ("GET", base + f"/examples?version={value}", None),
        ("GET", base + f"/export?version={value}", None),
        ("GET", f"/v1/tasks?offset={value}", None),
    ]:
        _error(client.request(method, path, json=body, headers=tenant), 422)


def test_import_refuses_unknown_or_missing_keys(client: TestClient, tenant: Headers) -> None:
    task = create_task(client, tenant)
    document = client.get(f"/v1/tasks/{task['id']}/export", headers=tenant).json()
    _error(client.post("/v1/tasks/import", json={**document, "out_of_scop": ["book a flight"]}, headers=tenant), 422)
    _error(client.post("/v1/tasks/import", json={**document, "settings": {"threshold": -3}}, headers=tenant), 422)
    for key in ("format", "format_version"):
        _error(client.post("/v1/tasks/import", json={k: v for k, v in document.items() if k != key}, headers=tenant), 422)
    assert client.post("/v1/tasks/import", json=document, headers=tenant).status_code == 201


def test_removing_unlabelled_texts_from_a_task_without_any_is_404(client: TestClient, tenant: Headers) -> None:
    task = create_task(client, tenant)
    body = _error(client.post(f"/v1/tasks/{task['id']}/remove", json={"unlabelled": True}, headers=tenant), 404)
    assert "no unlabelled texts" in body["detail"]
    assert client.get(f"/v1/tasks/{task['id']}", headers=tenant).json()["version"] == 1


def test_a_write_that_loses_a_race_is_409_and_leaves_nothing(client: TestClient, tenant: Headers, db_engine: Engine,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Deterministic stand-in for a concurrent writer: the version insert hits the unique
    constraint at its flush (on SQLite, which has no row locks, this is what happens)."""
    task = create_task(client, tenant)
    before = _counts(db_engine)

    def taken(self: TaskRepository, row: Any) -> None:
        raise IntegrityError("INSERT INTO adapter_versions ...", {}, Exception("UNIQUE constraint failed"))

    monkeypatch.setattr(TaskRepository, "add_version", taken)
    monkeypatch.setattr(races, "REBASE_ATTEMPTS", 3)  # an append or removal gives up after its attempts
    base = f"/v1/tasks/{task['id']}"
    for path, body in ((base + "/examples", {"examples": [{"text": "ring the bell", "label": "bell"}]}),
                       (base + "/rollback", {"version": 1}), (base + "/remove", {"labels": ["music"]})):
        assert _error(client.post(path, json=body, headers=tenant), 409)["error"] == "conflict"
    assert _counts(db_engine) == before


def test_concurrent_appends_are_all_200(client: TestClient, tenant: Headers) -> None:
    task = create_task(client, tenant)
    path = f"/v1/tasks/{task['id']}/examples"

    def append(i: int) -> int:
        return client.post(path, json={"examples": [{"text": f"ring the bell {i}", "label": f"bell{i}"}]},
                           headers=tenant).status_code

    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(append, range(6)))
    assert statuses == [200] * 6, statuses
    versions = client.get(f"/v1/tasks/{task['id']}/versions", headers=tenant).json()["versions"]
    assert [v["version"] for v in versions] == list(range(1, 8))
