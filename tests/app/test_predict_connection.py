"""Predict must not hold a database connection while it waits for the encoder.

Otherwise concurrent predicts queued behind a busy encoder exhaust the connection pool
(seen in the load benchmark: HTTP 500 after the pool's 30 s timeout)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.helpers import create_task, create_tenant


def test_no_transaction_is_open_while_predict_waits_for_the_encoder(app: FastAPI, client: TestClient) -> None:
    headers = create_tenant(client)
    task = create_task(client, headers)
    engine = app.state.engine
    sessions_seen: list[bool] = []
    original = engine.predict
    pool = app.state.session_factory.kw["bind"].pool

    def spying_predict(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - pass-through
        sessions_seen.append(pool.checkedout() == 0)
        return original(*args, **kwargs)

    engine.predict = spying_predict
    try:
        response = client.post(f"/v1/tasks/{task['id']}/predict", json={"texts": ["play a song"]}, headers=headers)
    finally:
        engine.predict = original
    assert response.status_code == 200
    assert sessions_seen == [True]
