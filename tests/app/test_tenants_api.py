"""/v1/tenants: admin only; keys authenticate tenants, can be rotated and revoked; a deleted tenant takes its tasks."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from app.security import TENANT_KEY_PREFIX, hash_api_key
from tests.helpers import admin_headers, bearer, create_task


def test_admin_creates_a_tenant_with_a_one_time_key(client: TestClient, db_engine: Engine) -> None:
    response = client.post("/v1/tenants", json={"name": "acme"}, headers=admin_headers())
    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "acme" and body["id"]
    assert body["api_key"].startswith(TENANT_KEY_PREFIX)
    with db_engine.connect() as connection:
        stored = connection.execute(text("SELECT key_hash, prefix FROM api_keys")).all()
    assert stored == [(hash_api_key(body["api_key"]), body["api_key"][:12])]  # only the hash is kept


def test_keys_are_distinct_per_tenant(client: TestClient) -> None:
    responses = [client.post("/v1/tenants", json={"name": f"t{i}"}, headers=admin_headers()) for i in range(3)]
    keys = {response.json()["api_key"] for response in responses}
    assert len(keys) == 3


def test_without_admin_key_is_401(client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer "}):
        response = client.post("/v1/tenants", json={"name": "acme"}, headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["error"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"


def test_wrong_admin_key_is_403(client: TestClient) -> None:
    response = client.post("/v1/tenants", json={"name": "acme"}, headers=bearer("not-the-admin-key"))
    assert response.status_code == 403
    assert response.json() == {"error": "forbidden", "detail": "this call needs the admin key"}


def test_tenant_key_cannot_create_tenants(client: TestClient, tenant: dict[str, str]) -> None:
    response = client.post("/v1/tenants", json={"name": "sneaky"}, headers=tenant)
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"


def test_admin_key_is_not_a_tenant_key(client: TestClient) -> None:
    response = client.get("/v1/tasks", headers=admin_headers())
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


def test_task_routes_need_a_valid_tenant_key(client: TestClient) -> None:
    calls = [("get", "/v1/tasks", None), ("post", "/v1/tasks", {"name": "t", "examples": []}),
             ("get", "/v1/tasks/abc", None), ("delete", "/v1/tasks/abc", None),
             ("post", "/v1/tasks/abc/predict", {"texts": ["a"]}), ("post", "/v1/tasks/abc/examples", {"examples": []})]
    for headers in ({}, bearer("fsk_made-up-key")):
        for method, path, body in calls:
            response = client.request(method, path, json=body, headers=headers)
            assert response.status_code == 401, (method, path, headers)
            assert response.json()["error"] == "unauthorized"


def test_tenant_name_is_validated(client: TestClient) -> None:
    for body in ({"name": ""}, {}, {"name": "x", "extra": 1}, {"name": "x" * 201}):
        response = client.post("/v1/tenants", json=body, headers=admin_headers())
        assert response.status_code == 422, body
        assert response.json()["error"] == "validation_error"



def test_keys_are_rotated_without_downtime_and_revoked(client: TestClient) -> None:
    created = client.post("/v1/tenants", json={"name": "acme"}, headers=admin_headers()).json()
    old_key, tenant_id = created["api_key"], created["id"]
    task = create_task(client, bearer(old_key))
    keys = client.get(f"/v1/tenants/{tenant_id}/keys", headers=admin_headers()).json()["keys"]
    assert [k["prefix"] for k in keys] == [old_key[:12]] and "api_key" not in keys[0]  # no secret is shown again
    assert keys[0]["created_at"].endswith("Z")  # UTC, marked as such on every database
    issued = client.post(f"/v1/tenants/{tenant_id}/keys", headers=admin_headers())
    assert issued.status_code == 201 and issued.json()["api_key"].startswith("fsk_")
    new_key = issued.json()["api_key"]
    for key in (old_key, new_key):  # both work during the move
        assert client.get(f"/v1/tasks/{task['id']}", headers=bearer(key)).status_code == 200
    revoked = client.delete(f"/v1/tenants/{tenant_id}/keys/{keys[0]['id']}", headers=admin_headers())
    assert revoked.status_code == 204
    assert client.get(f"/v1/tasks/{task['id']}", headers=bearer(old_key)).status_code == 401
    assert client.get(f"/v1/tasks/{task['id']}", headers=bearer(new_key)).status_code == 200
    last = client.delete(f"/v1/tenants/{tenant_id}/keys/{issued.json()['id']}", headers=admin_headers())
    assert last.status_code == 422 and "last key" in last.json()["detail"]
    assert client.delete(f"/v1/tenants/{tenant_id}/keys/999999", headers=admin_headers()).status_code == 404


def test_deleting_a_tenant_deletes_its_tasks_and_keys(client: TestClient, db_engine: Engine) -> None:
    acme = client.post("/v1/tenants", json={"name": "acme"}, headers=admin_headers()).json()
    other = client.post("/v1/tenants", json={"name": "other"}, headers=admin_headers()).json()
    create_task(client, bearer(acme["api_key"]))
    kept = create_task(client, bearer(other["api_key"]))
    listed = client.get("/v1/tenants", headers=admin_headers()).json()
    assert listed["total"] == 2 and [(t["name"], t["num_tasks"]) for t in listed["tenants"]] == [("acme", 1), ("other", 1)]
    assert all(t["created_at"].endswith("Z") for t in listed["tenants"])
    assert client.delete(f"/v1/tenants/{acme['id']}", headers=admin_headers()).status_code == 204
    assert client.get("/v1/tasks", headers=bearer(acme["api_key"])).status_code == 401
    with db_engine.connect() as connection:
        rows = {table: connection.execute(text(f"SELECT count(*) FROM {table}")).scalar()
                for table in ("tenants", "api_keys", "tasks", "examples", "adapter_versions")}
    assert rows["tenants"] == rows["api_keys"] == rows["tasks"] == rows["adapter_versions"] == 1
    assert rows["examples"] == kept["num_examples"]
    assert client.get(f"/v1/tasks/{kept['id']}", headers=bearer(other["api_key"])).status_code == 200
    assert client.delete(f"/v1/tenants/{acme['id']}", headers=admin_headers()).status_code == 404
    # tenants' own keys cannot manage tenants
    assert client.get("/v1/tenants", headers=bearer(other["api_key"])).status_code == 403
