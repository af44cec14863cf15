"""Contract fuzzing: schemathesis generates requests from the service's own OpenAPI
document and checks every answer against it.

Each operation is fuzzed as a tenant and as the admin, with the fake encoder, on one
fresh database per backend (SQLite, and PostgreSQL when ``FEWSHOT_TEST_POSTGRES_URL``
is set) that all of this module's cases share: a migrated database and a started app
per operation would cost more than the cases themselves. Checks: no 5xx (``not_a_server_error``), the body matches the
documented schema, the status is documented, the content type is the documented one.
Path parameters mostly name objects that exist (a task of the tenant, the tenant
itself), so that the fuzzer reaches past 404 into the operations' real work.

``FEWSHOT_FUZZ_EXAMPLES`` (default 8) bounds the cases per operation and role, so
``FEWSHOT_FUZZ_EXAMPLES=1000`` fuzzes about 40,000; ``FEWSHOT_FUZZ_SEED`` (default 18)
picks the seed (the run is reproducible for one seed)."""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, seed, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import get_client
from schemathesis.specs.openapi.checks import (
    content_type_conformance, response_schema_conformance, status_code_conformance,
)

from app.db.migrate import upgrade_head
from app.main import create_app
from app.settings import Settings
from tests.conftest import POSTGRES_ENV, _fresh_postgres, make_settings
from tests.fakes import FakeEncoder
from tests.helpers import admin_headers, bearer, create_task, examples

EXAMPLES = int(os.environ.get("FEWSHOT_FUZZ_EXAMPLES", "8"))
SEED = int(os.environ.get("FEWSHOT_FUZZ_SEED", "18"))
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]
BASE_URL = "http://testserver"

# The document does not depend on the database or the encoder: built once, without a lifespan.
schema = schemathesis.openapi.from_dict(
    create_app(Settings(_env_file=None, database_url="sqlite://", checkpoint="none")).openapi())


class World:
    """What the fuzzed requests point at: one tenant and two of its tasks, made again
    whenever a fuzzed DELETE removed them."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.tenant_id, self.tenant = "", {}
        self.tasks: list[str] = []
        self.refresh()

    def refresh(self) -> None:
        # Its own key says whether the tenant is still there (a list of tenants is paged).
        if not self.tenant or self.client.get("/v1/tasks?limit=1", headers=self.tenant).status_code == 401:
            created = self.client.post("/v1/tenants", json={"name": "fuzzed"}, headers=admin_headers()).json()
            self.tenant_id, self.tenant, self.tasks = created["id"], bearer(created["api_key"]), []
        live = [t for t in self.tasks if self.client.get(f"/v1/tasks/{t}", headers=self.tenant).status_code == 200]
        while len(live) < 2:
            live.append(create_task(self.client, self.tenant, f"task {len(live)}", examples())["id"])
        self.tasks = live

    def aim(self, case: Any) -> None:
        """Three cases in four name an existing task or tenant (chosen from the case's own
        content, so that a case replays the same way)."""
        pick = zlib.crc32(repr((case.path_parameters, case.body, case.query)).encode())
        params = case.path_parameters or {}
        if pick % 4 == 0:
            return
        if "task_id" in params:
            params["task_id"] = self.tasks[pick % 2]
        if "tenant_id" in params:
            params["tenant_id"] = self.tenant_id


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def fuzzed_app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    """The app over a fresh migrated database, its lifespan running for the whole module."""
    if request.param == "sqlite":
        urls: Iterator[str] = iter([f"sqlite:///{Path(tmp_path_factory.mktemp('fuzz')) / 'fewshot.db'}"])
    elif os.environ.get(POSTGRES_ENV):
        urls = _fresh_postgres(os.environ[POSTGRES_ENV])
    else:
        pytest.skip(f"set {POSTGRES_ENV} to test PostgreSQL")
    url = next(urls)
    try:
        upgrade_head(url)
        app = create_app(make_settings(url, auto_migrate=False), encoder=FakeEncoder())
        with TestClient(app) as client:
            app.state.world = World(client)
            yield app
    finally:
        next(urls, None)  # drops a PostgreSQL database


@pytest.mark.parametrize("role", ["tenant", "admin"])
@schema.parametrize()
@seed(SEED)
@settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=False, print_blob=True,
          suppress_health_check=list(HealthCheck))
def test_every_answer_matches_the_openapi_document(case: Any, role: str, fuzzed_app: FastAPI) -> None:
    app, world = fuzzed_app, fuzzed_app.state.world
    world.refresh()
    world.aim(case)
    headers = world.tenant if role == "tenant" else admin_headers()
    # Requests go straight to the ASGI app, whose lifespan the ``client`` fixture runs.
    case.call_and_validate(base_url=BASE_URL, session=get_client(app), headers=headers, checks=CHECKS)
