"""Task logic: create, append examples, predict, list, get, delete.

Every change is one transaction: embeddings and adaptation are computed first, then
all rows are written and committed together, so a failure leaves nothing behind."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import torch
from sqlalchemy.exc import IntegrityError

from app.db.session import UnitOfWork
from app.db.tables import AdapterVersion, Example, Task
from app.errors import InvalidInput, LimitExceeded, NotFound
from app.repositories.tasks import TaskRepository
from app.services.engine import AdaptationEngine
from app.settings import Settings
from models.adapter import ADAPTER_FORMAT_VERSION, Adapter
from models.classifier import Prediction


class Conflict(InvalidInput):
    status_code, code = 409, "conflict"


@dataclass(frozen=True)
class TaskView:
    id: str
    name: str
    version: int
    labels: list[str]
    num_examples: int
    adapted_ms: float
    created_at: object
    updated_at: object


class TaskService:
    def __init__(self, uow: UnitOfWork, engine: AdaptationEngine, settings: Settings) -> None:
        assert uow.session is not None
        self.uow = uow
        self.tasks = TaskRepository(uow.session)
        self.engine = engine
        self.settings = settings

    # --- validation -------------------------------------------------------------
    def _check_examples(self, examples: Sequence[tuple[str, str]]) -> None:
        s = self.settings
        if len(examples) > s.max_examples_per_request:
            raise LimitExceeded(f"{len(examples)} examples in one request; the limit is {s.max_examples_per_request}")
        for i, (text, label) in enumerate(examples):
            if len(text) > s.max_text_chars:
                raise LimitExceeded(f"examples[{i}].text has {len(text)} characters; the limit is {s.max_text_chars}")
            if len(label) > s.max_label_chars:
                raise LimitExceeded(f"examples[{i}].label has {len(label)} characters; the limit is {s.max_label_chars}")

    def _check_totals(self, labels: Sequence[str]) -> None:
        s = self.settings
        if len(labels) > s.max_examples_per_task:
            raise LimitExceeded(f"a task may hold {s.max_examples_per_task} examples; this change makes {len(labels)}")
        counts = Counter(labels)
        if len(counts) > s.max_labels_per_task:
            raise LimitExceeded(f"a task may have {s.max_labels_per_task} labels; this change makes {len(counts)}")
        if len(counts) < 2:
            raise InvalidInput("a task needs at least two labels, each with at least one example")

    # --- commands ---------------------------------------------------------------
    def create(self, tenant_id: str, name: str, examples: Sequence[tuple[str, str]]) -> TaskView:
        self._check_examples(examples)
        self._check_totals([label for _, label in examples])
        started = time.perf_counter()
        embeddings = self.engine.embed([text for text, _ in examples])
        adapter, _ = self.engine.fit(embeddings, [label for _, label in examples])
        adapted_ms = (time.perf_counter() - started) * 1000
        task = self.tasks.add(uuid.uuid4().hex, tenant_id, name)
        self._store_examples(task, 1, examples, embeddings)
        row = self._store_adapter(task, 1, adapter, len(examples), adapted_ms)
        self.uow.commit()
        self.engine.cache.put((task.id, 1, adapter.encoder_fingerprint), adapter)
        return _view(task, row)

    def append(self, tenant_id: str, task_id: str, examples: Sequence[tuple[str, str]]) -> TaskView:
        self._check_examples(examples)
        task = self._task(tenant_id, task_id, for_update=True)
        stored = self.tasks.examples(task.id, task.version)
        labels = [row.label for row in stored] + [label for _, label in examples]
        self._check_totals(labels)
        started = time.perf_counter()
        old = self._stored_embeddings(stored)
        new = self.engine.embed([text for text, _ in examples])
        adapter, _ = self.engine.fit(torch.cat([old, new]), labels)
        adapted_ms = (time.perf_counter() - started) * 1000
        version = self.tasks.bump_version(task)
        self._store_examples(task, version, examples, new)
        row = self._store_adapter(task, version, adapter, len(labels), adapted_ms)
        try:
            self.uow.commit()
        except IntegrityError as error:
            raise Conflict("the task was changed by a concurrent request; retry") from error
        self.engine.cache.put((task.id, version, adapter.encoder_fingerprint), adapter)
        return _view(task, row)

    def delete(self, tenant_id: str, task_id: str) -> None:
        task = self._task(tenant_id, task_id)
        self.tasks.delete(task)
        self.uow.commit()
        self.engine.cache.discard_where(lambda key: key[0] == task_id)

    # --- queries ----------------------------------------------------------------
    def get(self, tenant_id: str, task_id: str) -> TaskView:
        task = self._task(tenant_id, task_id)
        return _view(task, self._adapter_row(task))

    def list(self, tenant_id: str, limit: int, offset: int) -> tuple[list[TaskView], int]:
        tasks = self.tasks.list(tenant_id, limit, offset)
        return [_view(task, self._adapter_row(task)) for task in tasks], self.tasks.count(tenant_id)

    def predict(self, tenant_id: str, task_id: str, texts: Sequence[str], top_k: int) -> tuple[int, list[Prediction]]:
        s = self.settings
        if len(texts) > s.max_predict_texts:
            raise LimitExceeded(f"{len(texts)} texts in one call; the limit is {s.max_predict_texts}")
        if top_k > s.max_top_k:
            raise LimitExceeded(f"top_k is {top_k}; the limit is {s.max_top_k}")
        for i, text in enumerate(texts):
            if len(text) > s.max_text_chars:
                raise LimitExceeded(f"texts[{i}] has {len(text)} characters; the limit is {s.max_text_chars}")
        task = self._task(tenant_id, task_id)
        adapter = self.adapter(task)
        return task.version, self.engine.predict(adapter, texts, top_k)

    def adapter(self, task: Task) -> Adapter:
        """The task's current adapter: from the cache, else the database; one made by
        another encoder is rebuilt from the stored examples (and stored again)."""
        key = (task.id, task.version, self.engine.fingerprint)
        cached = self.engine.cache.get(key)
        if cached is not None:
            return cached
        row = self._adapter_row(task)
        if row.encoder_fingerprint == self.engine.fingerprint and row.format_version == ADAPTER_FORMAT_VERSION:
            adapter = Adapter.from_bytes(row.tensors).to(self.engine.encoder.device)
        else:
            adapter = self._rebuild(task, row)
        self.engine.cache.put(key, adapter)
        return adapter

    # --- helpers ----------------------------------------------------------------
    def _rebuild(self, task: Task, row: AdapterVersion) -> Adapter:
        stored = self.tasks.examples(task.id, task.version)
        started = time.perf_counter()
        embeddings = self._stored_embeddings(stored)
        adapter, _ = self.engine.fit(embeddings, [example.label for example in stored])
        adapted_ms = (time.perf_counter() - started) * 1000
        self.tasks.replace_adapter_tensors(row, adapter.to_bytes(), adapter.encoder_fingerprint, adapted_ms)
        self.uow.commit()
        return adapter

    def _stored_embeddings(self, stored: Sequence[Example]) -> torch.Tensor:
        """Cached embeddings where this encoder made them; the rest re-embedded and saved."""
        fingerprint = self.engine.fingerprint
        stale = [row for row in stored if row.embedding is None or row.embedding_fingerprint != fingerprint]
        if stale:
            fresh = self.engine.embed([row.text for row in stale])
            encoded = self.engine.to_bytes(fresh)
            for row, data in zip(stale, encoded):
                row.embedding, row.embedding_fingerprint = data, fingerprint
            self.uow.session.flush()  # type: ignore[union-attr]
        if not stored:
            return torch.empty(0, self.engine.encoder.dim, device=self.engine.encoder.device)
        return self.engine.from_bytes([row.embedding for row in stored])  # type: ignore[misc]

    def _store_examples(
        self, task: Task, version: int, examples: Sequence[tuple[str, str]], embeddings: torch.Tensor
    ) -> None:
        encoded = self.engine.to_bytes(embeddings)
        fingerprint = self.engine.fingerprint
        rows = [(text, label, data, fingerprint) for (text, label), data in zip(examples, encoded)]
        self.tasks.add_examples(task.id, version, rows)

    def _store_adapter(self, task: Task, version: int, adapter: Adapter, num_examples: int, ms: float) -> AdapterVersion:
        row = AdapterVersion(
            task_id=task.id,
            version=version,
            format_version=ADAPTER_FORMAT_VERSION,
            encoder_fingerprint=adapter.encoder_fingerprint,
            labels=list(adapter.labels),
            num_examples=num_examples,
            adapted_ms=ms,
            tensors=adapter.to_bytes(),
        )
        self.tasks.add_adapter(row)
        return row

    def _task(self, tenant_id: str, task_id: str, for_update: bool = False) -> Task:
        task = self.tasks.get(tenant_id, task_id, for_update=for_update)
        if task is None:
            raise NotFound(f"task {task_id} not found")
        return task

    def _adapter_row(self, task: Task) -> AdapterVersion:
        row = self.tasks.adapter(task.id, task.version)
        if row is None:
            raise NotFound(f"task {task.id} has no adapter for version {task.version}")
        return row


def _utc(moment: datetime) -> datetime:
    """Stored times are UTC; SQLite hands them back naive, so mark them as UTC again."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def _view(task: Task, row: AdapterVersion) -> TaskView:
    return TaskView(
        task.id, task.name, task.version, list(row.labels), row.num_examples, round(row.adapted_ms, 3),
        _utc(task.created_at), _utc(task.updated_at),
    )
