"""Task logic: create, change (append, remove, roll back), predict, evaluate, export.

Every change makes a new immutable version and is one transaction: embeddings and
adaptation are computed first, then all rows are written and committed together, so
a failure leaves nothing behind, and no connection or lock is held while the encoder
works (``UnitOfWork.pause``). Two changes of one task never both land on one version:
the task row's version is checked when it is written (optimistic concurrency). Appends
and removals commute, so the one that read an older version is rebased: read again,
adapted again on the version the other made, and written (``rebased_on_conflict``);
rollbacks and renames that lose the race get 409. A caller that names the version it
expects (``expected``, the HTTP ``If-Match``) gets 412 instead of any rebase whenever the
task is at another version, when it is read or when it is written. This works across
processes on one database, since the check is the database's own."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy.orm.exc import ObjectDeletedError

from app.db.session import UnitOfWork
from app.db.tables import AdapterVersion, Example, Task, as_utc
from app.errors import Conflict, InvalidInput, LimitExceeded, NotFound, PreconditionFailed
from app.metrics import PREDICTED_TEXTS
from app.repositories.tasks import TaskRepository
from app.services.changes import Change, Limits
from app.services.content import AdapterBuilder, VersionContent
from app.services.engine import AdaptationEngine
from app.services.races import conflicts_are_409, rebased_on_conflict
from app.settings import Settings
from models.adapter import ADAPTER_FORMAT_VERSION, Adapter
from models.classifier import Prediction
from models.metrics import classification_report

UNSET = object()


@dataclass(frozen=True)
class TaskView:
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
    created_at: datetime
    updated_at: datetime


class TaskService:
    def __init__(self, uow: UnitOfWork, engine: AdaptationEngine, settings: Settings) -> None:
        assert uow.session is not None
        self.uow = uow
        self.tasks = TaskRepository(uow.session)
        self.engine = engine
        self.settings = settings
        self.builder = AdapterBuilder(engine, self.tasks)
        self.limits = Limits(settings)
        self.rebasing = False  # set while a change is made again after losing a race

    # --- commands ---------------------------------------------------------------
    def create(self, tenant_id: str, name: str, change: Change, oos_threshold: float | None = None,
               whole_task: bool = False) -> TaskView:
        """A new task (version 1). ``whole_task`` (an imported document): the change may
        carry a whole task, up to the per-task limits, not just one request's worth."""
        self.limits.check_change(change, per_request=not whole_task)
        task_id = uuid.uuid4().hex
        started = time.perf_counter()
        added = self._new_examples(task_id, 1, change)
        content = VersionContent(added, _descriptions({}, change.labels))
        self.limits.check_content(content)
        self.limits.check_tasks(self.tasks.count(tenant_id))
        self.uow.pause()  # no connection held while the encoder works
        self.builder.embeddings(added)
        adapter, _ = self.builder.build(content)
        # Only now the rows: nothing is written (or locked) while the encoder works.
        task = self.tasks.add(task_id, tenant_id, name)
        task.oos_threshold_override = oos_threshold
        self.tasks.save_examples(added)
        row = self._write_version(task, 1, content, adapter, _ms_since(started), "create", None)
        self.uow.commit()
        self._cache(task, row, adapter)
        return self._view(task, row)

    @rebased_on_conflict
    def append(self, tenant_id: str, task_id: str, change: Change, *, expected: int | None = None) -> TaskView:
        """Continual update: adapts from the current adapter, with the proximal pull toward it.
        New unlabelled texts move every label's starting prototype, so that change is
        adapted afresh instead."""
        if not change:
            raise InvalidInput("nothing to add: give examples, labels, out_of_scope or unlabelled texts")
        self.limits.check_change(change)
        task = self._task(tenant_id, task_id, for_update=True, expected=expected)
        current = self._version(task, task.version)
        version = self._next_version(task)
        previous = self.adapter(task, current)
        old = self._content(task, current)
        started = time.perf_counter()
        added = self._new_examples(task.id, version, change)
        content = VersionContent(old.examples + added, _descriptions(old.label_descriptions, change.labels))
        self.limits.check_content(content)
        self.uow.pause()
        self.builder.embeddings(added)
        adapter, _ = self.builder.build(content, previous=None if change.unlabelled else previous)
        self.tasks.save_examples(added)
        return self._commit_version(task, version, content, adapter, _ms_since(started), "append", current.version)

    @rebased_on_conflict
    def remove(self, tenant_id: str, task_id: str, example_ids: Sequence[int], labels: Sequence[str],
               unlabelled: bool = False, *, expected: int | None = None) -> TaskView:
        """A new version without these examples and labels (and, with ``unlabelled``,
        without any unlabelled text), adapted afresh."""
        if not (example_ids or labels or unlabelled):
            raise InvalidInput("nothing to remove: give example_ids, labels or unlabelled: true")
        task = self._task(tenant_id, task_id, for_update=True, expected=expected)
        current = self._version(task, task.version)
        old = self._content(task, current)
        unknown = sorted(set(example_ids) - {row.number for row in old.examples})
        if unknown and self.rebasing:
            raise Conflict(f"examples {unknown[:10]} were removed by a concurrent change")
        if unknown:
            raise NotFound(f"examples not in version {current.version}: {unknown[:10]}")
        missing = sorted(set(labels) - set(old.labels))
        if missing:
            raise NotFound(f"labels not in version {current.version}: {missing[:10]}")
        if unlabelled and not old.unlabelled:
            raise NotFound(f"no unlabelled texts in version {current.version}")
        drop_ids, drop_labels = set(example_ids), set(labels)

        def kept_row(row: Example) -> bool:
            if row.number in drop_ids:
                return False
            if row.kind == "labelled":
                return row.label not in drop_labels
            return not (unlabelled and row.unlabelled)

        kept = [row for row in old.examples if kept_row(row)]
        descriptions = {k: v for k, v in old.label_descriptions.items() if k not in drop_labels}
        content = VersionContent(kept, descriptions)
        self.limits.check_content(content)
        version = self._next_version(task)
        self.uow.pause()
        adapter, ms = self.builder.build(content)
        return self._commit_version(task, version, content, adapter, ms, "remove", current.version)

    @conflicts_are_409
    def rollback(self, tenant_id: str, task_id: str, to_version: int, *, expected: int | None = None) -> TaskView:
        """A new version with exactly the content (and adapter) of an earlier one."""
        task = self._task(tenant_id, task_id, for_update=True, expected=expected)
        target = self._version(task, to_version)
        version = self._next_version(task)
        row = AdapterVersion(
            task_id=task.id, version=version, format_version=target.format_version,
            encoder_fingerprint=target.encoder_fingerprint, labels=list(target.labels),
            num_examples=target.num_examples, num_unlabelled=target.num_unlabelled, adapted_ms=0.0, tensors=target.tensors,
            example_ids=target.example_ids, label_descriptions=target.label_descriptions,
            temperature=target.temperature, oos_threshold=target.oos_threshold, change="rollback",
            parent_version=target.version,
        )
        self.tasks.add_version(row)
        task.version = version
        self.uow.commit()
        return self._view(task, row)

    @conflicts_are_409
    def update(self, tenant_id: str, task_id: str, name: str | None, oos_threshold: object = UNSET, *,
               expected: int | None = None) -> TaskView:
        """Rename, or set/clear the task's out-of-scope threshold override (not versioned)."""
        task = self._task(tenant_id, task_id, for_update=True, expected=expected)
        if name is not None:
            task.name = name
        if oos_threshold is not UNSET:
            task.oos_threshold_override = oos_threshold  # type: ignore[assignment]
        self.tasks.session.flush()
        self.uow.commit()
        return self._view(task, self._version(task, task.version))

    @conflicts_are_409
    def delete(self, tenant_id: str, task_id: str, *, expected: int | None = None) -> None:
        task = self._task(tenant_id, task_id, expected=expected)
        self.tasks.delete(task)
        self.uow.commit()
        self.engine.cache.discard_where(lambda key: key[0] == task_id)

    # --- queries ----------------------------------------------------------------
    def get(self, tenant_id: str, task_id: str) -> TaskView:
        task = self._task(tenant_id, task_id)
        return self._view(task, self._version(task, task.version))

    def list(self, tenant_id: str, limit: int, offset: int) -> tuple[list[TaskView], int]:
        rows = self.tasks.list(tenant_id, limit, offset)
        return [self._view(task, version) for task, version in rows], self.tasks.count(tenant_id)

    def versions(self, tenant_id: str, task_id: str) -> tuple[int, list[AdapterVersion]]:
        task = self._task(tenant_id, task_id)
        versions = list(self.tasks.versions(task.id))
        if not versions:  # deleted between the two reads (every task has a version 1)
            raise NotFound(f"task {task_id} not found")
        return task.version, versions

    def content(self, tenant_id: str, task_id: str, version: int | None = None) -> tuple[int, VersionContent]:
        task = self._task(tenant_id, task_id)
        row = self._version(task, version or task.version)
        return row.version, self._content(task, row)

    def predict(self, tenant_id: str, task_id: str, texts: Sequence[str], top_k: int,
                version: int | None = None) -> tuple[int, list[Prediction]]:
        self.limits.check_texts(texts, self.settings.max_predict_texts)
        return self._predict(tenant_id, task_id, texts, top_k, version)

    def _predict(self, tenant_id: str, task_id: str, texts: Sequence[str], top_k: int,
                 version: int | None) -> tuple[int, list[Prediction]]:
        if top_k > self.settings.max_top_k:
            raise LimitExceeded(f"top_k is {top_k}; the limit is {self.settings.max_top_k}")
        task = self._task(tenant_id, task_id)
        row = self._version(task, version or task.version)
        try:
            adapter = self.adapter(task, row)
        except ObjectDeletedError as error:  # the task was deleted after it was read
            raise NotFound(f"task {task_id} not found") from error
        number, threshold = row.version, task.oos_threshold_override
        # Nothing more is read: give the connection back before queueing for the encoder,
        # so that waiting requests do not hold the database pool.
        self.uow.release()
        PREDICTED_TEXTS.inc(len(texts))
        # In slices of at most a predict call's size, so that one large evaluation queues
        # like several predict calls and never overflows the batcher's queue.
        step = self.settings.max_predict_texts
        predictions: list[Prediction] = []
        for start in range(0, len(texts), step):
            predictions += self.engine.predict(adapter, texts[start : start + step], top_k, threshold, tenant=tenant_id)
        return number, predictions

    def evaluate(self, tenant_id: str, task_id: str, items: Sequence[tuple[str, str | None]],
                 version: int | None = None) -> tuple[int, dict]:
        """Metrics on labelled texts (label None: the text is out of scope)."""
        texts = [text for text, _ in items]
        self.limits.check_texts(texts, self.settings.max_evaluate_texts)
        self.limits.check_gold_labels([label for _, label in items])
        predicted_version, predictions = self._predict(tenant_id, task_id, texts, 1, version)
        report = classification_report(
            [label for _, label in items], [p.label for p in predictions],
            top1=[p.top_k[0][0] for p in predictions], confidence=[p.top_k[0][1] for p in predictions],
            in_scope_scores=[p.in_scope_score for p in predictions],
        )
        return predicted_version, report

    def export(self, tenant_id: str, task_id: str, version: int | None = None) -> dict:
        task = self._task(tenant_id, task_id)
        row = self._version(task, version or task.version)
        content = self._content(task, row)
        unlabelled = [r.text for r in content.unlabelled]
        return {
            "format": "fewshot-task",
            # Version 2 adds unlabelled texts; a document without any stays readable by
            # deployments that know only version 1 (which would silently drop them).
            "format_version": 2 if unlabelled else 1,
            "name": task.name,
            "version": row.version,
            # Only declared labels: declaring a label adds its name/description prompt to the
            # support set, so declaring every label on import would change the adapter.
            "labels": [{"name": n, "description": d or None} for n, d in sorted(content.label_descriptions.items())],
            "examples": [{"text": r.text, "label": r.label} for r in content.in_scope],
            "out_of_scope": [r.text for r in content.negatives],
            "unlabelled": unlabelled,
            "settings": {"oos_threshold": task.oos_threshold_override},
        }

    def adapter(self, task: Task, row: AdapterVersion) -> Adapter:
        """A version's adapter: from the cache, else the database; one made by another
        encoder or an older format is rebuilt from the stored examples (and stored)."""
        key = (task.id, row.version, self.engine.fingerprint)
        cached = self.engine.cache.get(key)
        if cached is not None:
            return cached
        if row.encoder_fingerprint == self.engine.fingerprint and row.format_version == ADAPTER_FORMAT_VERSION:
            adapter = Adapter.from_bytes(row.tensors).to(self.engine.encoder.device)
        else:
            adapter, ms = self.builder.build(self._content(task, row))
            self.tasks.replace_adapter(row, adapter.to_bytes(), adapter.encoder_fingerprint, ADAPTER_FORMAT_VERSION,
                                       adapter.temperature, adapter.oos_threshold)
            row.adapted_ms = ms
            self.uow.commit()
        self.engine.cache.put(key, adapter)
        return adapter

    # --- helpers ----------------------------------------------------------------
    def _new_examples(self, task_id: str, version: int, change: Change) -> list[Example]:
        """The change's texts as example rows, not yet embedded or written."""
        rows = [(text, label, "labelled") for text, label in change.examples]
        rows += [(text, "", "out_of_scope") for text in change.out_of_scope]
        rows += [(text, "", "unlabelled") for text in change.unlabelled]
        return self.tasks.new_examples(task_id, version, rows)

    def _next_version(self, task: Task) -> int:
        """The number of the version a change of ``task`` makes (checked against the limit)."""
        latest = self.tasks.latest_version(task.id)
        self.limits.check_versions(latest)
        return latest + 1

    def _write_version(self, task: Task, version: int, content: VersionContent, adapter: Adapter, ms: float,
                       change: str, parent: int | None) -> AdapterVersion:
        row = AdapterVersion(
            task_id=task.id, version=version, format_version=ADAPTER_FORMAT_VERSION,
            encoder_fingerprint=adapter.encoder_fingerprint, labels=list(adapter.labels),
            num_examples=len(content.in_scope), num_unlabelled=len(content.unlabelled), adapted_ms=ms, tensors=adapter.to_bytes(),
            example_ids=content.example_ids, label_descriptions=content.label_descriptions,
            temperature=adapter.temperature, oos_threshold=adapter.oos_threshold, change=change,
            parent_version=parent,
        )
        self.tasks.add_version(row)
        task.version = version
        return row

    def _commit_version(self, task: Task, version: int, content: VersionContent, adapter: Adapter, ms: float,
                        change: str, parent: int | None) -> TaskView:
        row = self._write_version(task, version, content, adapter, ms, change, parent)
        task.updated_at = datetime.now(timezone.utc)
        self.uow.commit()
        self._cache(task, row, adapter)
        return self._view(task, row)

    def _cache(self, task: Task, row: AdapterVersion, adapter: Adapter) -> None:
        self.engine.cache.put((task.id, row.version, adapter.encoder_fingerprint), adapter)

    def _content(self, task: Task, row: AdapterVersion) -> VersionContent:
        return VersionContent(self.tasks.examples_by_ids(task.id, row.example_ids or []),
                              dict(row.label_descriptions or {}))

    def _task(self, tenant_id: str, task_id: str, for_update: bool = False, expected: int | None = None) -> Task:
        """The tenant's task; with ``expected``, only while that is its current version (412)."""
        task = self.tasks.get(tenant_id, task_id, for_update=for_update)
        if task is None:
            raise NotFound(f"task {task_id} not found")
        if expected is not None and task.version != expected:
            raise PreconditionFailed(f"the task is at version {task.version}, not {expected} (If-Match); "
                                     "read it again and decide whether to make the change")
        return task

    def _version(self, task: Task, version: int) -> AdapterVersion:
        row = self.tasks.version(task.id, version)
        if row is None:
            raise NotFound(f"task {task.id} has no version {version}")
        return row

    def _view(self, task: Task, row: AdapterVersion) -> TaskView:
        return TaskView(
            task.id, task.name, row.version, list(row.labels),
            {k: v for k, v in (row.label_descriptions or {}).items() if v},
            row.num_examples, len(row.example_ids or []) - row.num_examples - row.num_unlabelled,
            row.num_unlabelled, round(row.adapted_ms, 3),
            row.temperature or 1.0,
            task.oos_threshold_override if task.oos_threshold_override is not None else row.oos_threshold,
            task.oos_threshold_override, as_utc(task.created_at), as_utc(task.updated_at),
        )

def _descriptions(old: dict[str, str], declared: dict[str, str | None] | None) -> dict[str, str]:
    """Declared labels after a change: a description replaces the old one, ``""`` (or
    white space) clears it (the name stands for the label again), ``None`` keeps it."""
    merged = dict(old)
    for name, description in (declared or {}).items():
        merged[name] = merged.get(name, "") if description is None else description.strip()
    return merged


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000

