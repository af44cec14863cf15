"""``If-Match``: a change that names the version it expects is made only on that version.

Without the header, appends and removals that lose a race are made again on the newer
version (tests/app/test_concurrency.py); with it, any other current version is 412
``precondition_failed`` and nothing changes, whether the task had moved on before the
request read it or while the request was adapting."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.app.test_concurrency import next_fit_held
from tests.helpers import create_task, create_tenant

BELL = {"examples": [{"text": "ring the doorbell", "label": "bell"}]}


def _task(client: TestClient) -> tuple[dict[str, str], str]:
    headers = create_tenant(client)
    return headers, create_task(client, headers)["id"]


def _current(client: TestClient, headers: dict[str, str], task_id: str) -> int:
    return client.get(f"/v1/tasks/{task_id}", headers=headers).json()["version"]


def test_an_append_on_the_expected_version_lands_and_answers_the_new_etag(client: TestClient) -> None:
    headers, task_id = _task(client)
    assert client.get(f"/v1/tasks/{task_id}", headers=headers).headers["etag"] == '"1"'
    for if_match, version in (('"1"', 2), ('W/"2"', 3), ("3", 4), ("*", 5)):
        response = client.post(f"/v1/tasks/{task_id}/examples", json=BELL, headers={**headers, "If-Match": if_match})
        assert response.status_code == 200, response.text
        assert response.json()["version"] == version and response.headers["etag"] == f'"{version}"'


@pytest.mark.parametrize("operation", ["append", "remove", "rollback", "patch", "delete"])
def test_a_change_that_expects_another_version_is_412_and_changes_nothing(
        client: TestClient, operation: str) -> None:
    headers, task_id = _task(client)
    assert client.post(f"/v1/tasks/{task_id}/examples", json=BELL, headers=headers).status_code == 200
    first = client.get(f"/v1/tasks/{task_id}/examples", headers=headers).json()["examples"][0]["id"]
    calls: dict[str, tuple[str, str, dict[str, Any] | None]] = {
        "append": ("POST", "/examples", BELL), "remove": ("POST", "/remove", {"example_ids": [first]}),
        "rollback": ("POST", "/rollback", {"version": 1}), "patch": ("PATCH", "", {"name": "renamed"}),
        "delete": ("DELETE", "", None),
    }
    method, suffix, body = calls[operation]
    before = client.get(f"/v1/tasks/{task_id}", headers=headers).json()

    stale = client.request(method, f"/v1/tasks/{task_id}{suffix}", json=body, headers={**headers, "If-Match": '"1"'})
    assert stale.status_code == 412, stale.text
    assert stale.json()["error"] == "precondition_failed" and "version 2, not 1" in stale.json()["detail"]
    assert client.get(f"/v1/tasks/{task_id}", headers=headers).json() == before

    fresh = client.request(method, f"/v1/tasks/{task_id}{suffix}", json=body, headers={**headers, "If-Match": '"2"'})
    assert fresh.status_code == (204 if operation == "delete" else 200), fresh.text


@pytest.mark.parametrize("if_match", ["two", '"0"', '"1", "2"', "-1", "99999999999"])
def test_an_if_match_that_names_no_version_is_422(client: TestClient, if_match: str) -> None:
    headers, task_id = _task(client)
    response = client.post(f"/v1/tasks/{task_id}/examples", json=BELL, headers={**headers, "If-Match": if_match})
    assert response.status_code == 422 and response.json()["error"] == "validation_error"
    assert _current(client, headers, task_id) == 1


def test_an_append_that_expected_the_version_another_append_replaced_meanwhile_is_412(
        app: FastAPI, client: TestClient) -> None:
    """The pinned append read version 1 and was adapting when a plain append made
    version 2: it is not rebased; the plain one is kept."""
    headers, task_id = _task(client)
    pinned = {**headers, "If-Match": '"1"'}
    with next_fit_held(app) as (entered, release), ThreadPoolExecutor(1) as pool:
        held = pool.submit(lambda: client.post(f"/v1/tasks/{task_id}/examples", headers=pinned,
                                               json={"examples": [{"text": "dim the lights", "label": "lights"}]}))
        assert entered.wait(20)
        plain = client.post(f"/v1/tasks/{task_id}/examples", json=BELL, headers=headers)
        release.set()
        late = held.result()
    assert plain.status_code == 200 and plain.json()["version"] == 2
    assert late.status_code == 412 and late.json()["error"] == "precondition_failed", late.text
    current = client.get(f"/v1/tasks/{task_id}", headers=headers).json()
    assert current["version"] == 2 and "bell" in current["labels"] and "lights" not in current["labels"]
    versions = client.get(f"/v1/tasks/{task_id}/versions", headers=headers).json()["versions"]
    assert [v["change"] for v in versions] == ["create", "append"]
