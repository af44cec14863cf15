"""GET /metrics exposes Prometheus text with request, predict and cache figures."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from pydantic import ValidationError

from app.main import create_app
from tests.conftest import make_settings
from tests.fakes import FakeEncoder
from tests.helpers import create_task, create_tenant


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_count_predictions_and_requests(client: TestClient) -> None:
    headers = create_tenant(client)
    task = create_task(client, headers)
    route = "/v1/tasks/{task_id}/predict"
    before = (_value("fewshot_predicted_texts_total"), _value("fewshot_request_seconds_count", method="POST", route=route,
                                                               status="200"),
              _value("fewshot_request_seconds_count", method="GET", route="/v1/tasks/{task_id}", status="404"),
              _value("fewshot_adapter_cache_hits_total"))
    client.post(f"/v1/tasks/{task['id']}/predict", json={"texts": ["play a song", "set my alarm"]}, headers=headers)
    client.get(f"/v1/tasks/{'0' * 32}", headers=headers)
    after = (_value("fewshot_predicted_texts_total"), _value("fewshot_request_seconds_count", method="POST", route=route,
                                                              status="200"),
             _value("fewshot_request_seconds_count", method="GET", route="/v1/tasks/{task_id}", status="404"),
             _value("fewshot_adapter_cache_hits_total"))
    assert [a - b for a, b in zip(after, before)] == [2, 1, 1, 1]  # two texts, one predict, one 404, one cache hit
    body = client.get("/metrics").text
    assert "fewshot_predicted_texts_total" in body
    assert 'route="/v1/tasks/{task_id}/predict"' in body
    assert "fewshot_adapter_cache_entries" in body
    assert "fewshot_encoder_batch_texts_bucket" in body
    assert "# TYPE fewshot_adapter_cache_hits_total counter" in body
    assert "# TYPE fewshot_adapter_cache_misses_total counter" in body


def test_made_up_methods_share_one_label_value(client: TestClient) -> None:
    for method in ("X00001", "X00002"):
        client.request(method, "/healthz")
    body = client.get("/metrics").text
    assert "X00001" not in body and 'method="other",route="/healthz"' in body


def test_metrics_key_guards_only_the_metrics(database_url: str) -> None:
    """With FEWSHOT_METRICS_KEY set, /metrics needs it (401 otherwise, even with a tenant's key); /healthz stays open."""
    settings = make_settings(database_url, metrics_key="scrape-key-0123456789")
    with TestClient(create_app(settings, encoder=FakeEncoder())) as client:
        tenant = create_tenant(client)
        for headers in ({}, {"Authorization": "Bearer wrong"}, tenant):
            refused = client.get("/metrics", headers=headers)
            assert refused.status_code == 401 and refused.json()["error"] == "unauthorized"
            assert "fewshot_" not in refused.text
        allowed = client.get("/metrics", headers={"Authorization": "Bearer scrape-key-0123456789"})
        assert allowed.status_code == 200 and "fewshot_request_seconds" in allowed.text
        assert client.get("/healthz").status_code == 200


def test_a_blank_metrics_key_is_refused() -> None:
    with pytest.raises(ValidationError, match="FEWSHOT_METRICS_KEY is blank"):
        make_settings("sqlite:///x.db", metrics_key="  ")
