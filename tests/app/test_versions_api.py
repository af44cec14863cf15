"""Versions over HTTP: append, list versions, pinned predict, rollback, remove, PATCH."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.helpers import SYNTHETIC, SYNTHETIC_QUERIES, create_task

TIMER = ["start a timer for ten minutes", "set a timer", "how long is left on my timer", "cancel the timer"]
QUERIES = [text for text, _ in SYNTHETIC_QUERIES] + ["start a timer please", "timer for five minutes"]


def _ok(response: Any, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    return response.json()


def _append_timer(client: TestClient, headers: dict[str, str], task_id: str) -> dict:
    body = {"examples": [{"text": text, "label": "timer"} for text in TIMER]}
    return _ok(client.post(f"/v1/tasks/{task_id}/examples", json=body, headers=headers))


def _predict(client: TestClient, headers: dict[str, str], task_id: str, version: int | None = None) -> dict:
    body: dict[str, Any] = {"texts": QUERIES, "top_k": 5}
    if version is not None:
        body["version"] = version
    return _ok(client.post(f"/v1/tasks/{task_id}/predict", json=body, headers=headers))


def _versions(client: TestClient, headers: dict[str, str], task_id: str) -> dict:
    return _ok(client.get(f"/v1/tasks/{task_id}/versions", headers=headers))


def _examples(client: TestClient, headers: dict[str, str], task_id: str, version: int | None = None) -> dict:
    params = {"version": version} if version is not None else {}
    return _ok(client.get(f"/v1/tasks/{task_id}/examples", params=params, headers=headers))


def test_append_makes_version_n_plus_one_with_its_parent(client: TestClient, tenant: dict[str, str]) -> None:
    task = create_task(client, tenant)
    assert task["version"] == 1
    updated = _append_timer(client, tenant, task["id"])
    assert updated["version"] == 2 and "timer" in updated["labels"]
    more = {"examples": [{"text": "turn the music down", "label": "music"}]}
    assert _ok(client.post(f"/v1/tasks/{task['id']}/examples", json=more, headers=tenant))["version"] == 3

    listed = _versions(client, tenant, task["id"])
    assert listed["current"] == 3
    assert [(v["version"], v["change"], v["parent_version"]) for v in listed["versions"]] == [
        (1, "create", None), (2, "append", 1), (3, "append", 2),
    ]
    first, second, third = listed["versions"]
    assert first["labels"] == sorted(SYNTHETIC) and second["labels"] == sorted([*SYNTHETIC, "timer"])
    assert (first["num_examples"], second["num_examples"], third["num_examples"]) == (12, 16, 17)
    assert all(v["adapted_ms"] >= 0 for v in listed["versions"])
    times = [datetime.fromisoformat(v["created_at"].replace("Z", "+00:00")) for v in listed["versions"]]
    assert all(t.utcoffset() == timedelta(0) for t in times) and times == sorted(times)  # UTC, like the task's times


def test_examples_are_listed_per_version_with_ids(client: TestClient, tenant: dict[str, str]) -> None:
    task = create_task(client, tenant)
    _append_timer(client, tenant, task["id"])
    v1, v2 = _examples(client, tenant, task["id"], 1), _examples(client, tenant, task["id"])
    assert v1["version"] == 1 and v2["version"] == 2
    assert len(v1["examples"]) == 12 and len(v2["examples"]) == 16
    assert {e["id"] for e in v1["examples"]} < {e["id"] for e in v2["examples"]}
    assert sorted(e["text"] for e in v2["examples"] if e["label"] == "timer") == sorted(TIMER)
    response = client.get(f"/v1/tasks/{task['id']}/examples", params={"version": 9}, headers=tenant)
    assert response.status_code == 404 and response.json()["error"] == "not_found"


def test_predict_pinned_to_an_old_version_uses_its_labels(client: TestClient, tenant: dict[str, str]) -> None:
    task = create_task(client, tenant)
    before = _predict(client, tenant, task["id"])
    _append_timer(client, tenant, task["id"])

    pinned = _predict(client, tenant, task["id"], version=1)
    assert pinned == before  # the old adapter answers exactly as it did
    assert pinned["version"] == 1
    assert all({s["label"] for s in p["top_k"]} <= set(SYNTHETIC) for p in pinned["predictions"])

    current = _predict(client, tenant, task["id"])
    assert current["version"] == 2
    assert [p["label"] for p in current["predictions"][-2:]] == ["timer", "timer"]
    assert _predict(client, tenant, task["id"], version=2) == current

    missing = client.post(f"/v1/tasks/{task['id']}/predict", json={"texts": ["x"], "version": 3}, headers=tenant)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    invalid = client.post(f"/v1/tasks/{task['id']}/predict", json={"texts": ["x"], "version": 0}, headers=tenant)
    assert invalid.status_code == 422


def test_rollback_makes_a_new_version_equal_to_the_target(client: TestClient, tenant: dict[str, str]) -> None:
    task = create_task(client, tenant)
    at_v1 = _predict(client, tenant, task["id"])
    _append_timer(client, tenant, task["id"])

    rolled = _ok(client.post(f"/v1/tasks/{task['id']}/rollback", json={"version": 1}, headers=tenant))
    assert rolled["version"] == 3
    assert rolled["labels"] == task["labels"] and rolled["num_examples"] == task["num_examples"]
    assert rolled["oos_threshold"] == task["oos_threshold"] and rolled["temperature"] == task["temperature"]
    assert _ok(client.get(f"/v1/tasks/{task['id']}", headers=tenant))["version"] == 3

    after = _predict(client, tenant, task["id"])
    assert after["version"] == 3
    assert after["predictions"] == at_v1["predictions"]
    assert [e["id"] for e in _examples(client, tenant, task["id"])["examples"]] == [
        e["id"] for e in _examples(client, tenant, task["id"], 1)["examples"]
    ]
    listed = _versions(client, tenant, task["id"])
    assert listed["current"] == 3
    assert (listed["versions"][-1]["change"], listed["versions"][-1]["parent_version"]) == ("rollback", 1)

    # Rolling forward again to version 2 brings the timer back.
    forward = _ok(client.post(f"/v1/tasks/{task['id']}/rollback", json={"version": 2}, headers=tenant))
    assert forward["version"] == 4 and "timer" in forward["labels"]


def test_rollback_to_an_unknown_version_is_404_and_changes_nothing(client: TestClient, tenant: dict[str, str]) -> None:
    task = create_task(client, tenant)
    response = client.post(f"/v1/tasks/{task['id']}/rollback", json={"version": 7}, headers=tenant)
    assert response.status_code == 404 and response.json()["error"] == "not_found"
    assert client.post(f"/v1/tasks/{task['id']}/rollback", json={"version": 0}, headers=tenant).status_code == 422
    assert _versions(client, tenant, task["id"])["current"] == 1
    assert len(_versions(client, tenant, task["id"])["versions"]) == 1


def test_remove_examples_by_id(client: TestClient, tenant: dict[str, str]) -> None:
    task = create_task(client, tenant)
    listed = _examples(client, tenant, task["id"])["examples"]
    drop = [e["id"] for e in listed if e["label"] == "weather"][:2]
    updated = _ok(client.post(f"/v1/tasks/{task['id']}/remove", json={"example_ids": drop}, headers=tenant))
    assert updated["version"] == 2 and updated["num_examples"] == task["num_examples"] - 2
    assert updated["labels"] == task["labels"]
    remaining = {e["id"] for e in _examples(client, tenant, task["id"])["examples"]}
    assert remaining == {e["id"] for e in listed} - set(drop)
    assert len(_examples(client, tenant, task["id"], 1)["examples"]) == 12  # version 1 is immutable
    last = _versions(client, tenant, task["id"])["versions"][-1]
    assert (last["change"], last["parent_version"]) == ("remove", 1)


def test_remove_a_label_drops_it_and_its_examples(client: TestClient, tenant: dict[str, str]) -> None:
    task = create_task(client, tenant)
    _append_timer(client, tenant, task["id"])
    updated = _ok(client.post(f"/v1/tasks/{task['id']}/remove", json={"labels": ["timer"]}, headers=tenant))
    assert updated["version"] == 3
    assert updated["labels"] == sorted(SYNTHETIC) and updated["num_examples"] == 12
    assert all(e["label"] != "timer" for e in _examples(client, tenant, task["id"])["examples"])
    for prediction in _predict(client, tenant, task["id"])["predictions"]:
        assert all(s["label"] != "timer" for s in prediction["top_k"])


@pytest.mark.parametrize("body", [{"example_ids": [987654]}, {"labels": ["cooking"]},
                                  {"labels": ["weather", "cooking"]}])
def test_removing_unknown_ids_or_labels_is_404_and_changes_nothing(
    client: TestClient, tenant: dict[str, str], body: dict
) -> None:
    task = create_task(client, tenant)
    response = client.post(f"/v1/tasks/{task['id']}/remove", json=body, headers=tenant)
    assert response.status_code == 404 and response.json()["error"] == "not_found"
    assert _ok(client.get(f"/v1/tasks/{task['id']}", headers=tenant)) == task
    assert len(_versions(client, tenant, task["id"])["versions"]) == 1


def test_remove_that_would_leave_one_label_or_nothing_is_422(client: TestClient, tenant: dict[str, str]) -> None:
    task = create_task(client, tenant)
    for body in ({"labels": ["weather", "music"]}, {}, {"example_ids": [], "labels": []}):
        response = client.post(f"/v1/tasks/{task['id']}/remove", json=body, headers=tenant)
        assert response.status_code == 422 and response.json()["error"] == "validation_error", body
    assert len(_versions(client, tenant, task["id"])["versions"]) == 1


def test_patch_renames_and_sets_or_clears_the_threshold(client: TestClient, tenant: dict[str, str]) -> None:
    task = create_task(client, tenant)
    calibrated = task["oos_threshold"]
    assert isinstance(calibrated, float) and task["oos_threshold_override"] is None

    renamed = _ok(client.patch(f"/v1/tasks/{task['id']}", json={"name": "helper"}, headers=tenant))
    assert renamed["name"] == "helper" and renamed["version"] == 1 and renamed["oos_threshold"] == calibrated

    overridden = _ok(client.patch(f"/v1/tasks/{task['id']}", json={"oos_threshold": 0.42}, headers=tenant))
    assert overridden["oos_threshold_override"] == 0.42 and overridden["oos_threshold"] == 0.42
    assert overridden["name"] == "helper"

    untouched = _ok(client.patch(f"/v1/tasks/{task['id']}", json={"name": "helper 2"}, headers=tenant))
    assert untouched["oos_threshold_override"] == 0.42  # a PATCH without the field keeps it

    cleared = _ok(client.patch(f"/v1/tasks/{task['id']}", json={"oos_threshold": None}, headers=tenant))
    assert cleared["oos_threshold_override"] is None and cleared["oos_threshold"] == calibrated

    fetched = _ok(client.get(f"/v1/tasks/{task['id']}", headers=tenant))
    assert fetched["name"] == "helper 2" and fetched["version"] == 1
    assert len(_versions(client, tenant, task["id"])["versions"]) == 1  # PATCH makes no version

    for body in ({"name": ""}, {"name": "x" * 201}, {"oos_threshold": "high"}, {"version": 2}):
        response = client.patch(f"/v1/tasks/{task['id']}", json=body, headers=tenant)
        assert response.status_code == 422, body
    gone = client.patch("/v1/tasks/0123456789abcdef0123456789abcdef", json={"name": "x"}, headers=tenant)
    assert gone.status_code == 404
