"""Every status the service can answer is in its OpenAPI document, with the error body.

The document is what clients and contract tests (schemathesis) check responses against:
a status missing from it reads as a broken contract even where the answer is right."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.helpers import admin_headers

ERROR_REF = "#/components/schemas/ErrorBody"
NOT_UTF8 = "{\"name\": \"caf\xe9\"}".encode("latin-1")  # valid Latin-1, invalid UTF-8


def _operations(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, operation)
            for path, item in app.openapi()["paths"].items() for method, operation in item.items()]


def _error_ref(operation: dict[str, Any], status: int) -> str | None:
    response = operation["responses"].get(str(status))
    if response is None:
        return None
    return response["content"]["application/json"]["schema"].get("$ref")


def test_every_operation_documents_400_with_the_error_body(app: FastAPI) -> None:
    missing = [f"{method} {path}" for method, path, op in _operations(app) if _error_ref(op, 400) != ERROR_REF]
    assert missing == []


def test_every_operation_documents_the_statuses_every_request_can_get(app: FastAPI) -> None:
    """413 (body size) applies to any request; a body or a parameter can be invalid (422);
    the database can stop answering (503); /v1 needs a key (401)."""
    problems = []
    for method, path, op in _operations(app):
        wanted = [413, 503] if path == "/healthz" else [401, 413, 422, 503]
        problems += [f"{method} {path} {code}" for code in wanted if str(code) not in op["responses"]]
        problems += [f"{method} {path} {code} body" for code in wanted
                     if path != "/healthz" and _error_ref(op, code) != ERROR_REF]
    assert problems == []


def test_admin_operations_document_403_and_task_changes_document_409_and_412(app: FastAPI) -> None:
    problems = []
    for method, path, op in _operations(app):
        if path.startswith("/v1/tenants") and "403" not in op["responses"]:
            problems.append(f"{method} {path} 403")
        if path.startswith("/v1/tasks/{task_id}") and method in ("POST", "PATCH", "DELETE") \
                and not path.endswith(("/predict", "/evaluate")):
            problems += [f"{method} {path} {code}" for code in (409, 412) if str(code) not in op["responses"]]
            if not any(p["name"] == "If-Match" and p["in"] == "header" for p in op.get("parameters", [])):
                problems.append(f"{method} {path} If-Match")
    assert problems == []


def test_a_body_that_is_not_utf8_gets_a_documented_400_from_every_operation_with_a_body(
        app: FastAPI, client: TestClient, tenant: dict[str, str]) -> None:
    """What the document says is what the service does: each operation that takes a body
    answers an undecodable one with 400 ``invalid_body``, and lists 400."""
    answered = []
    for method, path, op in _operations(app):
        if "requestBody" not in op:
            continue
        url = path.replace("{task_id}", "0" * 32).replace("{tenant_id}", "0" * 32)
        headers = {**tenant, "content-type": "application/json"}
        if path.startswith("/v1/tenants"):
            headers.update(admin_headers())
        response = client.request(method, url, content=NOT_UTF8, headers=headers)
        answered.append((method, path, response.status_code, response.json()["error"], "400" in op["responses"]))
    assert answered and all(row[2:] == (400, "invalid_body", True) for row in answered), answered
