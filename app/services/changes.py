"""A client's change to a task, and the limits (``FEWSHOT_MAX_*``) requests and versions
must respect: over a limit is ``LimitExceeded`` (413); a task without two labels is
``InvalidInput`` (422). Checked before anything is embedded or written."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.errors import InvalidInput, LimitExceeded
from app.services.content import VersionContent
from app.settings import Settings


@dataclass(frozen=True)
class Change:
    """A client's change: labelled examples, declared labels (name -> description or
    None), out-of-scope example texts and unlabelled texts."""

    examples: Sequence[tuple[str, str]] = ()
    labels: dict[str, str | None] | None = None
    out_of_scope: Sequence[str] = ()
    unlabelled: Sequence[str] = ()

    def __bool__(self) -> bool:
        return bool(self.examples or self.labels or self.out_of_scope or self.unlabelled)


class Limits:
    """The service's limits, checked against requests and versions."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def check_texts(self, texts: Sequence[str], limit: int) -> None:
        """At most ``limit`` texts, none longer than a text may be."""
        s = self.settings
        if len(texts) > limit:
            raise LimitExceeded(f"{len(texts)} texts in one call; the limit is {limit}")
        for i, text in enumerate(texts):
            if len(text) > s.max_text_chars:
                raise LimitExceeded(f"texts[{i}] has {len(text)} characters; the limit is {s.max_text_chars}")

    def check_gold_labels(self, labels: Sequence[str | None]) -> None:
        """Evaluation data: labels as long as a task's may be, and no more distinct ones
        than a task may have (each is a row of the report)."""
        s = self.settings
        distinct = {label for label in labels if label is not None}
        for label in distinct:
            if len(label) > s.max_label_chars:
                raise LimitExceeded(f"gold label {label[:40]!r}... has {len(label)} characters; the limit is {s.max_label_chars}")
        if len(distinct) > s.max_labels_per_task:
            raise LimitExceeded(f"{len(distinct)} distinct gold labels; the limit is {s.max_labels_per_task}")

    def check_change(self, change: Change, per_request: bool = True) -> None:
        """What one request may carry (without ``per_request``, an imported task: its size
        is left to :meth:`check_content`)."""
        s = self.settings
        count = len(change.examples) + len(change.out_of_scope) + len(change.unlabelled)
        if per_request and count > s.max_examples_per_request:
            raise LimitExceeded(f"{count} examples in one request; the limit is {s.max_examples_per_request}")
        for i, (text, label) in enumerate(change.examples):
            if len(text) > s.max_text_chars:
                raise LimitExceeded(f"examples[{i}].text has {len(text)} characters; the limit is {s.max_text_chars}")
            if len(label) > s.max_label_chars:
                raise LimitExceeded(f"examples[{i}].label has {len(label)} characters; the limit is {s.max_label_chars}")
        for field, texts in (("out_of_scope", change.out_of_scope), ("unlabelled", change.unlabelled)):
            for i, text in enumerate(texts):
                if len(text) > s.max_text_chars:
                    raise LimitExceeded(f"{field}[{i}] has {len(text)} characters; the limit is {s.max_text_chars}")
        for name, description in (change.labels or {}).items():
            if len(name) > s.max_label_chars:
                raise LimitExceeded(f"label {name[:40]!r}... has {len(name)} characters; the limit is {s.max_label_chars}")
            if description and len(description) > s.max_text_chars:
                raise LimitExceeded(f"the description of {name!r} is over {s.max_text_chars} characters")

    def check_tasks(self, existing: int) -> None:
        limit = self.settings.max_tasks_per_tenant
        if existing >= limit:
            raise LimitExceeded(f"this tenant has {existing} tasks, the limit; delete some first")

    def check_versions(self, existing: int) -> None:
        """A task keeps every version (each a rollback target); their number is bounded."""
        limit = self.settings.max_versions_per_task
        if existing >= limit:
            raise LimitExceeded(f"the task has {existing} versions, the limit; export it and import the document "
                                "to start a new task with its current content")

    def check_content(self, content: VersionContent) -> None:
        """What a version may hold, and the two labels it needs."""
        s = self.settings
        unlabelled = len(content.unlabelled)
        examples = len(content.examples) - unlabelled
        if examples > s.max_examples_per_task:
            raise LimitExceeded(f"a task may hold {s.max_examples_per_task} examples; this change makes {examples}")
        if unlabelled > s.max_unlabelled_per_task:
            raise LimitExceeded(
                f"a task may hold {s.max_unlabelled_per_task} unlabelled texts; this change makes {unlabelled}"
            )
        labels = content.labels
        if len(labels) > s.max_labels_per_task:
            raise LimitExceeded(f"a task may have {s.max_labels_per_task} labels; this change makes {len(labels)}")
        if len(labels) < 2:
            raise InvalidInput("a task needs at least two labels, each with an example or a declared name/description")
