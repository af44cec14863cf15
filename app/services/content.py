"""What a task version is made of, and how it becomes an adapter.

A version is immutable: a set of example ids (in-scope examples, out-of-scope
negatives and unlabelled texts) plus its declared labels with their descriptions. Declared labels take
part in adaptation through a pseudo-example (the description, else the name with
underscores as spaces), which is what lets a label start zero-shot and improve as
examples arrive. Unlabelled texts (past tickets nobody labelled) move each label's
starting prototype toward the texts it claims (``models.classifier.fit_adapter``)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from app.db.tables import Example
from app.repositories.tasks import TaskRepository
from app.services.engine import AdaptationEngine
from models.adapter import Adapter


def label_prompt(name: str, description: str | None) -> str:
    return description.strip() if description and description.strip() else name.replace("_", " ")


@dataclass
class VersionContent:
    examples: list[Example]
    label_descriptions: dict[str, str] = field(default_factory=dict)

    @property
    def in_scope(self) -> list[Example]:
        return [row for row in self.examples if not (row.out_of_scope or row.unlabelled)]

    @property
    def negatives(self) -> list[Example]:
        return [row for row in self.examples if row.out_of_scope]

    @property
    def unlabelled(self) -> list[Example]:
        return [row for row in self.examples if row.unlabelled]

    @property
    def labels(self) -> list[str]:
        return sorted({row.label for row in self.in_scope} | set(self.label_descriptions))

    @property
    def example_ids(self) -> list[int]:
        return [row.id for row in self.examples]


class AdapterBuilder:
    """Embeddings (cached per example in the database) and adaptation for a version."""

    def __init__(self, engine: AdaptationEngine, tasks: TaskRepository) -> None:
        self.engine = engine
        self.tasks = tasks

    def embeddings(self, rows: Sequence[Example]) -> torch.Tensor:
        """Cached embeddings where this encoder made them; the rest embedded and saved."""
        fingerprint = self.engine.fingerprint
        stale = [row for row in rows if row.embedding is None or row.embedding_fingerprint != fingerprint]
        if stale:
            fresh = self.engine.to_bytes(self.engine.embed([row.text for row in stale]))
            for row, data in zip(stale, fresh):
                row.embedding, row.embedding_fingerprint = data, fingerprint
            self.tasks.session.flush()
        if not rows:
            return torch.empty(0, self.engine.encoder.dim, device=self.engine.encoder.device)
        return self.engine.from_bytes([row.embedding for row in rows])  # type: ignore[misc]

    def build(self, content: VersionContent, previous: Adapter | None = None) -> tuple[Adapter, float]:
        """The version's adapter and the server-side time (embedding + adaptation) in ms."""
        started = time.perf_counter()
        in_scope = content.in_scope
        names = sorted(content.label_descriptions)
        prompts = [label_prompt(name, content.label_descriptions[name]) for name in names]
        support = torch.cat([self.embeddings(in_scope), self.engine.embed(prompts)])
        negatives, unlabelled = content.negatives, content.unlabelled
        negative_embeddings = self.embeddings(negatives) if negatives else None
        # A continual update keeps the previous rows of the labels it had, so refined
        # prototypes matter only for new labels: without any, the pool is not even read.
        new_labels = previous is None or not set(row.label for row in in_scope).union(names) <= set(previous.labels)
        pool = self.embeddings(unlabelled) if unlabelled and new_labels else None
        labels = [row.label for row in in_scope] + names
        prompt_rows = torch.arange(len(labels), device=support.device) >= len(in_scope)
        adapter, _ = self.engine.fit(support, labels, previous=previous, negatives=negative_embeddings,
                                     unlabelled=pool, prompts=prompt_rows)
        return adapter, (time.perf_counter() - started) * 1000
