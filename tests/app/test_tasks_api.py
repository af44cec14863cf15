"""The task lifecycle over HTTP: create, predict, append, list, get, delete."""

from __future__ import annotations

from datetime import datetime

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tests.fakes import FakeEncoder
from tests.helpers import SYNTHETIC, SYNTHETIC_QUERIES, create_task, examples

TASK_FIELDS = {"id", "name", "version", "labels", "num_examples", "adapted_ms", "created_at", "updated_at"}


def _predict(client: TestClient, headers: dict[str, str], task_id: str, texts: list[str], top_k: int = 3) -> dict:
    response = client.post(f"/v1/tasks/{task_id}/predict", json={"texts": texts, "top_k": top_k}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_create_returns_the_documented_fields(client: TestClient, tenant: dict[str, str]) -> None:
    response = client.post("/v1/tasks", json={"name": "assistant", "examples": examples()}, headers=tenant)
    assert response.status_code == 201
    task = response.json()
    assert TASK_FIELDS <= set(task)
    assert task["name"] == "assistant" and task["version"] == 1
    assert task["labels"] == sorted(SYNTHETIC)
    assert task["num_examples"] == sum(len(texts) for texts in SYNTHETIC.values())
    assert isinstance(task["adapted_ms"], float) and task["adapted_ms"] >= 0
    datetime.fromisoformat(task["created_at"])
    assert len(task["id"]) == 32


def test_create_stores_examples_with_their_embeddings(
    client: TestClient, tenant: dict[str, str], db_engine: Engine, fake_encoder: FakeEncoder
) -> None:
    task = create_task(client, tenant)
    with db_engine.connect() as connection:
        rows = connection.execute(
            text("SELECT text, label, version_added, embedding, embedding_fingerprint FROM examples"
                 " WHERE task_id = :t"),
            {"t": task["id"]},
        ).all()
        adapters = connection.execute(text("SELECT version, encoder_fingerprint FROM adapter_versions")).all()
    assert sorted((r.text, r.label) for r in rows) == sorted((e["text"], e["label"]) for e in examples())
    assert all(r.version_added == 1 and len(r.embedding) == 4 * fake_encoder.dim for r in rows)
    assert {r.embedding_fingerprint for r in rows} == {fake_encoder.fingerprint}
    assert adapters == [(1, fake_encoder.fingerprint)]


def test_predict_one_result_per_text_in_order(client: TestClient, tenant: dict[str, str]) -> None:
    task = create_task(client, tenant)
    texts = [text for text, _ in SYNTHETIC_QUERIES]
    body = _predict(client, tenant, task["id"], texts)
    assert body["version"] == 1
    assert [p["label"] for p in body["predictions"]] == [label for _, label in SYNTHETIC_QUERIES]
    reversed_body = _predict(client, tenant, task["id"], texts[::-1])
    assert reversed_body["predictions"] == body["predictions"][::-1]


def test_predict_top_k_is_sorted_and_capped(client: TestClient, tenant: dict[str, str]) -> None:
    task = create_task(client, tenant)
    for top_k in (1, 2, 3, 5):
        body = _predict(client, tenant, task["id"], ["play music", "hello there", "alarm weather"], top_k=top_k)
        assert len(body["predictions"]) == 3
        _check_ranking(body["predictions"], top_k)


def _check_ranking(predictions: list[dict], top_k: int) -> None:
    for prediction in predictions:
        scores = [item["score"] for item in prediction["top_k"]]
        assert len(prediction["top_k"]) == min(top_k, 3)
        assert scores == sorted(scores, reverse=True)
        assert all(0.0 <= score <= 1.0 for score in scores) and 0.0 <= prediction["score"] <= 1.0
        assert sum(scores) <= 1.0 + 1e-6
        assert prediction["top_k"][0]["score"] == prediction["score"]
        expected = None if prediction["out_of_scope"] else prediction["top_k"][0]["label"]
        assert prediction["label"] == expected
        assert {item["label"] for item in prediction["top_k"]} <= set(SYNTHETIC)


def test_predict_default_top_k_is_three(client: TestClient, tenant: dict[str, str]) -> None:
    task = create_task(client, tenant)
    response = client.post(f"/v1/tasks/{task['id']}/predict", json={"texts": ["play music"]}, headers=tenant)
    assert len(response.json()["predictions"][0]["top_k"]) == 3


def test_append_makes_a_new_version_with_a_new_label(
    client: TestClient, tenant: dict[str, str], fake_encoder: FakeEncoder
) -> None:
    task = create_task(client, tenant)
    new = [{"text": text, "label": "timer"} for text in
           ("start a timer for ten minutes", "set a timer", "how long is left on my timer", "cancel the timer")]
    encoded_before = fake_encoder.num_encoded
    response = client.post(f"/v1/tasks/{task['id']}/examples", json={"examples": new}, headers=tenant)
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["id"] == task["id"] and updated["version"] == 2
    assert updated["labels"] == sorted([*SYNTHETIC, "timer"])
    assert updated["num_examples"] == task["num_examples"] + 4
    assert fake_encoder.num_encoded - encoded_before == 4  # stored embeddings are reused
    body = _predict(client, tenant, task["id"], ["start a timer please", "play a song"])
    assert body["version"] == 2
    assert [p["label"] for p in body["predictions"]] == ["timer", "music"]
    fetched = client.get(f"/v1/tasks/{task['id']}", headers=tenant).json()
    assert fetched["version"] == 2 and fetched["labels"] == updated["labels"]


def test_append_twice_counts_all_examples(client: TestClient, tenant: dict[str, str]) -> None:
    task = create_task(client, tenant)
    for version in (2, 3):
        body = {"examples": [{"text": f"more music {version}", "label": "music"}]}
        response = client.post(f"/v1/tasks/{task['id']}/examples", json=body, headers=tenant)
        assert response.json()["version"] == version
    assert response.json()["num_examples"] == task["num_examples"] + 2


def test_list_get_and_delete(client: TestClient, tenant: dict[str, str], db_engine: Engine) -> None:
    first = create_task(client, tenant, name="first")
    second = create_task(client, tenant, name="second")
    listed = client.get("/v1/tasks", headers=tenant).json()
    assert listed["total"] == 2
    assert {t["id"] for t in listed["tasks"]} == {first["id"], second["id"]}
    page = client.get("/v1/tasks", params={"limit": 1, "offset": 1}, headers=tenant).json()
    assert len(page["tasks"]) == 1 and page["total"] == 2
    assert client.get(f"/v1/tasks/{first['id']}", headers=tenant).json() == first

    response = client.delete(f"/v1/tasks/{first['id']}", headers=tenant)
    assert response.status_code == 204 and response.content == b""
    for method, path in [("get", ""), ("delete", ""), ("post", "/predict")]:
        body = {"texts": ["x"]} if method == "post" else None
        gone = client.request(method, f"/v1/tasks/{first['id']}{path}", json=body, headers=tenant)
        assert gone.status_code == 404 and gone.json()["error"] == "not_found"
    assert [t["id"] for t in client.get("/v1/tasks", headers=tenant).json()["tasks"]] == [second["id"]]
    with db_engine.connect() as connection:
        for table in ("examples", "adapter_versions"):
            count = connection.execute(text(f"SELECT count(*) FROM {table} WHERE task_id = :t"), {"t": first["id"]})
            assert count.scalar() == 0, table


def test_list_is_empty_for_a_new_tenant(client: TestClient, tenant: dict[str, str]) -> None:
    assert client.get("/v1/tasks", headers=tenant).json() == {"tasks": [], "total": 0}


def test_list_paging_is_validated(client: TestClient, tenant: dict[str, str]) -> None:
    for params in ({"limit": 0}, {"limit": 501}, {"offset": -1}, {"limit": "many"}):
        response = client.get("/v1/tasks", params=params, headers=tenant)
        assert response.status_code == 422 and response.json()["error"] == "validation_error", params


def test_missing_task_is_404(client: TestClient, tenant: dict[str, str]) -> None:
    response = client.get("/v1/tasks/0123456789abcdef0123456789abcdef", headers=tenant)
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "detail": "task 0123456789abcdef0123456789abcdef not found"}
