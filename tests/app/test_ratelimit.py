"""Per-tenant request rates: token buckets (a fake clock), and 429 over HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.ratelimit import TokenBuckets
from tests.helpers import create_tenant


def test_a_bucket_admits_a_burst_then_the_rate() -> None:
    now = [0.0]
    buckets = TokenBuckets(rate=2.0, burst=3, clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(3)] == [None, None, None]
    assert buckets.take("a") == pytest.approx(0.5)  # one token comes back every 0.5 s
    assert buckets.take("b") is None  # another key has its own bucket
    now[0] = 0.5
    assert buckets.take("a") is None and buckets.take("a") == pytest.approx(0.5)
    now[0] = 100.0  # a long pause refills only up to the burst
    assert [buckets.take("a") for _ in range(4)][-1] is not None
    assert TokenBuckets.retry_after(0.2) == "1" and TokenBuckets.retry_after(2.5) == "3"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"rate_limit_per_tenant": 0.01, "rate_limit_burst": 3}


def test_a_tenant_over_its_rate_gets_429_and_others_do_not(client: TestClient) -> None:
    flooding, quiet = create_tenant(client, "flooding"), create_tenant(client, "quiet")
    assert [client.get("/v1/tasks", headers=flooding).status_code for _ in range(3)] == [200, 200, 200]
    refused = client.get("/v1/tasks", headers=flooding)
    assert refused.status_code == 429 and refused.json()["error"] == "rate_limited"
    assert int(refused.headers["retry-after"]) >= 90  # a token every 100 s
    assert client.get("/v1/tasks", headers=quiet).status_code == 200
    assert client.get("/healthz").status_code == 200  # health and metrics are not rate-limited
