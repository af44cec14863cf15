"""Shapes of the service's JSON bodies and of the client's arguments, as ``TypedDict``s
and aliases, so callers of :class:`app.client.FewShotClient` get editor help and type
checks (the client returns plain dicts; these types add no runtime checks)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypedDict, Union


# --- response shapes ------------------------------------------------------------------
class TenantCreated(TypedDict):
    id: str
    name: str
    api_key: str


class TenantInfo(TypedDict):
    id: str
    name: str
    created_at: str
    num_tasks: int


class TenantList(TypedDict):
    tenants: list[TenantInfo]
    total: int


class ApiKeyInfo(TypedDict, total=False):
    id: int
    prefix: str
    created_at: str
    api_key: str  # only in the answer that issues it


class Task(TypedDict):
    id: str
    name: str
    version: int
    labels: list[str]
    label_descriptions: dict[str, str]
    num_examples: int
    num_out_of_scope: int
    num_unlabelled: int
    adapted_ms: float
    temperature: float
    oos_threshold: float | None
    oos_threshold_override: float | None
    created_at: str
    updated_at: str


class TaskList(TypedDict):
    tasks: list[Task]
    total: int


class Version(TypedDict):
    version: int
    change: str | None
    parent_version: int | None
    labels: list[str]
    num_examples: int
    adapted_ms: float
    created_at: str


class VersionList(TypedDict):
    current: int
    versions: list[Version]


class Example(TypedDict):
    id: int
    text: str
    label: str | None
    kind: str  # labelled, out_of_scope or unlabelled


class ExampleList(TypedDict):
    version: int
    examples: list[Example]
    label_descriptions: dict[str, str]


class LabelScore(TypedDict):
    label: str
    score: float


class Prediction(TypedDict):
    label: str | None
    score: float
    top_k: list[LabelScore]
    out_of_scope: bool
    ambiguous: bool
    in_scope_score: float


class PredictResult(TypedDict):
    version: int
    predictions: list[Prediction]


class EvaluateResult(TypedDict):
    version: int
    report: dict[str, Any]


class Health(TypedDict, total=False):
    status: str
    encoder: str
    device: str


# --- request shapes -------------------------------------------------------------------
ExampleLike = Union[Mapping[str, Any], tuple[str, Union[str, None]]]
"""``{"text": ..., "label": ...}`` or ``(text, label)``."""
LabelLike = Union[str, Mapping[str, Any], tuple[str, Union[str, None]]]
"""``"name"``, ``{"name": ..., "description": ...}`` or ``(name, description)``."""
Labels = Union[Iterable[LabelLike], Mapping[str, Union[str, None]]]
"""A list of :data:`LabelLike`, or a mapping ``{name: description or None}``."""
