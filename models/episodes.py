"""Few-shot episodes: N-way K-shot tasks drawn from a labelled data set.

An :class:`Episode` is one small classification task (Vinyals et al. 2016; Snell et
al. 2017): ``ways`` classes, ``shots`` labelled support examples per class and a
few query examples per class to score the adaptation on. :class:`EpisodeSampler`
draws them reproducibly: episode ``i`` depends only on ``(seed, i)``, so a resumed
run sees exactly the episodes it would have seen, and two encoders evaluated with
the same seed see the same tasks (a paired comparison).

Hard episodes. CLINC150 has 10 domains but its labels carry no domain field, and
random classes from 150 mostly teach coarse, cross-domain distinctions. With
``mode="hard"`` the sampler picks a random seed class and fills the episode from its
nearest neighbours by prototype cosine similarity (class prototypes from the bare
encoder, passed in as ``class_vectors``): the other ``ways - 1`` classes are drawn at
random from the ``hard_pool * (ways - 1)`` classes nearest the seed. On CLINC150
this mostly yields classes from one domain (a proxy for "episodes within a domain",
no clustering step needed); on BANKING77 it yields the confusable intents.
``mode="mixed"`` alternates uniform and hard episodes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F

from models.data import LabelledText

MODES = ("uniform", "hard", "mixed")


@dataclass(frozen=True)
class Episode:
    """One N-way K-shot task. Rows index the support / query pools the sampler was given."""

    classes: tuple[str, ...]
    support_rows: tuple[int, ...]
    support_labels: tuple[int, ...]  # index into ``classes``
    query_rows: tuple[int, ...]
    query_labels: tuple[int, ...]
    support_texts: tuple[str, ...]
    query_texts: tuple[str, ...]
    shots: int
    source: str = ""

    @property
    def ways(self) -> int:
        return len(self.classes)

    def support_targets(self) -> torch.Tensor:
        return torch.tensor(self.support_labels, dtype=torch.long)

    def query_targets(self) -> torch.Tensor:
        return torch.tensor(self.query_labels, dtype=torch.long)


def _by_label(rows: Sequence[LabelledText]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        groups.setdefault(row.label, []).append(index)
    return groups


class EpisodeSampler:
    """Seeded N-way K-shot sampler over a support pool and (optionally separate) query pool.

    With one pool, support and query rows of a class are disjoint; a class needs at
    least ``shots + 1`` rows to be eligible. ``ways <= 0`` or more ways than eligible
    classes means all eligible classes. ``queries`` is per class (fewer if a class
    lacks rows).
    """

    def __init__(
        self,
        rows: Sequence[LabelledText],
        ways: int,
        shots: int,
        queries: int,
        seed: int = 0,
        mode: str = "uniform",
        class_vectors: Mapping[str, torch.Tensor] | None = None,
        hard_pool: int = 2,
        query_rows: Sequence[LabelledText] | None = None,
        source: str = "",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"episode mode must be one of {MODES}, not {mode!r}")
        if shots < 1 or queries < 1:
            raise ValueError("episodes need at least one shot and one query per class")
        self.rows, self.query_pool = rows, query_rows
        self.shots, self.queries, self.seed, self.mode, self.hard_pool, self.source = shots, queries, seed, mode, hard_pool, source
        support_groups = _by_label(rows)
        query_groups = _by_label(query_rows) if query_rows is not None else support_groups
        needed = shots if query_rows is not None else shots + 1
        self.support_groups = {k: v for k, v in support_groups.items() if len(v) >= needed and k in query_groups}
        self.query_groups = query_groups
        self.classes = sorted(self.support_groups)
        if len(self.classes) < 2:
            raise ValueError(f"only {len(self.classes)} class(es) have {needed}+ rows: no {shots}-shot episodes")
        self.ways = len(self.classes) if ways <= 0 else min(ways, len(self.classes))
        self.neighbours: dict[str, list[str]] = {}
        if mode != "uniform":
            if class_vectors is None:
                raise ValueError("hard episodes need class_vectors (class prototypes)")
            names = [c for c in self.classes if c in class_vectors]
            matrix = F.normalize(torch.stack([class_vectors[c].float() for c in names]), dim=-1)
            order = (matrix @ matrix.T).argsort(dim=1, descending=True)
            self.neighbours = {name: [names[j] for j in order[i].tolist() if j != i] for i, name in enumerate(names)}

    def _classes(self, rng: random.Random, index: int) -> list[str]:
        hard = self.mode == "hard" or (self.mode == "mixed" and index % 2 == 1)
        if not hard or self.ways == len(self.classes):
            return sorted(rng.sample(self.classes, self.ways))
        seed_class = rng.choice(self.classes)
        pool = self.neighbours[seed_class][: max(self.ways - 1, self.hard_pool * (self.ways - 1))]
        return sorted([seed_class, *rng.sample(pool, self.ways - 1)])

    def episode(self, index: int) -> Episode:
        """Episode number ``index`` of this sampler (a pure function of seed and index)."""
        rng = random.Random(f"{self.seed}:{index}")
        classes = self._classes(rng, index)
        support_rows, support_labels, query_rows, query_labels = [], [], [], []
        for label_index, name in enumerate(classes):
            candidates = self.support_groups[name]
            if self.query_pool is None:
                picked = rng.sample(candidates, min(len(candidates), self.shots + self.queries))
                support, query = picked[: self.shots], picked[self.shots :]
            else:
                support = rng.sample(candidates, self.shots)
                pool = self.query_groups[name]
                query = rng.sample(pool, min(len(pool), self.queries))
            support_rows += support
            support_labels += [label_index] * len(support)
            query_rows += query
            query_labels += [label_index] * len(query)
        query_source = self.query_pool if self.query_pool is not None else self.rows
        return Episode(
            classes=tuple(classes),
            support_rows=tuple(support_rows),
            support_labels=tuple(support_labels),
            query_rows=tuple(query_rows),
            query_labels=tuple(query_labels),
            support_texts=tuple(self.rows[i].text for i in support_rows),
            query_texts=tuple(query_source[i].text for i in query_rows),
            shots=self.shots,
            source=self.source,
        )

    def take(self, count: int, start: int = 0) -> list[Episode]:
        return [self.episode(i) for i in range(start, start + count)]

    def __iter__(self) -> Iterator[Episode]:
        index = 0
        while True:
            yield self.episode(index)
            index += 1


def class_prototypes(rows: Sequence[LabelledText], embeddings: torch.Tensor) -> dict[str, torch.Tensor]:
    """Unit-norm mean embedding per label (for hard episodes)."""
    return {label: F.normalize(embeddings[idx].mean(0), dim=0) for label, idx in _by_label(rows).items()}
