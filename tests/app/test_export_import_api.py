"""Export a task as one JSON document and import it elsewhere; tenant isolation of the new endpoints."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.helpers import SYNTHETIC, SYNTHETIC_QUERIES, create_task, examples

NEGATIVES = ["tell me a joke", "how do i cook pasta"]
TEXTS = [text for text, _ in SYNTHETIC_QUERIES] + NEGATIVES + ["start a timer", "banana"]
TIMER_DESCRIPTION = "start, stop or check a timer"


def _ok(response: Any, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    return response.json()


def _predict(client: TestClient, headers: dict[str, str], task_id: str) -> list[dict]:
    body = {"texts": TEXTS, "top_k": 4}
    return _ok(client.post(f"/v1/tasks/{task_id}/predict", json=body, headers=headers))["predictions"]


def _rich_task(client: TestClient, headers: dict[str, str]) -> dict:
    """Examples, a zero-shot label with a description, negatives and a threshold override."""
    body = {"name": "assistant", "examples": examples(), "out_of_scope": NEGATIVES, "oos_threshold": 0.3,
            "labels": [{"name": "timer", "description": TIMER_DESCRIPTION}]}
    return _ok(client.post("/v1/tasks", json=body, headers=headers), 201)


def test_export_document_format(client: TestClient, tenant: dict[str, str]) -> None:
    task = _rich_task(client, tenant)
    document = _ok(client.get(f"/v1/tasks/{task['id']}/export", headers=tenant))
    assert document["format"] == "fewshot-task" and document["format_version"] == 1
    assert document["name"] == "assistant" and document["version"] == 1
    assert document["labels"] == [{"name": "timer", "description": TIMER_DESCRIPTION}]  # the declared labels
    assert sorted(map(tuple, (e.values() for e in document["examples"]))) == sorted(
        (e["text"], e["label"]) for e in examples()
    )
    assert document["out_of_scope"] == NEGATIVES
    assert document["settings"] == {"oos_threshold": 0.3}


def test_export_then_import_into_another_tenant_predicts_identically(
    client: TestClient, tenant: dict[str, str], other_tenant: dict[str, str]
) -> None:
    task = _rich_task(client, tenant)
    document = _ok(client.get(f"/v1/tasks/{task['id']}/export", headers=tenant))
    imported = _ok(client.post("/v1/tasks/import", json=document, headers=other_tenant), 201)
    assert imported["id"] != task["id"] and imported["version"] == 1
    for field in ("name", "labels", "label_descriptions", "num_examples", "num_out_of_scope", "oos_threshold",
                  "oos_threshold_override", "temperature"):
        assert imported[field] == task[field], field
    original, copy = _predict(client, tenant, task["id"]), _predict(client, other_tenant, imported["id"])
    assert [p["label"] for p in copy] == [p["label"] for p in original]
    for a, b in zip(original, copy):
        assert [s["label"] for s in a["top_k"]] == [s["label"] for s in b["top_k"]]
        assert [s["score"] for s in b["top_k"]] == pytest.approx([s["score"] for s in a["top_k"]], abs=1e-6)
        assert b["in_scope_score"] == pytest.approx(a["in_scope_score"], abs=1e-6)
        assert (b["out_of_scope"], b["ambiguous"]) == (a["out_of_scope"], a["ambiguous"])
    # Exporting the copy gives the same document back.
    assert _ok(client.get(f"/v1/tasks/{imported['id']}/export", headers=other_tenant)) == document


def test_a_plain_task_round_trips_too(client: TestClient, tenant: dict[str, str]) -> None:
    task = create_task(client, tenant)
    document = _ok(client.get(f"/v1/tasks/{task['id']}/export", headers=tenant))
    assert document["labels"] == [] and document["settings"] == {"oos_threshold": None}
    imported = _ok(client.post("/v1/tasks/import", json=document, headers=tenant), 201)
    assert imported["labels"] == task["labels"] and imported["num_examples"] == task["num_examples"]
    assert imported["label_descriptions"] == {} and imported["oos_threshold"] == task["oos_threshold"]
    assert _predict(client, tenant, imported["id"]) == _predict(client, tenant, task["id"])
    assert _ok(client.get("/v1/tasks", headers=tenant))["total"] == 2


def test_export_a_pinned_version(client: TestClient, tenant: dict[str, str]) -> None:
    task = create_task(client, tenant)
    extra = {"examples": [{"text": "start a timer", "label": "timer"}, {"text": "stop the timer", "label": "timer"}]}
    _ok(client.post(f"/v1/tasks/{task['id']}/examples", json=extra, headers=tenant))
    current = _ok(client.get(f"/v1/tasks/{task['id']}/export", headers=tenant))
    old = _ok(client.get(f"/v1/tasks/{task['id']}/export", params={"version": 1}, headers=tenant))
    assert current["version"] == 2 and len(current["examples"]) == 14
    assert old["version"] == 1 and {e["label"] for e in old["examples"]} == set(SYNTHETIC)
    assert client.get(f"/v1/tasks/{task['id']}/export", params={"version": 3}, headers=tenant).status_code == 404


@pytest.mark.parametrize("change", [
    {"format": "something-else"},
    {"format_version": 3},
    {"unlabelled": [3]},
    {"name": ""},
    {"name": None},
    {"examples": [{"text": "play music"}]},
    {"examples": "not a list"},
    {"labels": [{"description": "no name"}]},
    {"settings": {"oos_threshold": "high"}},
    {"out_of_scope": [3]},
])
def test_import_format_errors_are_422(client: TestClient, tenant: dict[str, str], change: dict) -> None:
    task = create_task(client, tenant)
    document = _ok(client.get(f"/v1/tasks/{task['id']}/export", headers=tenant))
    response = client.post("/v1/tasks/import", json={**document, **change}, headers=tenant)
    assert response.status_code == 422 and response.json()["error"] == "validation_error", response.text
    assert _ok(client.get("/v1/tasks", headers=tenant))["total"] == 1


def test_import_of_an_unusable_task_is_422(client: TestClient, tenant: dict[str, str]) -> None:
    document = {"format": "fewshot-task", "format_version": 1, "name": "one label",
                "examples": [{"text": "play music", "label": "music"}]}
    response = client.post("/v1/tasks/import", json=document, headers=tenant)
    assert response.status_code == 422 and response.json()["error"] == "validation_error"
    assert client.post("/v1/tasks/import", json=document).status_code == 401


def test_the_new_endpoints_keep_tenants_apart(
    client: TestClient, tenant: dict[str, str], other_tenant: dict[str, str]
) -> None:
    task = create_task(client, tenant)
    base = f"/v1/tasks/{task['id']}"
    calls = [
        ("get", f"{base}/export", None), ("get", f"{base}/versions", None), ("get", f"{base}/examples", None),
        ("patch", base, {"name": "stolen"}), ("post", f"{base}/rollback", {"version": 1}),
        ("post", f"{base}/remove", {"labels": ["weather"]}), ("post", f"{base}/evaluate", {"examples": [
            {"text": "play music", "label": "music"}]}),
        ("post", f"{base}/predict", {"texts": ["play music"], "version": 1}),
        ("post", f"{base}/examples", {"out_of_scope": ["hello"]}),
    ]
    for method, path, body in calls:
        response = client.request(method, path, json=body, headers=other_tenant)
        assert response.status_code == 404 and response.json() == {
            "error": "not_found", "detail": f"task {task['id']} not found"
        }, (method, path)
    assert _ok(client.get(base, headers=tenant)) == task
    assert len(_ok(client.get(f"{base}/versions", headers=tenant))["versions"]) == 1
