"""`fewshot serve` as a real process: real encoder, real HTTP, SQLite on disk."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import ADMIN_KEY, admin_headers, bearer, load_fixture

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 90.0
LABELS = ("card_arrival", "exchange_rate", "pending_transfer", "top_up_failed")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """Start the server, wait for /healthz, yield its base URL; always stop it."""
    port = _free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("FEWSHOT_")}
    env.update(
        FEWSHOT_DATABASE_URL=f"sqlite:///{tmp_path / 'serve.db'}",
        FEWSHOT_ADMIN_KEY=ADMIN_KEY,
        FEWSHOT_CHECKPOINT="none",
        FEWSHOT_DEVICE="cpu",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
    )
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "warning"],
            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"server exited with {process.returncode}:\n{log_path.read_text(errors='replace')}")
            try:
                if httpx.get(f"{base_url}/healthz", timeout=2, trust_env=False).status_code == 200:  # no proxies
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"no healthy server after {START_TIMEOUT_S} s:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.25)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        print(log_path.read_text(errors="replace")[-4000:])  # shown by pytest when the test fails


@pytest.mark.real_encoder
def test_serve_create_and_predict_over_http(server: str) -> None:
    support, query = load_fixture("banking77")
    support = [row for row in support if row["label"] in LABELS]
    query = [row for row in query if row["label"] in LABELS]
    with httpx.Client(base_url=server, timeout=60, trust_env=False) as http:
        health = http.get("/healthz").json()
        assert health["status"] == "ok" and health["device"] == "cpu" and len(health["encoder"]) == 16

        assert http.post("/v1/tenants", json={"name": "acme"}).status_code == 401
        created = http.post("/v1/tenants", json={"name": "acme"}, headers=admin_headers())
        assert created.status_code == 201
        headers = bearer(created.json()["api_key"])

        task = http.post("/v1/tasks", json={"name": "banking", "examples": support}, headers=headers)
        assert task.status_code == 201, task.text
        assert task.json()["labels"] == sorted(LABELS) and task.json()["num_examples"] == len(support)

        response = http.post(f"/v1/tasks/{task.json()['id']}/predict",
                             json={"texts": [row["text"] for row in query], "top_k": 2}, headers=headers)
        assert response.status_code == 200, response.text
        predictions = response.json()["predictions"]
        assert len(predictions) == len(query)
        assert all(len(p["top_k"]) == 2 and 0 <= p["score"] <= 1 for p in predictions)
        correct = sum(p["label"] == row["label"] for p, row in zip(predictions, query))
        assert correct / len(query) >= 0.6  # chance is 0.25

        listed = http.get("/v1/tasks", headers=headers).json()
        assert listed["total"] == 1
