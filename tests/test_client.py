"""app.client.FewShotClient against the app (through the TestClient) and a mock transport."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from app.client import FewShotClient, FewShotError
from tests.helpers import ADMIN_KEY, SYNTHETIC, SYNTHETIC_QUERIES, UNLABELLED_POOL, examples

PAIRS = [(e["text"], e["label"]) for e in examples()]
QUERIES = [text for text, _ in SYNTHETIC_QUERIES]


@pytest.fixture
def admin(client: TestClient) -> Iterator[FewShotClient]:
    with FewShotClient("http://testserver", admin_key=ADMIN_KEY, http_client=client) as fewshot:
        yield fewshot


@pytest.fixture
def fewshot(client: TestClient, admin: FewShotClient) -> Iterator[FewShotClient]:
    """A client with a new tenant's API key."""
    key = admin.create_tenant("acme")["api_key"]
    with FewShotClient("http://testserver", api_key=key, http_client=client) as tenant_client:
        yield tenant_client


def test_create_tenant_and_healthz(admin: FewShotClient) -> None:
    created = admin.create_tenant("acme")
    assert set(created) == {"id", "name", "api_key"} and created["name"] == "acme"
    assert created["api_key"].startswith("fsk_")
    assert admin.healthz() == {"status": "ok", "encoder": "fake-encoder-v1", "device": "cpu"}


def test_task_lifecycle(fewshot: FewShotClient) -> None:
    task = fewshot.create_task("assistant", PAIRS)  # (text, label) tuples
    assert task["version"] == 1 and task["labels"] == sorted(SYNTHETIC) and task["num_examples"] == len(PAIRS)
    same = fewshot.create_task("dicts", examples())  # or dicts
    assert same["labels"] == task["labels"]

    listed = fewshot.list_tasks()
    assert listed["total"] == 2 and [t["id"] for t in listed["tasks"]] == [task["id"], same["id"]]
    assert [t["id"] for t in fewshot.list_tasks(limit=1, offset=1)["tasks"]] == [same["id"]]
    assert fewshot.get_task(task["id"]) == task

    result = fewshot.predict(task["id"], QUERIES, top_k=2)
    assert result["version"] == 1
    assert [p["label"] for p in result["predictions"]] == [label for _, label in SYNTHETIC_QUERIES]
    assert all(len(p["top_k"]) == 2 for p in result["predictions"])
    single = fewshot.predict(task["id"], "play a song")  # one string is one text
    assert len(single["predictions"]) == 1 and single["predictions"][0]["label"] == "music"

    fewshot.delete_task(same["id"])
    with pytest.raises(FewShotError) as caught:
        fewshot.get_task(same["id"])
    assert caught.value.status_code == 404 and caught.value.error == "not_found"
    assert fewshot.list_tasks()["total"] == 1


def test_versions_examples_remove_rollback(fewshot: FewShotClient) -> None:
    task = fewshot.create_task("assistant", PAIRS)
    updated = fewshot.add_examples(task["id"], [("start a timer", "timer"), ("stop the timer", "timer")],
                                   labels={"snooze": "snooze the alarm for a few minutes"}, out_of_scope=["tell me a joke"])
    assert updated["version"] == 2 and {"timer", "snooze"} <= set(updated["labels"])
    assert updated["label_descriptions"] == {"snooze": "snooze the alarm for a few minutes"}
    assert updated["num_out_of_scope"] == 1

    listed = fewshot.list_examples(task["id"])
    assert listed["version"] == 2 and len(listed["examples"]) == len(PAIRS) + 3
    assert [e["text"] for e in listed["examples"] if e["label"] is None] == ["tell me a joke"]
    assert len(fewshot.list_examples(task["id"], version=1)["examples"]) == len(PAIRS)

    timer_ids = [e["id"] for e in listed["examples"] if e["label"] == "timer"]
    removed = fewshot.remove_examples(task["id"], example_ids=timer_ids[:1], labels=["snooze"])
    assert removed["version"] == 3 and "snooze" not in removed["labels"] and "timer" in removed["labels"]

    versions = fewshot.versions(task["id"])
    assert versions["current"] == 3
    assert [(v["version"], v["change"]) for v in versions["versions"]] == [(1, "create"), (2, "append"), (3, "remove")]

    rolled = fewshot.rollback(task["id"], 1)
    assert rolled["version"] == 4 and rolled["labels"] == task["labels"]
    assert fewshot.predict(task["id"], QUERIES) == {**fewshot.predict(task["id"], QUERIES, version=1), "version": 4}


def test_update_task_sets_keeps_and_clears_the_threshold(fewshot: FewShotClient) -> None:
    task = fewshot.create_task("assistant", PAIRS, oos_threshold=1.01)
    assert task["oos_threshold_override"] == 1.01
    assert all(p["label"] is None for p in fewshot.predict(task["id"], QUERIES)["predictions"])
    renamed = fewshot.update_task(task["id"], name="renamed")
    assert renamed["name"] == "renamed" and renamed["oos_threshold_override"] == 1.01  # left out: unchanged
    cleared = fewshot.update_task(task["id"], oos_threshold=None)
    assert cleared["oos_threshold_override"] is None and isinstance(cleared["oos_threshold"], float)
    assert fewshot.update_task(task["id"], oos_threshold=0.2)["oos_threshold"] == 0.2


def test_zero_shot_labels_in_every_form(fewshot: FewShotClient) -> None:
    forms = [
        ["weather", {"name": "music", "description": "play music or a song"}, ("alarm", "set an alarm")],
        {"weather": None, "music": "play music or a song", "alarm": "set an alarm"},
    ]
    for labels in forms:
        task = fewshot.create_task("zero", labels=labels)
        assert task["labels"] == sorted(SYNTHETIC) and task["num_examples"] == 0
        assert task["label_descriptions"] == {"music": "play music or a song", "alarm": "set an alarm"}


def test_unlabelled_texts(fewshot: FewShotClient) -> None:
    task = fewshot.create_task("zero", labels=sorted(SYNTHETIC), unlabelled=UNLABELLED_POOL[:4])
    assert task["num_unlabelled"] == 4
    grown = fewshot.add_examples(task["id"], unlabelled=UNLABELLED_POOL[4:])
    assert grown["version"] == 2 and grown["num_unlabelled"] == len(UNLABELLED_POOL)
    kinds = {e["kind"] for e in fewshot.list_examples(task["id"])["examples"]}
    assert kinds == {"unlabelled"}
    assert fewshot.remove_examples(task["id"], unlabelled=True)["num_unlabelled"] == 0


def test_evaluate(fewshot: FewShotClient) -> None:
    task = fewshot.create_task("assistant", PAIRS)
    report = fewshot.evaluate(task["id"], SYNTHETIC_QUERIES)["report"]
    assert report["accuracy"] == 1.0 and report["macro_f1"] == 1.0 and report["confusions"] == []
    fewshot.update_task(task["id"], oos_threshold=1.01)
    result = fewshot.evaluate(task["id"], [*SYNTHETIC_QUERIES, ("tell me a joke", None)], version=1)
    assert result["version"] == 1 and result["report"]["out_of_scope"]["recall"] == 1.0


def test_export_and_import(client: TestClient, admin: FewShotClient, fewshot: FewShotClient) -> None:
    task = fewshot.create_task("assistant", PAIRS, out_of_scope=["tell me a joke"])
    document = fewshot.export_task(task["id"])
    assert document["format"] == "fewshot-task" and len(document["examples"]) == len(PAIRS)
    assert fewshot.export_task(task["id"], version=1) == document
    other = FewShotClient("http://testserver", api_key=admin.create_tenant("other")["api_key"], http_client=client)
    with pytest.raises(FewShotError) as caught:
        other.export_task(task["id"])
    assert caught.value.status_code == 404
    copy = other.import_task(json.loads(json.dumps(document)))
    assert copy["labels"] == task["labels"] and copy["num_out_of_scope"] == 1
    assert other.predict(copy["id"], QUERIES)["predictions"] == fewshot.predict(task["id"], QUERIES)["predictions"]


def test_errors_carry_the_service_body(client: TestClient, admin: FewShotClient, fewshot: FewShotClient) -> None:
    with pytest.raises(FewShotError) as caught:
        fewshot.create_task("one label", [("play music", "music")])
    error = caught.value
    assert (error.status_code, error.error) == (422, "validation_error") and "two labels" in error.detail
    assert str(error).startswith("422 validation_error: a task needs at least two labels")

    with pytest.raises(FewShotError) as caught:
        fewshot.predict("0" * 32, [])
    assert caught.value.status_code == 422 and isinstance(caught.value.detail, list)  # pydantic's errors
    assert "body.texts" in str(caught.value)

    anonymous = FewShotClient("http://testserver", http_client=client)
    with pytest.raises(FewShotError) as caught:
        anonymous.list_tasks()
    assert (caught.value.status_code, caught.value.error) == (401, "unauthorized")
    with pytest.raises(FewShotError) as caught:
        FewShotClient("http://testserver", admin_key="wrong", http_client=client).create_tenant("x")
    assert (caught.value.status_code, caught.value.error) == (403, "forbidden")
    with pytest.raises(FewShotError) as caught:
        fewshot.remove_examples(fewshot.create_task("t", PAIRS)["id"], labels=["cooking"])
    assert caught.value.error == "not_found"

    with pytest.raises(TypeError):
        fewshot.create_task("bad", [("only text",)])
    with pytest.raises(TypeError):
        fewshot.create_task("bad", [("text", None)])  # a training example needs a label


def test_a_custom_transport_and_non_json_errors() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/healthz":
            return httpx.Response(503, json={"status": "starting"})
        if request.url.path == "/v1/tasks":
            return httpx.Response(502, text="<html>Bad Gateway</html>")
        return httpx.Response(500, json={"unexpected": True})

    with FewShotClient("http://fewshot.example/", api_key="fsk_x", transport=httpx.MockTransport(handler)) as fewshot:
        assert fewshot.healthz() == {"status": "starting"}
        with pytest.raises(FewShotError) as caught:
            fewshot.list_tasks(limit=5)
        assert (caught.value.status_code, caught.value.error, caught.value.detail) == (502, "http_error",
                                                                                      "<html>Bad Gateway</html>")
        with pytest.raises(FewShotError) as caught:
            fewshot.get_task("abc")
        assert (caught.value.status_code, caught.value.detail) == (500, {"unexpected": True})
        http = fewshot._http
    assert http.is_closed  # the context manager closed the client's own connection pool
    assert str(seen[1].url) == "http://fewshot.example/v1/tasks?limit=5&offset=0"
    assert seen[1].headers["Authorization"] == "Bearer fsk_x"
    assert "Authorization" not in seen[0].headers  # healthz needs no key


def test_answers_that_are_not_the_service_and_retry_hints() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/healthz":
            return httpx.Response(200, text="<html>" + "welcome " * 100 + "</html>")
        if request.url.path.endswith("/predict"):
            return httpx.Response(503, json={"error": "overloaded", "detail": "busy"}, headers={"Retry-After": "2"})
        if request.url.path == "/v1/tasks/a-b":
            return httpx.Response(200, json={"id": "a-b"})
        return httpx.Response(307, headers={"Location": "http://elsewhere/"})

    with FewShotClient("http://fewshot.example", api_key="fsk_x", transport=httpx.MockTransport(handler)) as fewshot:
        with pytest.raises(FewShotError) as caught:
            fewshot.healthz()
        assert caught.value.error == "http_error" and "not JSON" in caught.value.detail
        assert len(caught.value.detail) < 300  # a web page is shortened, on one line
        with pytest.raises(FewShotError) as caught:
            fewshot.predict("abc", ["hello"])
        assert (caught.value.error, caught.value.retry_after) == ("overloaded", 2.0)
        with pytest.raises(FewShotError) as caught:
            fewshot.delete_task("abc")  # a redirect is not a success
        assert caught.value.status_code == 307 and "elsewhere" in caught.value.detail
        assert fewshot.get_task("a-b") == {"id": "a-b"}
        for bad in ("a/b", "a?b", "..", "a b"):  # an id is one URL-safe path segment
            with pytest.raises(ValueError, match="not an id"):
                fewshot.get_task(bad)
        for bad in (float("nan"), float("inf")):
            with pytest.raises(ValueError):
                fewshot.update_task("abc", oos_threshold=bad)
        with pytest.raises(ValueError):
            fewshot.get_task("")
        fewshot.api_key = "fsk_x\n"
        with pytest.raises(ValueError, match="line breaks"):
            fewshot.list_tasks()


def test_tenants_and_their_keys(admin: FewShotClient, client: TestClient) -> None:
    created = admin.create_tenant("acme")
    tenant = FewShotClient("http://testserver", api_key=created["api_key"], http_client=client)
    tenant.create_task("t", PAIRS)
    assert [(t["name"], t["num_tasks"]) for t in admin.list_tenants()["tenants"]] == [("acme", 1)]
    [first] = admin.list_keys(created["id"])
    second = admin.issue_key(created["id"])
    assert first["prefix"] == created["api_key"][:12] and "api_key" not in first and second["api_key"].startswith("fsk_")
    admin.revoke_key(created["id"], first["id"])
    with pytest.raises(FewShotError) as caught:
        tenant.list_tasks()
    assert caught.value.status_code == 401
    tenant.api_key = second["api_key"]
    assert tenant.list_tasks()["total"] == 1
    admin.delete_tenant(created["id"])
    assert admin.list_tenants()["total"] == 0
    with pytest.raises(ValueError, match="not an id"):
        admin.delete_tenant("../tasks")


def test_a_passed_in_http_client_is_not_closed(client: TestClient) -> None:
    with FewShotClient("http://testserver", http_client=client) as fewshot:
        assert fewshot.healthz()["status"] == "ok"
    assert not client.is_closed
    assert client.get("/healthz").status_code == 200

