"""Tasks survive a restart; a new encoder makes the service rebuild adapters."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tests.fakes import FakeEncoder
from tests.helpers import SYNTHETIC_QUERIES, create_task, create_tenant

QUERIES = {"texts": [query for query, _ in SYNTHETIC_QUERIES], "top_k": 3}


def _first_run(build_app: Callable[..., FastAPI]) -> tuple[dict[str, str], dict, dict]:
    """Create a tenant and a task, predict, and shut the app down."""
    with TestClient(build_app(FakeEncoder())) as client:
        headers = create_tenant(client)
        task = create_task(client, headers)
        predicted = client.post(f"/v1/tasks/{task['id']}/predict", json=QUERIES, headers=headers).json()
    return headers, task, predicted


def _fingerprints(db_engine: Engine, task_id: str) -> tuple[set[str], set[str]]:
    with db_engine.connect() as connection:
        adapters = connection.execute(
            text("SELECT encoder_fingerprint FROM adapter_versions WHERE task_id = :t"), {"t": task_id}
        ).scalars()
        examples = connection.execute(
            text("SELECT embedding_fingerprint FROM examples WHERE task_id = :t"), {"t": task_id}
        ).scalars()
        return set(adapters), set(examples)


def test_restart_with_the_same_encoder_gives_identical_predictions(build_app: Callable[..., FastAPI]) -> None:
    headers, task, predicted = _first_run(build_app)
    encoder = FakeEncoder()
    with TestClient(build_app(encoder)) as client:
        assert client.get(f"/v1/tasks/{task['id']}", headers=headers).json() == task
        again = client.post(f"/v1/tasks/{task['id']}/predict", json=QUERIES, headers=headers).json()
    assert again == predicted
    assert encoder.num_encoded == len(QUERIES["texts"])  # the stored adapter was used: no support re-embedding


def test_new_encoder_rebuilds_the_adapter(build_app: Callable[..., FastAPI], db_engine: Engine) -> None:
    headers, task, predicted = _first_run(build_app)
    assert _fingerprints(db_engine, task["id"]) == ({"fake-encoder-v1"}, {"fake-encoder-v1"})
    encoder = FakeEncoder(fingerprint="fake-encoder-v2")
    with TestClient(build_app(encoder)) as client:
        assert client.get("/healthz").json()["encoder"] == "fake-encoder-v2"
        response = client.post(f"/v1/tasks/{task['id']}/predict", json=QUERIES, headers=headers)
        assert response.status_code == 200
        assert [p["label"] for p in response.json()["predictions"]] == [p["label"] for p in predicted["predictions"]]
        assert encoder.num_encoded == task["num_examples"] + len(QUERIES["texts"])  # support re-embedded once
        client.post(f"/v1/tasks/{task['id']}/predict", json=QUERIES, headers=headers)
        assert encoder.num_encoded == task["num_examples"] + 2 * len(QUERIES["texts"])  # then cached
        fetched = client.get(f"/v1/tasks/{task['id']}", headers=headers).json()
        assert (fetched["version"], fetched["num_examples"]) == (1, task["num_examples"])
    assert _fingerprints(db_engine, task["id"]) == ({"fake-encoder-v2"}, {"fake-encoder-v2"})


def test_append_after_encoder_change_reembeds_old_examples(
    build_app: Callable[..., FastAPI], db_engine: Engine
) -> None:
    headers, task, _ = _first_run(build_app)
    with TestClient(build_app(FakeEncoder(fingerprint="fake-encoder-v2"))) as client:
        body = {"examples": [{"text": "start a timer", "label": "timer"}, {"text": "set a timer", "label": "timer"}]}
        updated = client.post(f"/v1/tasks/{task['id']}/examples", json=body, headers=headers).json()
        assert updated["version"] == 2 and "timer" in updated["labels"]
        predicted = client.post(f"/v1/tasks/{task['id']}/predict", json={"texts": ["a timer please"]}, headers=headers)
        assert predicted.json()["predictions"][0]["label"] == "timer"
    adapters, examples = _fingerprints(db_engine, task["id"])
    assert examples == {"fake-encoder-v2"}
    assert "fake-encoder-v2" in adapters
