"""Crash safety of a real `fewshot serve` process on SQLite: SIGKILL at seeded random
moments while clients create tasks and append examples, then restart on the same file.

After every restart: the server comes up healthy (no recovery step, nothing in its log
but warnings), every write it acknowledged with 2xx before any of the kills is there
(each created task, each appended example in the task's current version), and the
current version of every task predicts. Unacknowledged writes may or may not be there;
nothing half-written may be. ``FEWSHOT_TEST_KILL_ROUNDS`` (default 10) and
``FEWSHOT_TEST_KILL_SEED`` (default 18) set the rounds and the seed."""

from __future__ import annotations

import itertools
import os
import random
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.helpers import admin_headers, bearer
from tests.serving import Server, tiny_encoder

ROUNDS = int(os.environ.get("FEWSHOT_TEST_KILL_ROUNDS", "10"))
SEED = int(os.environ.get("FEWSHOT_TEST_KILL_SEED", "18"))
LABELS = ("weather", "music", "alarm")


@dataclass
class Acknowledged:
    """What the server answered 2xx to: task id -> texts that must be in its current version."""

    texts: dict[str, set[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    writes: int = 0
    refused: list[str] = field(default_factory=list)  # answers other than 2xx (none expected)

    def add(self, task_id: str, texts: list[str]) -> None:
        with self.lock:
            self.texts.setdefault(task_id, set()).update(texts)
            self.writes += 1

    def task_ids(self) -> list[str]:
        with self.lock:
            return sorted(self.texts)


def _writer(url: str, headers: dict[str, str], acked: Acknowledged, rng: random.Random, tag: str,
            stop: threading.Event) -> None:
    """Creates (one in four) and appends until the server is gone or ``stop`` is set."""
    counter = itertools.count()
    with httpx.Client(base_url=url, headers=headers, timeout=30, trust_env=False) as http:
        while not stop.is_set():
            n = next(counter)
            known = acked.task_ids()
            try:
                if not known or rng.random() < 0.25:
                    texts = [f"{label} {tag} {n} {i}" for label in LABELS for i in range(2)]
                    body = {"name": f"{tag}-{n}", "examples": [{"text": t, "label": t.split()[0]} for t in texts]}
                    response = http.post("/v1/tasks", json=body)
                    if response.status_code == 201:
                        acked.add(response.json()["id"], texts)
                    else:
                        acked.refused.append(f"create {response.status_code} {response.text[:200]}")
                else:
                    task_id, text = rng.choice(known), f"{rng.choice(LABELS)} appended {tag} {n}"
                    response = http.post(f"/v1/tasks/{task_id}/examples",
                                         json={"examples": [{"text": text, "label": text.split()[0]}]})
                    if response.status_code == 200:
                        acked.add(task_id, [text])
                    else:
                        acked.refused.append(f"append {response.status_code} {response.text[:200]}")
            except httpx.TransportError:
                return  # killed: this request is unacknowledged


def _check_everything_acknowledged_is_there(url: str, headers: dict[str, str], acked: Acknowledged) -> int:
    """Every acknowledged task and text is in the current version, which predicts; the number of tasks."""
    with httpx.Client(base_url=url, headers=headers, timeout=30, trust_env=False) as http:
        for task_id, texts in acked.texts.items():
            listed = http.get(f"/v1/tasks/{task_id}/examples")
            assert listed.status_code == 200, f"acknowledged task {task_id} is gone: {listed.text}"
            missing = texts - {e["text"] for e in listed.json()["examples"]}
            assert not missing, f"acknowledged texts lost from {task_id}: {sorted(missing)[:5]}"
            predicted = http.post(f"/v1/tasks/{task_id}/predict", json={"texts": ["will it rain", "play a song"]})
            assert predicted.status_code == 200, predicted.text
            assert predicted.json()["version"] == listed.json()["version"]
            assert len(predicted.json()["predictions"]) == 2
    return len(acked.texts)


def test_sigkill_during_creates_and_appends_loses_no_acknowledged_write(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    server = Server(tmp_path, f"sqlite:///{tmp_path / 'crash.db'}", tiny_encoder(tmp_path / "encoder"))
    acked = Acknowledged()
    starts: list[float] = []
    try:
        starts.append(server.start())
        created = httpx.post(f"{server.url}/v1/tenants", json={"name": "crash"}, headers=admin_headers(),
                             timeout=30, trust_env=False)
        headers = bearer(created.json()["api_key"])
        for round_number in range(ROUNDS):
            stop = threading.Event()
            writers = [threading.Thread(target=_writer, args=(server.url, headers, acked, random.Random(rng.random()),
                                                               f"r{round_number}w{w}", stop)) for w in range(3)]
            for writer in writers:
                writer.start()
            time.sleep(rng.uniform(0.3, 1.5))
            server.kill()
            stop.set()
            for writer in writers:
                writer.join(30)
            starts.append(server.start())
            assert "Traceback" not in server.log() and "ERROR" not in server.log(), server.log()
            _check_everything_acknowledged_is_there(server.url, headers, acked)
        tasks = _check_everything_acknowledged_is_there(server.url, headers, acked)
    except BaseException:
        print(server.log())
        raise
    finally:
        server.stop()
    print(f"{ROUNDS} SIGKILLs, {acked.writes} acknowledged writes in {tasks} tasks, none lost; "
          f"restarts {min(starts):.1f}-{max(starts):.1f} s")
    assert acked.refused == []
    with sqlite3.connect(tmp_path / "crash.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert acked.writes >= ROUNDS  # the kills did land among writes
