"""Few-shot classifier = frozen encoder + inner loop: the one place both meet.

Used by the server, the CLI's ``evaluate`` and the benchmarks, so every path adapts
and predicts with exactly the same code.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import torch

from models.adapter import Adapter
from models.encoder import TextEncoder
from models.inner_loop import InnerLoopConfig, adapt


@dataclass(frozen=True)
class Prediction:
    label: str
    score: float
    top_k: list[tuple[str, float]]


def fit_adapter(
    embeddings: torch.Tensor,
    labels: Sequence[str],
    config: InnerLoopConfig,
    encoder_fingerprint: str,
) -> Adapter:
    """Adapt a head to support embeddings; labels are sorted so the order is stable."""
    label_order = tuple(sorted(set(labels)))
    index = {label: i for i, label in enumerate(label_order)}
    targets = torch.tensor([index[label] for label in labels], device=embeddings.device)
    params = adapt(embeddings, targets, len(label_order), config)
    return Adapter(label_order, params, config.scale, encoder_fingerprint)


def rank(adapter: Adapter, embeddings: torch.Tensor, top_k: int) -> list[Prediction]:
    """Top-k labels with probabilities per row; one host transfer for the whole batch."""
    probabilities = adapter.probabilities(embeddings)
    k = min(top_k, len(adapter.labels))
    scores, indices = probabilities.topk(max(k, 1), dim=-1)
    scores, indices = scores.cpu().tolist(), indices.cpu().tolist()
    predictions = []
    for row_scores, row_indices in zip(scores, indices):
        ranked = [(adapter.labels[i], s) for i, s in zip(row_indices, row_scores)]
        predictions.append(Prediction(ranked[0][0], ranked[0][1], ranked[:k]))
    return predictions


class FewShotClassifier:
    """Encoder plus inner-loop settings; makes adapters and predicts with them."""

    def __init__(self, encoder: TextEncoder, config: InnerLoopConfig) -> None:
        self.encoder = encoder
        self.config = config

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> tuple[Adapter, float]:
        """Embed and adapt; returns the adapter and the wall time in milliseconds."""
        started = time.perf_counter()
        adapter = fit_adapter(self.encoder.encode(texts), labels, self.config, self.encoder.fingerprint)
        return adapter, (time.perf_counter() - started) * 1000

    def predict(self, adapter: Adapter, texts: Sequence[str], top_k: int = 1) -> list[Prediction]:
        return rank(adapter, self.encoder.encode(texts), top_k)
