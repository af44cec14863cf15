"""Tenant isolation: another tenant's task is indistinguishable from a missing one."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.helpers import create_task

MISSING_ID = "0123456789abcdef0123456789abcdef"

CALLS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("get", "", None),
    ("post", "/predict", {"texts": ["play music"]}),
    ("post", "/examples", {"examples": [{"text": "stop the music", "label": "music"}]}),
    ("delete", "", None),
]


@pytest.mark.parametrize(("method", "suffix", "body"), CALLS, ids=["get", "predict", "append", "delete"])
def test_other_tenants_task_looks_missing(
    client: TestClient, tenant: dict[str, str], other_tenant: dict[str, str],
    method: str, suffix: str, body: dict[str, Any] | None,
) -> None:
    task = create_task(client, tenant)
    foreign = client.request(method, f"/v1/tasks/{task['id']}{suffix}", json=body, headers=other_tenant)
    missing = client.request(method, f"/v1/tasks/{MISSING_ID}{suffix}", json=body, headers=other_tenant)
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json()["error"] == missing.json()["error"] == "not_found"
    assert foreign.json()["detail"].replace(task["id"], MISSING_ID) == missing.json()["detail"]
    # ... and the owner's task is untouched.
    assert client.get(f"/v1/tasks/{task['id']}", headers=tenant).json() == task


def test_list_shows_only_own_tasks(client: TestClient, tenant: dict[str, str], other_tenant: dict[str, str]) -> None:
    mine = create_task(client, tenant, name="mine")
    theirs = create_task(client, other_tenant, name="theirs")
    assert [t["id"] for t in client.get("/v1/tasks", headers=tenant).json()["tasks"]] == [mine["id"]]
    listed = client.get("/v1/tasks", headers=other_tenant).json()
    assert [t["id"] for t in listed["tasks"]] == [theirs["id"]] and listed["total"] == 1


def test_delete_of_other_tenants_task_keeps_it(
    client: TestClient, tenant: dict[str, str], other_tenant: dict[str, str]
) -> None:
    task = create_task(client, tenant)
    assert client.delete(f"/v1/tasks/{task['id']}", headers=other_tenant).status_code == 404
    response = client.post(f"/v1/tasks/{task['id']}/predict", json={"texts": ["play music"]}, headers=tenant)
    assert response.status_code == 200
    assert client.get("/v1/tasks", headers=tenant).json()["total"] == 1


def test_example_ids_are_numbers_within_the_task(
    client: TestClient, tenant: dict[str, str], other_tenant: dict[str, str],
) -> None:
    """The ids a tenant sees do not count what other tenants store meanwhile."""
    mine = create_task(client, tenant)
    create_task(client, other_tenant)  # 12 more rows in the examples table
    append = {"examples": [{"text": "stop the music", "label": "music"}]}
    assert client.post(f"/v1/tasks/{mine['id']}/examples", json=append, headers=tenant).status_code == 200
    listed = client.get(f"/v1/tasks/{mine['id']}/examples", headers=tenant).json()["examples"]
    assert sorted(e["id"] for e in listed) == list(range(1, len(listed) + 1))
    assert next(e["id"] for e in listed if e["text"] == "stop the music") == len(listed)
    # Removing by number removes exactly that example; the other tenant's number 1 is untouched.
    removed = client.post(f"/v1/tasks/{mine['id']}/remove", json={"example_ids": [1]}, headers=tenant)
    assert removed.status_code == 200 and removed.json()["num_examples"] == len(listed) - 1
    kept = client.get(f"/v1/tasks/{mine['id']}/examples", headers=tenant).json()["examples"]
    assert {e["id"] for e in kept} == set(range(2, len(listed) + 1))
