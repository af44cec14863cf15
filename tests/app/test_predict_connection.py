"""Requests must not hold a database connection while they wait (for the encoder, at a task's gate).

Otherwise concurrent predicts queued behind a busy encoder exhaust the connection pool
(seen in the load benchmark: HTTP 500 after the pool's 30 s timeout)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.services import races
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



class _SpyLock:
    """A gate's lock that notes how many pooled connections are out when a change queues."""

    def __init__(self, checked_out: Callable[[], int]) -> None:
        self.inner, self.checked_out, self.seen = threading.Lock(), checked_out, []

    def locked(self) -> bool:
        return self.inner.locked()

    def acquire(self, timeout: float = -1) -> bool:
        self.seen.append(self.checked_out())
        return self.inner.acquire(timeout=timeout)

    def release(self) -> None:
        self.inner.release()


def test_a_change_queued_at_its_tasks_gate_holds_no_connection(app: FastAPI, client: TestClient) -> None:
    """Changes queued behind a task's earlier losers wait at the task's gate; holding a
    connection there (the key lookup's, say) would starve every other request of the pool."""
    headers = create_tenant(client)
    task = create_task(client, headers)
    pool = app.state.session_factory.kw["bind"].pool
    gate = races._gate(task["id"])
    gate.lock = spy = _SpyLock(pool.checkedout)
    spy.inner.acquire()  # as if earlier losers of this task were being made again
    answers: list[int] = []
    waiting = threading.Thread(target=lambda: answers.append(client.post(
        f"/v1/tasks/{task['id']}/examples", json={"examples": [{"text": "wake me at nine", "label": "alarm"}]},
        headers=headers).status_code))
    try:
        waiting.start()
        deadline = time.monotonic() + 10
        while not spy.seen and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        spy.inner.release()
        waiting.join(30)
    assert spy.seen == [0]
    assert answers == [200]
