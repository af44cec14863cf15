"""Zero-shot labels over HTTP: a task from label descriptions alone, then examples."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.helpers import SYNTHETIC, SYNTHETIC_QUERIES, examples

DESCRIPTIONS = {
    "weather": "questions about the weather forecast: will it rain or be sunny today or tomorrow",
    "music": "play music or a song",
    "alarm": "set or cancel an alarm",
}
LABELS = [{"name": name, "description": description} for name, description in DESCRIPTIONS.items()]


def _ok(response: Any, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    return response.json()


def _accuracy(client: TestClient, headers: dict[str, str], task_id: str) -> tuple[float, list[dict]]:
    body = {"texts": [text for text, _ in SYNTHETIC_QUERIES], "top_k": 3}
    predictions = _ok(client.post(f"/v1/tasks/{task_id}/predict", json=body, headers=headers))["predictions"]
    correct = sum(p["top_k"][0]["label"] == label for p, (_, label) in zip(predictions, SYNTHETIC_QUERIES))
    return correct / len(SYNTHETIC_QUERIES), predictions


def test_a_task_from_label_descriptions_alone_predicts(client: TestClient, tenant: dict[str, str]) -> None:
    task = _ok(client.post("/v1/tasks", json={"name": "zero-shot", "labels": LABELS}, headers=tenant), 201)
    assert task["labels"] == sorted(DESCRIPTIONS)
    assert task["label_descriptions"] == DESCRIPTIONS
    assert task["num_examples"] == 0 and task["num_out_of_scope"] == 0

    accuracy, predictions = _accuracy(client, tenant, task["id"])
    assert accuracy == 1.0
    for p in predictions:
        assert {s["label"] for s in p["top_k"]} == set(DESCRIPTIONS)
        assert (p["label"] is None) == p["out_of_scope"]

    listed = _ok(client.get(f"/v1/tasks/{task['id']}/examples", headers=tenant))
    assert listed["examples"] == [] and listed["label_descriptions"] == DESCRIPTIONS


def test_appending_examples_keeps_a_zero_shot_task_working(client: TestClient, tenant: dict[str, str]) -> None:
    task = _ok(client.post("/v1/tasks", json={"name": "zero-shot", "labels": LABELS}, headers=tenant), 201)
    before, _ = _accuracy(client, tenant, task["id"])

    updated = _ok(client.post(f"/v1/tasks/{task['id']}/examples", json={"examples": examples()}, headers=tenant))
    assert updated["version"] == 2
    assert updated["num_examples"] == sum(len(texts) for texts in SYNTHETIC.values())
    assert updated["label_descriptions"] == DESCRIPTIONS  # descriptions stay with their labels
    after, _ = _accuracy(client, tenant, task["id"])
    assert after >= before and after == 1.0
    # Calibration needs held-out support texts: it exists once examples do.
    assert isinstance(updated["oos_threshold"], float)


def test_labels_mix_descriptions_names_and_examples(client: TestClient, tenant: dict[str, str]) -> None:
    body = {
        "name": "mixed",
        "labels": [{"name": "weather", "description": DESCRIPTIONS["weather"]}, {"name": "alarm"}],
        "examples": [{"text": text, "label": "music"} for text in SYNTHETIC["music"]],
    }
    task = _ok(client.post("/v1/tasks", json=body, headers=tenant), 201)
    assert task["labels"] == ["alarm", "music", "weather"]
    assert task["label_descriptions"] == {"weather": DESCRIPTIONS["weather"]}  # a bare name has no description
    assert task["num_examples"] == len(SYNTHETIC["music"])
    accuracy, _ = _accuracy(client, tenant, task["id"])
    assert accuracy >= 0.75

    # A description can be given later; a new zero-shot label can be added too.
    later = {"labels": [{"name": "alarm", "description": DESCRIPTIONS["alarm"]}, {"name": "timer", "description": "timers"}]}
    updated = _ok(client.post(f"/v1/tasks/{task['id']}/examples", json=later, headers=tenant))
    assert updated["labels"] == ["alarm", "music", "timer", "weather"]
    assert updated["label_descriptions"] == {"weather": DESCRIPTIONS["weather"], "alarm": DESCRIPTIONS["alarm"],
                                             "timer": "timers"}


def test_zero_shot_labels_are_validated(client: TestClient, tenant: dict[str, str]) -> None:
    for body in (
        {"name": "one label", "labels": [{"name": "weather", "description": "the weather"}]},
        {"name": "no name", "labels": [{"description": "the weather"}, {"name": "music"}]},
        {"name": "empty name", "labels": [{"name": ""}, {"name": "music"}]},
        {"name": "extra field", "labels": [{"name": "a", "examples": []}, {"name": "b"}]},
        {"name": "nothing"},
    ):
        response = client.post("/v1/tasks", json=body, headers=tenant)
        assert response.status_code == 422 and response.json()["error"] == "validation_error", body
    assert _ok(client.get("/v1/tasks", headers=tenant))["total"] == 0


def test_label_descriptions_are_never_held_out_for_the_temperature(client: TestClient, tenant: dict[str, str]) -> None:
    """With one example per label plus its description nothing real can be held out, so
    the temperature stays 1.0 (held-out descriptions used to set it); the out-of-scope
    threshold still comes from every row."""
    one_each = [{"text": next(text for text, gold in SYNTHETIC_QUERIES if gold == label), "label": label}
                for label in DESCRIPTIONS]
    task = _ok(client.post("/v1/tasks", json={"name": "one-shot", "labels": LABELS, "examples": one_each},
                           headers=tenant), 201)
    assert task["num_examples"] == len(DESCRIPTIONS)
    assert task["temperature"] == 1.0 and task["oos_threshold"] is not None


def test_a_description_is_replaced_kept_or_cleared(client: TestClient, tenant: dict[str, str]) -> None:
    task = _ok(client.post("/v1/tasks", json={"name": "d", "labels": LABELS}, headers=tenant), 201)
    path = f"/v1/tasks/{task['id']}/examples"
    kept = _ok(client.post(path, json={"labels": [{"name": "music"}]}, headers=tenant))
    assert kept["label_descriptions"]["music"] == DESCRIPTIONS["music"]
    replaced = _ok(client.post(path, json={"labels": [{"name": "music", "description": "  songs please "}]}, headers=tenant))
    assert replaced["label_descriptions"]["music"] == "songs please"
    cleared = _ok(client.post(path, json={"labels": [{"name": "music", "description": ""}]}, headers=tenant))
    assert "music" not in cleared["label_descriptions"] and "music" in cleared["labels"]
    exported = _ok(client.get(f"/v1/tasks/{task['id']}/export", headers=tenant))
    assert {"name": "music", "description": None} in exported["labels"]
