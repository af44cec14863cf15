"""POST /v1/tasks/{id}/evaluate: accuracy, macro-F1, per-label scores, confusions, out of scope."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.helpers import SYNTHETIC, SYNTHETIC_QUERIES, create_task

LABELLED = [{"text": text, "label": label} for text, label in SYNTHETIC_QUERIES]
OUT_OF_SCOPE = [{"text": text, "label": None} for text in ("tell me a joke", "how do i cook pasta", "who are you")]


def _ok(response: Any, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    return response.json()


def _evaluate(client: TestClient, headers: dict[str, str], task_id: str, items: list[dict], **extra: Any) -> dict:
    return _ok(client.post(f"/v1/tasks/{task_id}/evaluate", json={"examples": items, **extra}, headers=headers))


def test_report_on_correctly_classified_texts(client: TestClient, tenant: dict[str, str]) -> None:
    task = create_task(client, tenant)
    body = _evaluate(client, tenant, task["id"], LABELLED)
    assert body["version"] == 1
    report = body["report"]
    assert report["num_texts"] == report["num_in_scope"] == len(LABELLED)
    assert report["accuracy"] == 1.0 and report["macro_f1"] == 1.0
    assert set(report["per_label"]) == set(SYNTHETIC)
    for label, scores in report["per_label"].items():
        assert scores["precision"] == scores["recall"] == scores["f1"] == 1.0
        assert scores["support"] == sum(1 for _, gold in SYNTHETIC_QUERIES if gold == label)
    assert report["confusions"] == []
    assert "out_of_scope" not in report  # no out-of-scope gold texts and none rejected


def test_report_counts_confusions_and_per_label_precision_recall(client: TestClient, tenant: dict[str, str]) -> None:
    task = create_task(client, tenant)
    # Two music texts and one alarm text with the wrong gold label "weather".
    items = LABELLED + [{"text": "play a song", "label": "weather"}, {"text": "skip to the next song", "label": "weather"},
                        {"text": "set my alarm", "label": "weather"}]
    report = _evaluate(client, tenant, task["id"], items)["report"]
    assert report["accuracy"] == pytest.approx(4 / 7)
    weather, music = report["per_label"]["weather"], report["per_label"]["music"]
    assert weather["precision"] == 1.0 and weather["recall"] == pytest.approx(2 / 5) and weather["support"] == 5
    assert music["precision"] == pytest.approx(1 / 3) and music["recall"] == 1.0
    assert report["confusions"][0] == {"gold": "weather", "predicted": "music", "count": 2}
    assert {"gold": "weather", "predicted": "alarm", "count": 1} in report["confusions"]
    f1 = {label: scores["f1"] for label, scores in report["per_label"].items()}
    assert report["macro_f1"] == pytest.approx(sum(f1.values()) / 3)


def test_out_of_scope_recall_with_a_threshold_that_rejects_everything(
    client: TestClient, tenant: dict[str, str]
) -> None:
    task = create_task(client, tenant)
    _ok(client.patch(f"/v1/tasks/{task['id']}", json={"oos_threshold": 1.01}, headers=tenant))
    report = _evaluate(client, tenant, task["id"], LABELLED + OUT_OF_SCOPE)["report"]
    assert report["num_texts"] == len(LABELLED) + len(OUT_OF_SCOPE) and report["num_in_scope"] == len(LABELLED)
    oos = report["out_of_scope"]
    assert oos["recall"] == 1.0 and oos["support"] == len(OUT_OF_SCOPE)
    assert oos["precision"] == pytest.approx(len(OUT_OF_SCOPE) / (len(LABELLED) + len(OUT_OF_SCOPE)))
    assert oos["in_scope_rejected"] == 1.0
    assert report["accuracy"] == 0.0  # every in-scope text was rejected
    assert report["top1_accuracy"] == 1.0  # ... but its best label was right: rejection cost all of it
    assert 0.0 <= report["calibration_error"] <= 1.0
    assert 0.0 <= oos["auroc"] <= 1.0
    assert {"gold": "weather", "predicted": None, "count": 2} in report["confusions"]

    _ok(client.patch(f"/v1/tasks/{task['id']}", json={"oos_threshold": None}, headers=tenant))
    calibrated = _evaluate(client, tenant, task["id"], LABELLED + OUT_OF_SCOPE)["report"]
    assert calibrated["accuracy"] == 1.0 and calibrated["out_of_scope"]["in_scope_rejected"] == 0.0


def test_evaluate_a_pinned_version(client: TestClient, tenant: dict[str, str]) -> None:
    task = create_task(client, tenant)
    timer = [{"text": text, "label": "timer"} for text in ("start a timer", "set a timer for ten minutes", "cancel the timer")]
    _ok(client.post(f"/v1/tasks/{task['id']}/examples", json={"examples": timer}, headers=tenant))
    items = LABELLED + [{"text": "start a timer please", "label": "timer"}]
    current = _evaluate(client, tenant, task["id"], items)
    assert current["version"] == 2 and current["report"]["accuracy"] == 1.0
    old = _evaluate(client, tenant, task["id"], items, version=1)
    assert old["version"] == 1 and old["report"]["accuracy"] == pytest.approx(4 / 5)
    assert old["report"]["per_label"]["timer"]["recall"] == 0.0  # version 1 never heard of timers


def test_evaluate_is_validated(client: TestClient, tenant: dict[str, str]) -> None:
    task = create_task(client, tenant)
    for body in ({"examples": []}, {"examples": [{"text": "x"}]}, {"examples": [{"text": "", "label": "a"}]},
                 {"examples": LABELLED, "version": 0}, {"texts": ["x"]}):
        response = client.post(f"/v1/tasks/{task['id']}/evaluate", json=body, headers=tenant)
        assert response.status_code == 422 and response.json()["error"] == "validation_error", body
    missing = client.post(f"/v1/tasks/{task['id']}/evaluate", json={"examples": LABELLED, "version": 5}, headers=tenant)
    assert missing.status_code == 404
    unknown = client.post("/v1/tasks/0123456789abcdef0123456789abcdef/evaluate", json={"examples": LABELLED},
                          headers=tenant)
    assert unknown.status_code == 404


def test_report_says_how_well_scores_are_calibrated_and_separate_out_of_scope_texts(
    client: TestClient, tenant: dict[str, str]
) -> None:
    task = create_task(client, tenant)
    items = LABELLED + OUT_OF_SCOPE
    report = _evaluate(client, tenant, task["id"], items)["report"]
    predictions = _ok(client.post(f"/v1/tasks/{task['id']}/predict",
                                  json={"texts": [item["text"] for item in items], "top_k": 1}, headers=tenant))["predictions"]
    inside, outside = predictions[: len(LABELLED)], predictions[len(LABELLED):]
    # The same figures from the predictions themselves: every top-1 label is right here, so
    # each bin's error is one minus its mean score, and the whole is one minus the mean score.
    assert report["top1_accuracy"] == 1.0
    mean_score = sum(p["top_k"][0]["score"] for p in inside) / len(inside)
    assert report["calibration_error"] == pytest.approx(1 - mean_score, abs=1e-5)
    pairs = [(a["in_scope_score"], b["in_scope_score"]) for a in inside for b in outside]
    expected = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs) / len(pairs)
    assert report["out_of_scope"]["auroc"] == pytest.approx(expected)
