"""A small typed Python client for the few-shot intent classification service.

It needs only httpx (no torch, no FastAPI), so it can be used from any application::

    from app.client import FewShotClient, FewShotError

    with FewShotClient("http://127.0.0.1:8000", api_key="fsk_...") as fewshot:
        task = fewshot.create_task("banking", [("what is my balance", "check_balance"),
                                               ("i lost my card", "lost_card")])
        result = fewshot.predict(task["id"], ["someone took my card"])
        print(result["predictions"][0]["label"])

Every method returns the service's JSON body (plain dicts, typed below as
``TypedDict``s). An answer with an error status (or any answer that is not a 2xx with
a JSON body) raises :class:`FewShotError`, built from the service's ``{"error",
"detail"}`` body; network failures raise httpx's own ``httpx.TransportError``
subclasses (e.g. ``httpx.ConnectError``, ``httpx.TimeoutException``). Arguments the
service could never accept (an empty task id, a non-finite threshold, a key with
spaces or non-ASCII characters) raise ``ValueError`` before anything is sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

import httpx

from app.client import bodies as req
from app.client.shapes import (
    ApiKeyInfo,
    EvaluateResult,
    ExampleLike,
    ExampleList,
    Health,
    Labels,
    PredictResult,
    Task,
    TaskList,
    TenantCreated,
    TenantList,
    VersionList,
)

__all__ = ["FewShotClient", "FewShotError", "UNSET"]  # the shapes are exported by app.client

DEFAULT_URL = "http://127.0.0.1:8000"


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()
"""Marks an argument of :meth:`FewShotClient.update_task` as "leave unchanged"."""


class FewShotError(Exception):
    """An error answer of the service.

    ``status_code`` is the HTTP status, ``error`` the machine-readable code (e.g.
    ``not_found``, ``validation_error``, ``limit_exceeded``) and ``detail`` the
    service's explanation (a string, or for ``validation_error`` pydantic's list of
    errors). Answers without the service's error body (e.g. from a proxy, or a URL
    that is not the service) get the code ``http_error`` and the body (or the start of
    its text) as detail. ``headers`` are the answer's headers; ``retry_after`` is its
    ``Retry-After`` in seconds (sent with 503 and 429 ``rate_limited``), else None."""

    def __init__(self, status_code: int, error: str, detail: object,
                 headers: Mapping[str, str] | None = None) -> None:
        self.status_code = status_code
        self.error = error
        self.detail = detail
        self.headers: Mapping[str, str] = headers if headers is not None else {}
        super().__init__(f"{status_code} {error}: {_describe(detail)}")

    @property
    def retry_after(self) -> float | None:
        try:
            return float(self.headers.get("retry-after", ""))
        except ValueError:
            return None

    @classmethod
    def from_response(cls, response: httpx.Response) -> FewShotError:
        headers = response.headers
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            text = " ".join(response.text.split())
            text = text if len(text) <= 200 else text[:200] + "…"
            if response.is_success:
                text = f"the answer is not JSON, is {response.request.url.copy_with(path='/', query=None)} the service? ({text})"
            elif response.is_redirect:
                text = f"redirected to {response.headers.get('location')}"
            return cls(response.status_code, "http_error", text or response.reason_phrase, headers)
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            return cls(response.status_code, body["error"], body.get("detail"), headers)
        return cls(response.status_code, "http_error", body, headers)


def _describe(detail: object) -> str:
    """Pydantic's validation errors as ``loc: msg; ...``; anything else as is."""
    if isinstance(detail, list) and all(isinstance(item, dict) and "msg" in item for item in detail):
        return "; ".join(
            f"{'.'.join(str(part) for part in item.get('loc', ()))}: {item['msg']}" for item in detail
        )
    return str(detail)


class FewShotClient:
    """Client of one service at ``base_url``.

    ``api_key`` authenticates the task calls (a tenant's key, ``fsk_...``);
    ``admin_key`` the tenant calls (:meth:`create_tenant`, :meth:`list_keys`, ...). Both are plain attributes and may be set
    later, e.g. ``client.api_key = client.create_tenant("acme")["api_key"]``.

    ``transport`` replaces httpx's network transport (e.g. ``httpx.MockTransport``);
    ``http_client`` makes the client send its requests through an existing
    ``httpx.Client`` (for example a FastAPI ``TestClient``), which is then not closed
    by :meth:`close`. Use the client as a context manager, or call :meth:`close`."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        admin_key: str | None = None,
        timeout: float | None = 60.0,
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.admin_key = admin_key
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else httpx.Client(timeout=timeout, transport=transport)

    # --- lifecycle -------------------------------------------------------------------
    def close(self) -> None:
        """Close the connection pool (not an ``http_client`` passed in)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> FewShotClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FewShotClient({self.base_url!r})"

    # --- tenants and health ------------------------------------------------------------
    def healthz(self) -> Health:
        """``{"status": "ok", "encoder": ..., "device": ...}`` once the server is ready;
        ``{"status": "starting"}`` (HTTP 503) while it loads the encoder, and
        ``{"status": "database_unavailable"}`` (HTTP 503) when its database does not answer."""
        response = self._http.request("GET", self._url("/healthz"))
        if response.status_code == 503:
            body = _json_or_none(response)
            if isinstance(body, dict) and "status" in body:
                return body  # type: ignore[return-value]
        return self._body(response)

    def create_tenant(self, name: str) -> TenantCreated:
        """Create a tenant with the admin key; the answer holds its API key (shown once)."""
        return self._call("POST", "/v1/tenants", {"name": name}, key=self.admin_key)

    def list_tenants(self, limit: int = 100, offset: int = 0) -> TenantList:
        """One page of tenants (admin key), each with its number of tasks."""
        return self._call("GET", "/v1/tenants", params={"limit": limit, "offset": offset}, key=self.admin_key)

    def delete_tenant(self, tenant_id: str) -> None:
        """Delete a tenant with its keys and all its tasks (admin key)."""
        self._call("DELETE", req.path("/v1/tenants/", tenant_id), key=self.admin_key)

    def list_keys(self, tenant_id: str) -> list[ApiKeyInfo]:
        """A tenant's API keys: ids, prefixes and creation times, never the keys (admin key)."""
        return self._call("GET", req.path("/v1/tenants/", tenant_id, "/keys"), key=self.admin_key)["keys"]

    def issue_key(self, tenant_id: str) -> ApiKeyInfo:
        """Another API key for the tenant, shown once in ``api_key``; the others keep
        working until revoked, so clients can move to it without downtime (admin key)."""
        return self._call("POST", req.path("/v1/tenants/", tenant_id, "/keys"), key=self.admin_key)

    def revoke_key(self, tenant_id: str, key_id: int) -> None:
        """Revoke one of a tenant's keys (not its last one) (admin key)."""
        self._call("DELETE", req.path("/v1/tenants/", tenant_id, f"/keys/{int(key_id)}"), key=self.admin_key)

    # --- tasks -------------------------------------------------------------------------
    def create_task(
        self,
        name: str,
        examples: Iterable[ExampleLike] = (),
        labels: Labels | None = None,
        out_of_scope: Iterable[str] | None = None,
        oos_threshold: float | None = None,
        unlabelled: Iterable[str] | None = None,
    ) -> Task:
        """Create a task; its adapter is ready when this returns.

        ``examples`` are ``{"text", "label"}`` dicts or ``(text, label)`` tuples;
        ``labels`` declares labels, optionally with a description, which may have no
        examples (zero-shot); ``out_of_scope`` are texts that belong to no label;
        ``oos_threshold`` overrides the calibrated out-of-scope threshold; and
        ``unlabelled`` are texts without labels (past tickets, say) that refine the
        label prototypes, which helps most with 0-2 examples per label."""
        body = {"name": name, **req.change(examples, labels, out_of_scope, unlabelled)}
        if oos_threshold is not None:
            body["oos_threshold"] = req.finite(oos_threshold)
        return self._call("POST", "/v1/tasks", body)

    def list_tasks(self, limit: int = 100, offset: int = 0) -> TaskList:
        """One page of the tenant's tasks (``limit`` 1..500) and their total count."""
        return self._call("GET", "/v1/tasks", params={"limit": limit, "offset": offset})

    def get_task(self, task_id: str) -> Task:
        """The task at its current version."""
        return self._call("GET", req.task_path(task_id))

    def update_task(self, task_id: str, *, name: str | None = None, oos_threshold: float | None = UNSET) -> Task:
        """Rename the task and/or set its out-of-scope threshold override
        (``oos_threshold=None`` clears it; leave it out to keep it). Not versioned."""
        body: dict[str, Any] = {}
        if name is not None:
            body["name"] = name
        if oos_threshold is not UNSET:
            body["oos_threshold"] = None if oos_threshold is None else req.finite(oos_threshold)
        return self._call("PATCH", req.task_path(task_id), body)

    def delete_task(self, task_id: str) -> None:
        """Delete the task with all its examples and versions."""
        self._call("DELETE", req.task_path(task_id))

    def add_examples(
        self,
        task_id: str,
        examples: Iterable[ExampleLike] = (),
        labels: Labels | None = None,
        out_of_scope: Iterable[str] | None = None,
        unlabelled: Iterable[str] | None = None,
    ) -> Task:
        """Add examples, labels, out-of-scope and/or unlabelled texts: a new version,
        adapted from the current one (afresh when unlabelled texts are added). Returns
        the task at the new version."""
        return self._call("POST", req.task_path(task_id, "/examples"), req.change(examples, labels, out_of_scope, unlabelled))

    def list_examples(self, task_id: str, version: int | None = None) -> ExampleList:
        """The examples of a version (default: the current one) with their ids;
        out-of-scope examples and unlabelled texts have the label None (see ``kind``)."""
        return self._call("GET", req.task_path(task_id, "/examples"), params=req.drop_none(version=version))

    def remove_examples(self, task_id: str, example_ids: Iterable[int] = (), labels: Iterable[str] = (),
                        unlabelled: bool = False) -> Task:
        """A new version without these examples (ids from :meth:`list_examples`),
        without these labels (with all their examples) and, with ``unlabelled``,
        without any unlabelled text."""
        body = {"example_ids": list(example_ids), "labels": req.texts(labels), "unlabelled": unlabelled}
        return self._call("POST", req.task_path(task_id, "/remove"), body)

    def versions(self, task_id: str) -> VersionList:
        """All versions of the task, oldest first, and the current version number."""
        return self._call("GET", req.task_path(task_id, "/versions"))

    def rollback(self, task_id: str, version: int) -> Task:
        """Make a new version with the content (and adapter) of ``version``."""
        return self._call("POST", req.task_path(task_id, "/rollback"), {"version": version})

    def predict(self, task_id: str, texts: str | Sequence[str], top_k: int = 3, version: int | None = None) -> PredictResult:
        """Classify texts (a single string is one text), optionally with a pinned
        version. A prediction's ``label`` is None when the text is out of scope."""
        body: dict[str, Any] = {"texts": req.texts(texts), "top_k": top_k}
        if version is not None:
            body["version"] = version
        return self._call("POST", req.task_path(task_id, "/predict"), body)

    def evaluate(self, task_id: str, examples: Iterable[ExampleLike], version: int | None = None) -> EvaluateResult:
        """Accuracy (with and before rejection), macro-F1, calibration error, per-label
        precision/recall, confusions and (when some gold labels are None, i.e. out of
        scope) out-of-scope precision/recall and AUROC."""
        body: dict[str, Any] = {"examples": req.examples(examples, allow_none=True)}
        if version is not None:
            body["version"] = version
        return self._call("POST", req.task_path(task_id, "/evaluate"), body)

    def export_task(self, task_id: str, version: int | None = None) -> dict[str, Any]:
        """The task (default: its current version) as one JSON document for :meth:`import_task`."""
        return self._call("GET", req.task_path(task_id, "/export"), params=req.drop_none(version=version))

    def import_task(self, document: Mapping[str, Any]) -> Task:
        """Create a task (in this client's tenant) from an exported document."""
        return self._call("POST", "/v1/tasks/import", dict(document))

    # --- plumbing ----------------------------------------------------------------------
    def _url(self, path: str) -> str:
        return self.base_url + path

    def _call(self, method: str, path: str, body: Any = None, params: Mapping[str, Any] | None = None,
              key: str | None | _Unset = UNSET) -> Any:
        key = self.api_key if key is UNSET else key
        if key and not (key.isascii() and key.isprintable() and key == key.strip() and " " not in key):
            raise ValueError("the API key has spaces, line breaks or non-ASCII characters: check how it was copied")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        response = self._http.request(method, self._url(path), json=body, params=params, headers=headers)
        return self._body(response)

    @staticmethod
    def _body(response: httpx.Response) -> Any:
        if not response.is_success:  # errors, and redirects (the service sends none)
            raise FewShotError.from_response(response)
        if response.status_code == 204 or not response.content:
            return None
        body = _json_or_none(response)
        if body is None:
            raise FewShotError.from_response(response)
        return body


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
