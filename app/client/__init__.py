"""The Python client of the service: typed calls over HTTP, with httpx as its only dependency.

It imports nothing of the server (no FastAPI, SQLAlchemy, torch or ``app`` server
modules), so an application can use it without installing the service's stack:

- :mod:`app.client.client`: :class:`FewShotClient` and :class:`FewShotError`;
- :mod:`app.client.shapes`: the ``TypedDict`` shapes of the service's JSON bodies;
- :mod:`app.client.bodies`: request bodies and paths, checked before anything is sent.
"""

from __future__ import annotations

from app.client.client import UNSET, FewShotClient, FewShotError
from app.client.shapes import (
    ApiKeyInfo,
    EvaluateResult,
    Example,
    ExampleList,
    Health,
    LabelScore,
    Prediction,
    PredictResult,
    Task,
    TaskList,
    TenantCreated,
    TenantList,
    Version,
    VersionList,
)

__all__ = [
    "FewShotClient", "FewShotError", "UNSET",
    "Task", "TaskList", "Version", "VersionList", "Example", "ExampleList", "LabelScore", "Prediction",
    "PredictResult", "EvaluateResult", "TenantCreated", "TenantList", "ApiKeyInfo", "Health",
]
