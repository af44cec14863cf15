"""Validation (422) and limits (413); a rejected change leaves everything as it was."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tests.helpers import admin_headers, create_task, examples

Headers = dict[str, str]
Task = dict[str, Any]

LIMITS = {
    "max_text_chars": 40,
    "max_label_chars": 20,
    "max_predict_texts": 3,
    "max_evaluate_texts": 8,
    "max_top_k": 5,
    "max_examples_per_request": 16,
    "max_examples_per_task": 20,
    "max_labels_per_task": 4,
    "max_versions_per_task": 4,
    "max_tasks_per_tenant": 3,
    "max_body_bytes": 4096,
}
JSON = {"content-type": "application/json"}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return dict(LIMITS)


@pytest.fixture
def task(client: TestClient, tenant: Headers) -> Task:
    """A synthetic task: 12 examples, 3 labels."""
    return create_task(client, tenant)


def _snapshot(client: TestClient, headers: Headers, db_engine: Engine) -> tuple[Any, ...]:
    """Everything a rejected request must not change: the task list and the row counts."""
    with db_engine.connect() as connection:
        counts = tuple(
            connection.execute(text(f"SELECT count(*) FROM {table}")).scalar()
            for table in ("tasks", "examples", "adapter_versions")
        )
    return client.get("/v1/tasks", headers=headers).json(), counts


def _assert_error(response: httpx.Response, status: int, code: str, case: str = "") -> None:
    assert response.status_code == status, (case, response.text)
    body = response.json()
    assert set(body) == {"error", "detail"} and body["error"] == code and body["detail"], (case, body)


def _labelled(n: int, labels: int = 2) -> list[dict[str, str]]:
    return [{"text": f"example {i}", "label": f"label{i % labels}"} for i in range(n)]


# --- 422: malformed or invalid bodies ------------------------------------------------------

MALFORMED_CREATE: dict[str, Any] = {
    "one-label": {"name": "t", "examples": [{"text": "a", "label": "x"}, {"text": "b", "label": "x"}]},
    "empty-text": {"name": "t", "examples": [{"text": "", "label": "x"}, {"text": "b", "label": "y"}]},
    "empty-label": {"name": "t", "examples": [{"text": "a", "label": ""}, {"text": "b", "label": "y"}]},
    "one-example": {"name": "t", "examples": [{"text": "a", "label": "x"}]},
    "no-examples": {"name": "t", "examples": []},
    "missing-name": {"examples": examples()},
    "empty-name": {"name": "", "examples": examples()},
    "extra-field": {"name": "t", "examples": examples(), "owner": "someone"},
    "extra-example-field": {"name": "t", "examples": [{"text": "a", "label": "x", "w": 1}, {"text": "b", "label": "y"}]},
    "wrong-type": {"name": "t", "examples": "many"},
    "not-an-object": [1, 2, 3],
}
MALFORMED_APPEND: dict[str, Any] = {
    "no-examples": {"examples": []},
    "empty-text": {"examples": [{"text": "", "label": "music"}]},
    "extra-field": {"examples": [{"text": "a", "label": "music"}], "version": 7},
    "missing-label": {"examples": [{"text": "a"}]},
}
MALFORMED_PREDICT: dict[str, Any] = {
    "no-texts": {"texts": []},
    "missing-texts": {"top_k": 2},
    "zero-top-k": {"texts": ["a"], "top_k": 0},
    "texts-not-a-list": {"texts": "play music"},
    "extra-field": {"texts": ["a"], "explain": True},
}


def test_malformed_json_is_422(client: TestClient, tenant: Headers, task: Task, db_engine: Engine) -> None:
    before = _snapshot(client, tenant, db_engine)
    for path in ("/v1/tasks", f"/v1/tasks/{task['id']}/examples", f"/v1/tasks/{task['id']}/predict", "/v1/tenants"):
        headers = {**tenant, **JSON, **(admin_headers() if path == "/v1/tenants" else {})}
        for payload in (b'{"name": "t", "examples": [', b"not json", b'{"texts": ["a",]}', b""):
            response = client.post(path, content=payload, headers=headers)
            _assert_error(response, 422, "validation_error", f"{path} {payload!r}")
    assert _snapshot(client, tenant, db_engine) == before


def test_invalid_create_is_422_and_creates_nothing(
    client: TestClient, tenant: Headers, task: Task, db_engine: Engine
) -> None:
    before = _snapshot(client, tenant, db_engine)
    for case, body in MALFORMED_CREATE.items():
        response = client.post("/v1/tasks", json=body, headers=tenant)
        # A single label passes the schema and is refused by the service, with its own code.
        _assert_error(response, 422, "validation_error", case)
    assert _snapshot(client, tenant, db_engine) == before


def test_invalid_append_is_422_and_changes_nothing(
    client: TestClient, tenant: Headers, task: Task, db_engine: Engine
) -> None:
    before = _snapshot(client, tenant, db_engine)
    for case, body in MALFORMED_APPEND.items():
        response = client.post(f"/v1/tasks/{task['id']}/examples", json=body, headers=tenant)
        _assert_error(response, 422, "validation_error", case)
    assert _snapshot(client, tenant, db_engine) == before


def test_invalid_predict_is_422(client: TestClient, tenant: Headers, task: Task) -> None:
    for case, body in MALFORMED_PREDICT.items():
        response = client.post(f"/v1/tasks/{task['id']}/predict", json=body, headers=tenant)
        _assert_error(response, 422, "validation_error", case)


# --- 413: over a limit ----------------------------------------------------------------------

def test_long_text_is_413_everywhere(client: TestClient, tenant: Headers, task: Task, db_engine: Engine) -> None:
    long = "x" * (LIMITS["max_text_chars"] + 1)
    before = _snapshot(client, tenant, db_engine)
    create = {"name": "t", "examples": [{"text": long, "label": "a"}, {"text": "b", "label": "b"}]}
    _assert_error(client.post("/v1/tasks", json=create, headers=tenant), 413, "limit_exceeded")
    append = {"examples": [{"text": long, "label": "music"}]}
    _assert_error(client.post(f"/v1/tasks/{task['id']}/examples", json=append, headers=tenant), 413, "limit_exceeded")
    response = client.post(f"/v1/tasks/{task['id']}/predict", json={"texts": ["fine", long]}, headers=tenant)
    _assert_error(response, 413, "limit_exceeded")
    assert "texts[1]" in response.json()["detail"]
    assert _snapshot(client, tenant, db_engine) == before


def test_text_at_the_limit_is_accepted(client: TestClient, tenant: Headers, task: Task) -> None:
    exact = "y" * LIMITS["max_text_chars"]
    assert client.post(f"/v1/tasks/{task['id']}/predict", json={"texts": [exact]}, headers=tenant).status_code == 200


def test_long_label_is_413(client: TestClient, tenant: Headers, task: Task, db_engine: Engine) -> None:
    before = _snapshot(client, tenant, db_engine)
    body = {"examples": [{"text": "a", "label": "l" * (LIMITS["max_label_chars"] + 1)}]}
    _assert_error(client.post(f"/v1/tasks/{task['id']}/examples", json=body, headers=tenant), 413, "limit_exceeded")
    assert _snapshot(client, tenant, db_engine) == before


def test_too_many_predict_texts_or_top_k_is_413(client: TestClient, tenant: Headers, task: Task) -> None:
    path = f"/v1/tasks/{task['id']}/predict"
    texts = ["play"] * (LIMITS["max_predict_texts"] + 1)
    _assert_error(client.post(path, json={"texts": texts}, headers=tenant), 413, "limit_exceeded")
    over_k = {"texts": ["a"], "top_k": LIMITS["max_top_k"] + 1}
    _assert_error(client.post(path, json=over_k, headers=tenant), 413, "limit_exceeded")
    at_limits = {"texts": texts[:-1], "top_k": LIMITS["max_top_k"]}
    assert client.post(path, json=at_limits, headers=tenant).status_code == 200


def test_evaluate_has_its_own_limit_and_predicts_in_slices(client: TestClient, tenant: Headers, task: Task) -> None:
    path = f"/v1/tasks/{task['id']}/evaluate"
    items = [{"text": text, "label": "music"} for text in ("play a song", "play some jazz", "next song", "louder",
                                                            "play music", "put on a song", "some music", "a song")]
    # More texts than one predict call may carry (3), so the service predicts them in slices.
    report = client.post(path, json={"examples": items}, headers=tenant)
    assert report.status_code == 200, report.text
    assert report.json()["report"]["num_texts"] == len(items)
    predicted = []
    for start in range(0, len(items), LIMITS["max_predict_texts"]):
        texts = [item["text"] for item in items[start : start + LIMITS["max_predict_texts"]]]
        predicted += client.post(f"/v1/tasks/{task['id']}/predict", json={"texts": texts}, headers=tenant).json()["predictions"]
    accuracy = sum(p["label"] == "music" for p in predicted) / len(items)
    assert report.json()["report"]["accuracy"] == pytest.approx(accuracy)
    too_many = items + [{"text": "one more song", "label": "music"}]
    _assert_error(client.post(path, json={"examples": too_many}, headers=tenant), 413, "limit_exceeded")


def test_too_many_examples_in_one_request_is_413(
    client: TestClient, tenant: Headers, task: Task, db_engine: Engine
) -> None:
    before = _snapshot(client, tenant, db_engine)
    too_many = _labelled(LIMITS["max_examples_per_request"] + 1)
    response = client.post("/v1/tasks", json={"name": "t", "examples": too_many}, headers=tenant)
    _assert_error(response, 413, "limit_exceeded")
    response = client.post(f"/v1/tasks/{task['id']}/examples", json={"examples": too_many}, headers=tenant)
    _assert_error(response, 413, "limit_exceeded")
    assert _snapshot(client, tenant, db_engine) == before


def test_append_past_the_task_total_is_413(client: TestClient, tenant: Headers, task: Task, db_engine: Engine) -> None:
    before = _snapshot(client, tenant, db_engine)
    room = LIMITS["max_examples_per_task"] - task["num_examples"]
    body = {"examples": [{"text": f"music {i}", "label": "music"} for i in range(room + 1)]}
    _assert_error(client.post(f"/v1/tasks/{task['id']}/examples", json=body, headers=tenant), 413, "limit_exceeded")
    assert _snapshot(client, tenant, db_engine) == before
    body["examples"].pop()
    filled = client.post(f"/v1/tasks/{task['id']}/examples", json=body, headers=tenant).json()
    assert filled["num_examples"] == LIMITS["max_examples_per_task"] and filled["version"] == 2


def test_too_many_labels_is_413(client: TestClient, tenant: Headers, task: Task, db_engine: Engine) -> None:
    before = _snapshot(client, tenant, db_engine)
    five = {"name": "t", "examples": _labelled(5, labels=5)}
    _assert_error(client.post("/v1/tasks", json=five, headers=tenant), 413, "limit_exceeded")
    two_new = {"examples": [{"text": "a", "label": "new1"}, {"text": "b", "label": "new2"}]}  # 3 + 2 > 4
    _assert_error(client.post(f"/v1/tasks/{task['id']}/examples", json=two_new, headers=tenant), 413, "limit_exceeded")
    assert _snapshot(client, tenant, db_engine) == before
    one_new = {"examples": two_new["examples"][:1]}
    response = client.post(f"/v1/tasks/{task['id']}/examples", json=one_new, headers=tenant)
    assert response.json()["labels"] == ["alarm", "music", "new1", "weather"]


def test_body_over_the_byte_limit_is_413(client: TestClient, tenant: Headers, task: Task, db_engine: Engine) -> None:
    before = _snapshot(client, tenant, db_engine)
    padding = b" " * LIMITS["max_body_bytes"]  # valid JSON, under every other limit
    create = b'{"name": "t", "examples": [' + padding + b'{"text": "a", "label": "x"}, {"text": "b", "label": "y"}]}'
    _assert_error(client.post("/v1/tasks", content=create, headers={**tenant, **JSON}), 413, "limit_exceeded")
    append = b'{"examples": [{"text": "a", "label": "music"}]}' + padding
    response = client.post(f"/v1/tasks/{task['id']}/examples", content=append, headers={**tenant, **JSON})
    _assert_error(response, 413, "limit_exceeded")
    assert _snapshot(client, tenant, db_engine) == before


def test_chunked_body_over_the_byte_limit_is_413(
    client: TestClient, tenant: Headers, task: Task, db_engine: Engine
) -> None:
    """Without Content-Length the limit still holds, counted as the body arrives."""

    def chunks() -> Iterator[bytes]:
        yield b'{"examples": [{"text": "a", "label": "music"}]'
        for _ in range(LIMITS["max_body_bytes"] // 512 + 1):
            yield b" " * 512
        yield b"}"

    before = _snapshot(client, tenant, db_engine)
    response = client.post(f"/v1/tasks/{task['id']}/examples", content=chunks(), headers={**tenant, **JSON})
    assert "content-length" not in response.request.headers
    _assert_error(response, 413, "limit_exceeded")
    assert _snapshot(client, tenant, db_engine) == before


def test_small_chunked_body_is_accepted(client: TestClient, tenant: Headers, task: Task) -> None:
    body = iter([b'{"texts": ', b'["play music"]}'])
    response = client.post(f"/v1/tasks/{task['id']}/predict", content=body, headers={**tenant, **JSON})
    assert response.status_code == 200 and response.json()["predictions"][0]["label"] == "music"


def test_a_tasks_own_export_imports_even_past_the_per_request_limit(client: TestClient, tenant: Headers, task: Task) -> None:
    """An import carries a whole task: the per-task limits apply, not the per-request one."""
    client.post(f"/v1/tasks/{task['id']}/examples", headers=tenant,
                json={"examples": [{"text": f"music {i}", "label": "music"} for i in range(6)]}).raise_for_status()
    document = client.get(f"/v1/tasks/{task['id']}/export", headers=tenant).json()
    assert len(document["examples"]) == 18 > LIMITS["max_examples_per_request"]
    imported = client.post("/v1/tasks/import", json=document, headers=tenant)
    assert imported.status_code == 201 and imported.json()["num_examples"] == 18
    document["examples"] += [{"text": f"alarm {i}", "label": "alarm"} for i in range(3)]  # 21: over the task limit
    _assert_error(client.post("/v1/tasks/import", json=document, headers=tenant), 413, "limit_exceeded")


def test_a_task_keeps_a_bounded_number_of_versions(client: TestClient, tenant: Headers, task: Task,
                                                    db_engine: Engine) -> None:
    for version in range(2, LIMITS["max_versions_per_task"] + 1):
        assert client.post(f"/v1/tasks/{task['id']}/rollback", json={"version": 1}, headers=tenant).json()["version"] == version
    before = _snapshot(client, tenant, db_engine)
    for response in (client.post(f"/v1/tasks/{task['id']}/rollback", json={"version": 1}, headers=tenant),
                     client.post(f"/v1/tasks/{task['id']}/examples", headers=tenant,
                                 json={"examples": [{"text": "music again", "label": "music"}]})):
        _assert_error(response, 413, "limit_exceeded")
        assert "export it and import" in response.json()["detail"]
    assert _snapshot(client, tenant, db_engine) == before


def test_evaluate_gold_labels_are_bounded(client: TestClient, tenant: Headers, task: Task) -> None:
    long_label = [{"text": "play a song", "label": "x" * (LIMITS["max_label_chars"] + 1)}]
    _assert_error(client.post(f"/v1/tasks/{task['id']}/evaluate", json={"examples": long_label}, headers=tenant),
                  413, "limit_exceeded")
    many = [{"text": "play a song", "label": f"label {i}"} for i in range(LIMITS["max_labels_per_task"] + 1)]
    _assert_error(client.post(f"/v1/tasks/{task['id']}/evaluate", json={"examples": many}, headers=tenant),
                  413, "limit_exceeded")


def test_a_tenant_has_a_bounded_number_of_tasks(client: TestClient, tenant: Headers, task: Task) -> None:
    for name in ("second", "third"):
        assert client.post("/v1/tasks", json={"name": name, "examples": _labelled(4)}, headers=tenant).status_code == 201
    response = client.post("/v1/tasks", json={"name": "fourth", "examples": _labelled(4)}, headers=tenant)
    _assert_error(response, 413, "limit_exceeded")
    assert "delete some first" in response.json()["detail"]
    client.delete(f"/v1/tasks/{task['id']}", headers=tenant)
    assert client.post("/v1/tasks", json={"name": "fourth", "examples": _labelled(4)}, headers=tenant).status_code == 201
