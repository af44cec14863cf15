"""Request bodies and paths of :mod:`app.client`, checked before anything is sent.

An argument the service could never accept raises ``ValueError`` (an id that is not one
URL-safe path segment, a non-finite threshold) or ``TypeError`` (an example without a
label, a label of the wrong shape) here, instead of becoming a request."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from app.client.shapes import ExampleLike, Labels

_ID = re.compile(r"[A-Za-z0-9_.~-]+")


def task_path(task_id: str, suffix: str = "") -> str:
    """``/v1/tasks/{id}{suffix}``."""
    return path("/v1/tasks/", task_id, suffix)


def path(prefix: str, identifier: str, suffix: str = "") -> str:
    """``prefix + id + suffix``; an id is one path segment of URL-safe characters (the
    service's ids are 32 hex digits), so ``"abc/versions"`` cannot reach another route."""
    if not isinstance(identifier, str) or not _ID.fullmatch(identifier) or identifier in (".", ".."):
        raise ValueError(f"not an id: {identifier!r}" if identifier else "an id is needed (got an empty one)")
    return f"{prefix}{identifier}{suffix}"


def finite(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"oos_threshold must be a finite number, got {value!r}")
    return float(value)


def drop_none(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def change(examples_: Iterable[ExampleLike], labels_: Labels | None, out_of_scope: Iterable[str] | None,
           unlabelled: Iterable[str] | None) -> dict[str, Any]:
    """The body of a create or an add: examples, and whatever else is given."""
    body: dict[str, Any] = {"examples": examples(examples_)}
    if labels_ is not None:
        body["labels"] = labels(labels_)
    if out_of_scope is not None:
        body["out_of_scope"] = texts(out_of_scope)
    if unlabelled is not None:
        body["unlabelled"] = texts(unlabelled)
    return body


def texts(texts: str | Iterable[str]) -> list[str]:
    return [texts] if isinstance(texts, str) else list(texts)


def examples(examples: Iterable[ExampleLike], allow_none: bool = False) -> list[dict[str, Any]]:
    out = []
    for i, item in enumerate(examples):
        if isinstance(item, Mapping):
            text, label = item.get("text"), item.get("label")
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            text, label = item
        else:
            raise TypeError(f"examples[{i}]: expected a {{'text', 'label'}} mapping or a (text, label) pair, got {item!r}")
        if label is None and not allow_none:
            raise TypeError(f"examples[{i}] has no label")
        out.append({"text": text, "label": label})
    return out


def labels(labels: Labels) -> list[dict[str, Any]]:
    if isinstance(labels, Mapping):
        return [{"name": name, "description": description} for name, description in labels.items()]
    out = []
    for i, item in enumerate(labels):
        if isinstance(item, str):
            out.append({"name": item})
        elif isinstance(item, Mapping):
            out.append({"name": item.get("name"), "description": item.get("description")})
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            out.append({"name": item[0], "description": item[1]})
        else:
            raise TypeError(f"labels[{i}]: expected a name, a {{'name', 'description'}} mapping or a pair, got {item!r}")
    return out
