"""Out-of-scope rejection over HTTP: predict's fields, the threshold override, negatives."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.fakes import FakeEncoder
from tests.helpers import SYNTHETIC, SYNTHETIC_QUERIES, create_task, create_tenant, examples

NEGATIVES = ["tell me a joke", "what is the capital of france", "how do i cook pasta"]
TEXTS = [text for text, _ in SYNTHETIC_QUERIES] + NEGATIVES + ["alarm weather music", "zzz", "!!!"]
AMBIGUITY_MARGIN = 0.1  # the FEWSHOT_AMBIGUITY_MARGIN default


def _ok(response: Any, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    return response.json()


def _predict(client: TestClient, headers: dict[str, str], task_id: str, texts: list[str] = TEXTS) -> list[dict]:
    body = {"texts": texts, "top_k": 3}
    return _ok(client.post(f"/v1/tasks/{task_id}/predict", json=body, headers=headers))["predictions"]


def _check_consistent(predictions: list[dict], threshold: float | None) -> None:
    for p in predictions:
        assert {"label", "score", "top_k", "out_of_scope", "ambiguous", "in_scope_score"} <= set(p)
        assert isinstance(p["out_of_scope"], bool) and isinstance(p["ambiguous"], bool)
        assert isinstance(p["in_scope_score"], float) and math.isfinite(p["in_scope_score"])
        assert (p["label"] is None) == p["out_of_scope"]
        assert p["out_of_scope"] == (threshold is not None and p["in_scope_score"] < threshold)
        if not p["out_of_scope"]:
            assert p["label"] == p["top_k"][0]["label"]
        assert p["score"] == p["top_k"][0]["score"]  # the best label's probability, rejected or not
        gap = p["top_k"][0]["score"] - p["top_k"][1]["score"]
        assert p["ambiguous"] == (gap < AMBIGUITY_MARGIN)


def test_predict_reports_scope_and_ambiguity_consistently(client: TestClient, tenant: dict[str, str]) -> None:
    task = create_task(client, tenant)
    assert isinstance(task["oos_threshold"], float) and task["oos_threshold_override"] is None
    predictions = _predict(client, tenant, task["id"])
    _check_consistent(predictions, task["oos_threshold"])
    assert [p["label"] for p in predictions[: len(SYNTHETIC_QUERIES)]] == [label for _, label in SYNTHETIC_QUERIES]


def test_threshold_override_rejects_everything_and_null_clears_it(client: TestClient, tenant: dict[str, str]) -> None:
    task = create_task(client, tenant)
    calibrated = _predict(client, tenant, task["id"])

    patched = _ok(client.patch(f"/v1/tasks/{task['id']}", json={"oos_threshold": 1e9}, headers=tenant))
    assert patched["oos_threshold"] == 1e9 and patched["oos_threshold_override"] == 1e9
    rejected = _predict(client, tenant, task["id"])
    assert all(p["out_of_scope"] and p["label"] is None for p in rejected)
    _check_consistent(rejected, 1e9)
    # Rejection changes only the decision: the ranking and scores stay.
    assert [(p["top_k"], p["in_scope_score"]) for p in rejected] == [(p["top_k"], p["in_scope_score"]) for p in calibrated]

    cleared = _ok(client.patch(f"/v1/tasks/{task['id']}", json={"oos_threshold": None}, headers=tenant))
    assert cleared["oos_threshold_override"] is None and cleared["oos_threshold"] == task["oos_threshold"]
    assert _predict(client, tenant, task["id"]) == calibrated

    accept_all = _ok(client.patch(f"/v1/tasks/{task['id']}", json={"oos_threshold": -1e9}, headers=tenant))
    assert accept_all["oos_threshold"] == -1e9
    assert not any(p["out_of_scope"] for p in _predict(client, tenant, task["id"]))


def test_threshold_override_given_at_create(client: TestClient, tenant: dict[str, str]) -> None:
    body = {"name": "strict", "examples": examples(), "oos_threshold": 1e9}
    task = _ok(client.post("/v1/tasks", json=body, headers=tenant), 201)
    assert task["oos_threshold"] == 1e9 and task["oos_threshold_override"] == 1e9
    assert all(p["label"] is None for p in _predict(client, tenant, task["id"]))
    # The override belongs to the task, not to a version: it survives appends.
    more = {"examples": [{"text": "turn the music down", "label": "music"}]}
    assert _ok(client.post(f"/v1/tasks/{task['id']}/examples", json=more, headers=tenant))["oos_threshold"] == 1e9


def test_out_of_scope_negatives_are_counted_and_listed(client: TestClient, tenant: dict[str, str]) -> None:
    body = {"name": "with negatives", "examples": examples(), "out_of_scope": NEGATIVES}
    task = _ok(client.post("/v1/tasks", json=body, headers=tenant), 201)
    assert task["num_out_of_scope"] == len(NEGATIVES)
    assert task["num_examples"] == sum(len(texts) for texts in SYNTHETIC.values())
    assert task["labels"] == sorted(SYNTHETIC)  # negatives are no label
    assert isinstance(task["oos_threshold"], float)

    listed = _ok(client.get(f"/v1/tasks/{task['id']}/examples", headers=tenant))["examples"]
    assert sorted(e["text"] for e in listed if e["label"] is None) == sorted(NEGATIVES)
    assert sum(e["label"] is not None for e in listed) == task["num_examples"]
    _check_consistent(_predict(client, tenant, task["id"]), task["oos_threshold"])

    appended = _ok(client.post(f"/v1/tasks/{task['id']}/examples", json={"out_of_scope": ["sing me a lullaby"]},
                               headers=tenant))
    assert appended["num_out_of_scope"] == len(NEGATIVES) + 1 and appended["num_examples"] == task["num_examples"]

    negative_id = next(e["id"] for e in listed if e["label"] is None)
    removed = _ok(client.post(f"/v1/tasks/{task['id']}/remove", json={"example_ids": [negative_id]}, headers=tenant))
    assert removed["num_out_of_scope"] == len(NEGATIVES) and removed["num_examples"] == task["num_examples"]


def test_negatives_alone_do_not_make_a_task(client: TestClient, tenant: dict[str, str]) -> None:
    body = {"name": "only negatives", "examples": [{"text": "play music", "label": "music"}], "out_of_scope": NEGATIVES}
    response = client.post("/v1/tasks", json=body, headers=tenant)
    assert response.status_code == 422 and response.json()["error"] == "validation_error"
    assert _ok(client.get("/v1/tasks", headers=tenant))["total"] == 0


def test_the_reject_quantile_and_ambiguity_margin_settings(build_app: Callable[..., FastAPI],
                                                           fake_encoder: FakeEncoder) -> None:
    thresholds = []
    for overrides in ({}, {"oos_reject_quantile": 0.5, "ambiguity_margin": 1.0}):
        with TestClient(build_app(fake_encoder, **overrides)) as client:
            headers = create_tenant(client, f"tenant-{len(thresholds)}")
            task = create_task(client, headers)
            thresholds.append(task["oos_threshold"])
            predictions = _predict(client, headers, task["id"])
    assert thresholds[1] > thresholds[0]  # the median of the held-out scores rejects more than their 5% quantile
    assert all(p["ambiguous"] for p in predictions)  # no top-2 gap reaches a margin of 1


def test_negatives_reach_the_adaptation(app: FastAPI, client: TestClient, tenant: dict[str, str]) -> None:
    """Posted out-of-scope texts are embedded and handed to the threshold fit (the maths of
    how they move it: tests/models/test_calibration.py)."""
    engine, seen = app.state.engine, []
    original = engine.fit

    def fit(*args: object, **kwargs: object) -> object:
        seen.append(kwargs.get("negatives"))
        return original(*args, **kwargs)

    engine.fit = fit
    try:
        task = _ok(client.post("/v1/tasks", json={"name": "n", "examples": examples(), "out_of_scope": NEGATIVES},
                               headers=tenant), 201)
        _ok(client.post(f"/v1/tasks/{task['id']}/examples", json={"out_of_scope": ["sing me a lullaby"]}, headers=tenant))
    finally:
        engine.fit = original
    assert [None if n is None else tuple(n.shape) for n in seen] == [(len(NEGATIVES), engine.encoder.dim),
                                                                      (len(NEGATIVES) + 1, engine.encoder.dim)]
