"""Unlabelled texts over HTTP: stored with a version, used to refine prototypes,
listed, removed, exported and imported, and bounded by their own limit."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.helpers import SYNTHETIC, SYNTHETIC_QUERIES, UNLABELLED_POOL

NAMES = [{"name": name} for name in sorted(SYNTHETIC)]
GOLD = [label for _, label in SYNTHETIC_QUERIES]


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"max_unlabelled_per_task": 10}


def _ok(response: Any, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    return response.json()


def _labels(client: TestClient, headers: dict[str, str], task_id: str) -> list[str]:
    body = {"texts": [text for text, _ in SYNTHETIC_QUERIES], "top_k": 1}
    predictions = _ok(client.post(f"/v1/tasks/{task_id}/predict", json=body, headers=headers))["predictions"]
    return [p["top_k"][0]["label"] for p in predictions]


def test_unlabelled_texts_refine_a_zero_shot_task(client: TestClient, tenant: dict[str, str]) -> None:
    plain = _ok(client.post("/v1/tasks", json={"name": "names", "labels": NAMES}, headers=tenant), 201)
    body = {"name": "names+pool", "labels": NAMES, "unlabelled": UNLABELLED_POOL}
    pooled = _ok(client.post("/v1/tasks", json=body, headers=tenant), 201)
    assert pooled["num_unlabelled"] == len(UNLABELLED_POOL)
    assert pooled["num_examples"] == 0 and pooled["num_out_of_scope"] == 0
    assert pooled["labels"] == plain["labels"] == sorted(SYNTHETIC)
    assert _labels(client, tenant, plain["id"]) != GOLD
    assert _labels(client, tenant, pooled["id"]) == GOLD


def test_appending_unlabelled_texts_makes_a_version_that_uses_them(client: TestClient, tenant: dict[str, str]) -> None:
    task = _ok(client.post("/v1/tasks", json={"name": "names", "labels": NAMES}, headers=tenant), 201)
    grown = _ok(client.post(f"/v1/tasks/{task['id']}/examples", json={"unlabelled": UNLABELLED_POOL}, headers=tenant))
    assert grown["version"] == 2 and grown["num_unlabelled"] == len(UNLABELLED_POOL)
    assert _labels(client, tenant, task["id"]) == GOLD

    listed = _ok(client.get(f"/v1/tasks/{task['id']}/examples", headers=tenant))["examples"]
    assert sorted(e["text"] for e in listed) == sorted(UNLABELLED_POOL)
    assert {(e["kind"], e["label"]) for e in listed} == {("unlabelled", None)}

    removed = _ok(client.post(f"/v1/tasks/{task['id']}/remove", json={"unlabelled": True}, headers=tenant))
    assert removed["version"] == 3 and removed["num_unlabelled"] == 0 and removed["labels"] == sorted(SYNTHETIC)
    assert _labels(client, tenant, task["id"]) != GOLD
    assert _labels(client, tenant, task["id"]) == _labels_of_version(client, tenant, task["id"], 1)


def _labels_of_version(client: TestClient, headers: dict[str, str], task_id: str, version: int) -> list[str]:
    body = {"texts": [text for text, _ in SYNTHETIC_QUERIES], "top_k": 1, "version": version}
    predictions = _ok(client.post(f"/v1/tasks/{task_id}/predict", json=body, headers=headers))["predictions"]
    return [p["top_k"][0]["label"] for p in predictions]


def test_kinds_are_counted_apart(client: TestClient, tenant: dict[str, str]) -> None:
    body = {"name": "mixed", "examples": [{"text": "play a song", "label": "music"}], "labels": NAMES,
            "out_of_scope": ["book a flight"], "unlabelled": UNLABELLED_POOL[:3]}
    task = _ok(client.post("/v1/tasks", json=body, headers=tenant), 201)
    assert (task["num_examples"], task["num_out_of_scope"], task["num_unlabelled"]) == (1, 1, 3)
    kinds = [e["kind"] for e in _ok(client.get(f"/v1/tasks/{task['id']}/examples", headers=tenant))["examples"]]
    assert sorted(kinds) == ["labelled", "out_of_scope", "unlabelled", "unlabelled", "unlabelled"]
    rolled = _ok(client.post(f"/v1/tasks/{task['id']}/rollback", json={"version": 1}, headers=tenant))
    assert (rolled["num_examples"], rolled["num_out_of_scope"], rolled["num_unlabelled"]) == (1, 1, 3)


def test_export_and_import_carry_unlabelled_texts(client: TestClient, tenant: dict[str, str]) -> None:
    body = {"name": "names+pool", "labels": NAMES, "unlabelled": UNLABELLED_POOL}
    task = _ok(client.post("/v1/tasks", json=body, headers=tenant), 201)
    document = _ok(client.get(f"/v1/tasks/{task['id']}/export", headers=tenant))
    assert document["format_version"] == 2 and sorted(document["unlabelled"]) == sorted(UNLABELLED_POOL)
    copy = _ok(client.post("/v1/tasks/import", json=document, headers=tenant), 201)
    assert copy["num_unlabelled"] == len(UNLABELLED_POOL)
    assert _labels(client, tenant, copy["id"]) == GOLD

    plain = _ok(client.post("/v1/tasks", json={"name": "names", "labels": NAMES}, headers=tenant), 201)
    old_style = _ok(client.get(f"/v1/tasks/{plain['id']}/export", headers=tenant))
    assert old_style["format_version"] == 1 and old_style["unlabelled"] == []


def test_the_unlabelled_limit_is_413_and_leaves_the_task_as_it_was(client: TestClient, tenant: dict[str, str]) -> None:
    task = _ok(client.post("/v1/tasks", json={"name": "names", "labels": NAMES, "unlabelled": UNLABELLED_POOL},
                           headers=tenant), 201)
    more = [f"another unlabelled text {i}" for i in range(4)]  # 7 + 4 > 10
    response = client.post(f"/v1/tasks/{task['id']}/examples", json={"unlabelled": more}, headers=tenant)
    assert response.status_code == 413 and response.json()["error"] == "limit_exceeded", response.text
    assert "unlabelled" in response.json()["detail"]
    assert _ok(client.get(f"/v1/tasks/{task['id']}", headers=tenant))["version"] == 1
    response = client.post("/v1/tasks", json={"name": "t", "labels": NAMES, "unlabelled": [""]}, headers=tenant)
    assert response.status_code == 422, response.text
