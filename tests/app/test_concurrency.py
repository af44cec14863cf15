"""Concurrent changes of one task, and a change that takes long, on SQLite and PostgreSQL.

A change gives its database connection (and on PostgreSQL its row lock) back while the
encoder and the inner loop work; the guard is the task row's version, checked when it is
written (``version_id_col``). These tests hold one request inside its adaptation
(``engine.fit``) while another one changes the task: the later writer wins nothing it
should not; an append or removal that read an older version is made again on the newer one."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.helpers import create_task, create_tenant


@contextmanager
def next_fit_held(app: FastAPI) -> Iterator[tuple[threading.Event, threading.Event]]:
    """(entered, release): the next adaptation waits inside ``engine.fit`` until released."""
    engine = app.state.engine
    entered, release = threading.Event(), threading.Event()
    original, calls = engine.fit, []

    def fit(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            entered.set()
            release.wait(20)
        return original(*args, **kwargs)

    engine.fit = fit
    try:
        yield entered, release
    finally:
        release.set()
        engine.fit = original


def _while_held(app: FastAPI, slow: Callable[[], Any], fast: Callable[[], Any]) -> tuple[Any, Any]:
    """Run ``slow`` until it is inside its adaptation, then ``fast``, then let ``slow`` finish."""
    with next_fit_held(app) as (entered, release), ThreadPoolExecutor(1) as pool:
        held = pool.submit(slow)
        assert entered.wait(20)
        other = fast()
        release.set()
        return held.result(), other


def test_a_remove_that_read_an_older_version_is_rebased_and_both_land(
        app: FastAPI, client: TestClient) -> None:
    headers = create_tenant(client)
    task_id = create_task(client, headers)["id"]
    first = client.get(f"/v1/tasks/{task_id}/examples", headers=headers).json()["examples"][0]["id"]
    removed, appended = _while_held(
        app,
        lambda: client.post(f"/v1/tasks/{task_id}/remove", json={"example_ids": [first]}, headers=headers),
        lambda: client.post(f"/v1/tasks/{task_id}/examples",
                            json={"examples": [{"text": "ring the doorbell", "label": "bell"}]}, headers=headers),
    )
    assert appended.status_code == 200 and appended.json()["version"] == 2
    assert removed.status_code == 200 and removed.json()["version"] == 3
    current = client.get(f"/v1/tasks/{task_id}", headers=headers).json()
    assert current["version"] == 3 and "bell" in current["labels"]
    ids = [e["id"] for e in client.get(f"/v1/tasks/{task_id}/examples", headers=headers).json()["examples"]]
    assert first not in ids
    versions = client.get(f"/v1/tasks/{task_id}/versions", headers=headers).json()["versions"]
    assert [v["change"] for v in versions] == ["create", "append", "remove"]


def test_an_append_racing_a_rollback_lands_on_the_rolled_back_version(
        app: FastAPI, client: TestClient) -> None:
    headers = create_tenant(client)
    task_id = create_task(client, headers)["id"]
    client.post(f"/v1/tasks/{task_id}/examples", json={"examples": [{"text": "ring the doorbell", "label": "bell"}]},
                headers=headers)
    appended, rolled_back = _while_held(
        app,
        lambda: client.post(f"/v1/tasks/{task_id}/examples",
                            json={"examples": [{"text": "open the garage", "label": "garage"}]}, headers=headers),
        lambda: client.post(f"/v1/tasks/{task_id}/rollback", json={"version": 1}, headers=headers),
    )
    assert rolled_back.status_code == 200 and appended.status_code == 200
    current = client.get(f"/v1/tasks/{task_id}", headers=headers).json()
    assert current["version"] == 4 and "bell" not in current["labels"] and "garage" in current["labels"]


def test_an_adaptation_holds_no_database_lock(
        app: FastAPI, client: TestClient) -> None:
    """While one tenant's append adapts, another tenant can create a task (SQLite has one
    write lock for the whole database; rows are written only after the adaptation)."""
    acme, other = create_tenant(client, "acme"), create_tenant(client, "other")
    task_id = create_task(client, acme)["id"]
    with next_fit_held(app) as (entered, release), ThreadPoolExecutor(2) as pool:
        held = pool.submit(client.post, f"/v1/tasks/{task_id}/examples",
                           json={"examples": [{"text": "ring the doorbell", "label": "bell"}]}, headers=acme)
        assert entered.wait(20)
        created = pool.submit(create_task, client, other)
        assert created.result(timeout=15)["version"] == 1  # done while the append still waits
        assert not held.done()
        release.set()
        assert held.result().status_code == 200


def test_a_predict_that_finds_its_task_deleted_is_404(app: FastAPI, client: TestClient) -> None:
    headers = create_tenant(client)
    task_id = create_task(client, headers)["id"]
    cache = app.state.engine.cache
    cache.discard_where(lambda key: True)  # the adapter must come from the database
    entered, release = threading.Event(), threading.Event()
    original = cache.get

    def get(key: Any) -> Any:
        entered.set()
        release.wait(20)
        return original(key)

    cache.get = get
    try:
        with ThreadPoolExecutor(1) as pool:
            predicted = pool.submit(client.post, f"/v1/tasks/{task_id}/predict", json={"texts": ["play a song"]},
                                    headers=headers)
            assert entered.wait(20)
            cache.get = original
            assert client.delete(f"/v1/tasks/{task_id}", headers=headers).status_code == 204
            release.set()
            response = predicted.result()
    finally:
        cache.get = original
    assert response.status_code == 404 and response.json()["error"] == "not_found"


def test_no_database_connection_is_held_while_a_change_adapts(app: FastAPI, client: TestClient) -> None:
    """A slow change must not hold a pooled connection (many slow changes would starve
    every other tenant's requests of connections)."""
    headers = create_tenant(client)
    task_id = create_task(client, headers)["id"]
    pool = app.state.session_factory.kw["bind"].pool
    first = client.get(f"/v1/tasks/{task_id}/examples", headers=headers).json()["examples"][0]["id"]
    for request in (
        lambda: client.post(f"/v1/tasks/{task_id}/remove", json={"example_ids": [first]}, headers=headers),
        lambda: client.post(f"/v1/tasks/{task_id}/examples",
                            json={"examples": [{"text": "ring the doorbell", "label": "bell"}]}, headers=headers),
        lambda: client.post("/v1/tasks", json={"name": "second", "examples": [
            {"text": "play a song", "label": "music"}, {"text": "wake me up", "label": "alarm"}]}, headers=headers),
    ):
        with next_fit_held(app) as (entered, release), ThreadPoolExecutor(1) as executor:
            held = executor.submit(request)
            assert entered.wait(20)
            assert pool.checkedout() == 0
            release.set()
            assert held.result().status_code in (200, 201)


def _delete_task_rows(db_engine: Any, task_id: str) -> None:
    """Delete a task and its rows through another connection, committed at once (a
    concurrent request's DELETE, at a moment of the test's choosing)."""
    from sqlalchemy import text

    with db_engine.begin() as connection:
        for table in ("adapter_versions", "examples"):
            connection.execute(text(f"DELETE FROM {table} WHERE task_id = :id"), {"id": task_id})
        connection.execute(text("DELETE FROM tasks WHERE id = :id"), {"id": task_id})


def test_listing_tasks_while_one_is_deleted_lists_the_others(
    client: TestClient, db_engine: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stress run (two workers, PostgreSQL) saw GET /v1/tasks answer 404 "task ... has no
    version 3" when a task was deleted between reading the page and its versions. The page
    now comes with its versions in one statement; here a delete commits the moment the
    service would have read a version on its own."""
    from app.repositories.tasks import TaskRepository

    headers = create_tenant(client)
    doomed, kept = create_task(client, headers, name="doomed")["id"], create_task(client, headers, name="kept")["id"]
    original = TaskRepository.version

    def version_after_a_delete(self: TaskRepository, task_id: str, version: int) -> Any:
        _delete_task_rows(db_engine, doomed)  # another request's delete, committed now
        return original(self, task_id, version)

    monkeypatch.setattr(TaskRepository, "version", version_after_a_delete)
    listed = client.get("/v1/tasks", headers=headers)
    assert listed.status_code == 200, listed.text
    assert {t["id"] for t in listed.json()["tasks"]} <= {doomed, kept}
    assert kept in {t["id"] for t in listed.json()["tasks"]}


def test_versions_of_a_task_deleted_meanwhile_are_404(
    client: TestClient, db_engine: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not 200 with an empty list: the task is gone."""
    from app.repositories.tasks import TaskRepository

    headers = create_tenant(client)
    task_id = create_task(client, headers)["id"]
    original = TaskRepository.versions

    def versions_after_a_delete(self: TaskRepository, task: str) -> Any:
        _delete_task_rows(db_engine, task_id)
        return original(self, task)

    monkeypatch.setattr(TaskRepository, "versions", versions_after_a_delete)
    response = client.get(f"/v1/tasks/{task_id}/versions", headers=headers)
    assert response.status_code == 404 and response.json()["error"] == "not_found"


def test_concurrent_appends_to_one_task_all_land(app: FastAPI, client: TestClient) -> None:
    headers = create_tenant(client)
    task_id = create_task(client, headers)["id"]
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(
            lambda i: client.post(f"/v1/tasks/{task_id}/examples",
                                  json={"examples": [{"text": f"example number {i}", "label": "bell"}]},
                                  headers=headers), range(20)))
    assert [a.status_code for a in answers] == [200] * 20
    assert sorted(a.json()["version"] for a in answers) == list(range(2, 22))
    texts = {e["text"] for e in client.get(f"/v1/tasks/{task_id}/examples", headers=headers).json()["examples"]}
    assert {f"example number {i}" for i in range(20)} <= texts
