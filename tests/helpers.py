"""Shared test helpers: fixture data, synthetic tasks and API shortcuts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

FIXTURES = Path(__file__).resolve().parent / "fixtures"
ADMIN_KEY = "test-admin-key-0123456789abcdef"

# Three intents with disjoint vocabularies: trivially separable for the fake encoder.
SYNTHETIC: dict[str, list[str]] = {
    "weather": ["what is the weather today", "will it rain tomorrow", "is it sunny outside", "weather forecast please"],
    "music": ["play some music", "play my favourite song", "turn the music up", "skip to the next song"],
    "alarm": ["set an alarm for seven", "wake me up with an alarm", "cancel my alarm", "alarm for tomorrow morning"],
}
SYNTHETIC_QUERIES: list[tuple[str, str]] = [
    ("what will the weather be tomorrow", "weather"),
    ("play a song", "music"),
    ("set my alarm", "alarm"),
    ("is it going to rain today", "weather"),
]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def admin_headers() -> dict[str, str]:
    return bearer(ADMIN_KEY)


def examples(data: dict[str, list[str]] | None = None) -> list[dict[str, str]]:
    """API example objects for ``data`` (default: the synthetic intents)."""
    return [{"text": text, "label": label} for label, texts in (data or SYNTHETIC).items() for text in texts]


def create_tenant(client: httpx.Client, name: str = "acme") -> dict[str, str]:
    """Create a tenant with the admin key; returns its auth headers."""
    response = client.post("/v1/tenants", json={"name": name}, headers=admin_headers())
    assert response.status_code == 201, response.text
    return bearer(response.json()["api_key"])


def create_task(client: httpx.Client, headers: dict[str, str], name: str = "assistant",
                data: list[dict[str, str]] | None = None) -> dict[str, Any]:
    response = client.post("/v1/tasks", json={"name": name, "examples": data or examples()}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def load_fixture(name: str) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(support, query) rows of ``fixtures/<name>_subset.jsonl``."""
    rows = [json.loads(line) for line in (FIXTURES / f"{name}_subset.jsonl").read_text("utf-8").splitlines() if line]
    support = [{"text": r["text"], "label": r["label"]} for r in rows if r["split"] == "support"]
    query = [{"text": r["text"], "label": r["label"]} for r in rows if r["split"] == "query"]
    return support, query


# Texts nobody labelled that put each label's name next to the words its queries use:
# refining the name prototypes with them fixes "is it going to rain today", which the
# bare name "weather" sends to "music" under the fake encoder.
UNLABELLED_POOL: list[str] = [
    "weather: rain today", "weather: will it rain", "weather: rain or sun today",
    "music: play a song", "music: play songs", "alarm: wake me up", "alarm: set my alarm",
]
