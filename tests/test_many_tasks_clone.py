"""benchmarks/many_tasks.py makes its 10,000 tasks by copying stored rows: the copies must
follow the schema (every column) and be tasks the service serves like the original."""

from __future__ import annotations

import sys
from pathlib import Path

from fastapi.testclient import TestClient

from app.db.migrate import upgrade_head
from app.main import create_app
from tests.conftest import make_settings
from tests.fakes import FakeEncoder
from tests.helpers import create_task, create_tenant

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.many_tasks import clone_tasks  # noqa: E402


def test_cloned_tasks_are_served_like_the_original(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'many.db'}"
    upgrade_head(url)
    app = create_app(make_settings(url), encoder=FakeEncoder())
    with TestClient(app) as client:
        headers = create_tenant(client)
        original = create_task(client, headers)
        assert clone_tasks(url, 3) == 3
        tasks = client.get("/v1/tasks", headers=headers).json()["tasks"]
        assert len(tasks) == 3
        texts = {"texts": ["wake me up at seven", "play some jazz"]}
        expected = client.post(f"/v1/tasks/{original['id']}/predict", json=texts, headers=headers).json()["predictions"]
        for task in tasks:
            examples = client.get(f"/v1/tasks/{task['id']}/examples", headers=headers).json()["examples"]
            assert len(examples) == original["num_examples"]
            answer = client.post(f"/v1/tasks/{task['id']}/predict", json=texts, headers=headers)
            assert answer.status_code == 200, answer.text
            assert [p["label"] for p in answer.json()["predictions"]] == [p["label"] for p in expected]
