"""Few-shot classifier = frozen encoder + inner loop: the one place both meet.

Used by the server, the CLI's ``evaluate`` and the benchmarks, so every path adapts
and predicts with exactly the same code.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Sequence

import torch

from models.adapter import Adapter
from models.calibration import TaskCalibration, calibrate
from models.encoder import TextEncoder
from models.head import HeadParams, prototype_init, refine_with_unlabelled
from models.inner_loop import InnerLoopConfig, adapt
from models.out_of_scope import fit_out_of_scope


@dataclass(frozen=True)
class Prediction:
    label: str | None
    score: float
    top_k: list[tuple[str, float]]
    in_scope_score: float = 1.0
    out_of_scope: bool = False
    ambiguous: bool = False


def continual_init(previous: Adapter, start: HeadParams, label_order: Sequence[str]) -> HeadParams:
    """Start from the previous adapter's rows; labels it lacks keep their rows of ``start``
    (their prototypes)."""
    old_index = {label: i for i, label in enumerate(previous.labels)}
    weight, bias = start["weight"].clone(), start["bias"].clone()
    for row, label in enumerate(label_order):
        if label in old_index:
            weight[row] = previous.params["weight"][old_index[label]].to(weight.device)
            bias[row] = previous.params["bias"][old_index[label]].to(bias.device)
    return {"weight": weight, "bias": bias}


def fit_adapter(
    embeddings: torch.Tensor,
    labels: Sequence[str],
    config: InnerLoopConfig,
    encoder_fingerprint: str,
    previous: Adapter | None = None,
    negatives: torch.Tensor | None = None,
    calibrated: bool = False,
    reject_quantile: float = 0.05,
    unlabelled: torch.Tensor | None = None,
    prompts: torch.Tensor | None = None,
) -> Adapter:
    """Adapt a head to support embeddings; labels are sorted so the order is stable.

    ``previous`` makes this a continual update: the head starts from (and is pulled
    toward) the previous adapter instead of the prototypes. The out-of-scope model
    (models.out_of_scope) is always fitted, so in-scope scores mean the same with or
    without calibration; ``calibrated`` also fits the temperature and the out-of-scope
    threshold (models.calibration), using ``negatives`` (embeddings of out-of-scope
    examples) when given.

    ``unlabelled`` (embeddings of texts without labels, e.g. past tickets) moves the
    starting prototypes toward the texts they claim (:func:`models.head.refine_with_unlabelled`,
    semi-supervised prototypes); it changes only where adaptation starts, so the adapter's
    format and the out-of-scope model are the same with or without it.

    ``prompts`` (a boolean per row) marks label names/descriptions standing in for
    examples: fitted like examples, never held out for calibration.
    """
    label_order = tuple(sorted(set(labels)))
    index = {label: i for i, label in enumerate(label_order)}
    targets = torch.tensor([index[label] for label in labels], device=embeddings.device)
    start = prototype_init(embeddings, targets, len(label_order))
    if unlabelled is not None and len(unlabelled) > 0:
        start["weight"] = refine_with_unlabelled(start["weight"], unlabelled.to(embeddings.device))
    loop = config
    if previous is not None:
        start = continual_init(previous, start, label_order)
        loop = replace(config, steps=config.continual_steps)
    params = adapt(embeddings, targets, len(label_order), loop, init=start)
    oos_model = fit_out_of_scope(embeddings, targets, len(label_order))
    calibration = (
        calibrate(embeddings, targets, len(label_order), config, oos_model, negatives, reject_quantile, prompts)
        if calibrated
        else TaskCalibration()
    )
    return Adapter(label_order, params, config.scale, encoder_fingerprint, calibration.temperature,
                   calibration.oos_threshold, oos_model)


def rank(
    adapter: Adapter,
    embeddings: torch.Tensor,
    top_k: int,
    oos_threshold: float | None = None,
    ambiguity_margin: float = 0.0,
) -> list[Prediction]:
    """Top-k labels with probabilities per row; one host transfer for the whole batch.

    A row whose in-scope score falls below the threshold (``oos_threshold``, else the
    adapter's own) is out of scope: its label is None. A row whose two best
    probabilities differ by less than ``ambiguity_margin`` is flagged ambiguous.
    """
    probabilities = adapter.probabilities(embeddings)
    threshold = oos_threshold if oos_threshold is not None else adapter.oos_threshold
    in_scope = adapter.in_scope_scores(embeddings).cpu().tolist()
    k = min(top_k, len(adapter.labels))
    scores, indices = probabilities.topk(max(k, min(2, len(adapter.labels))), dim=-1)
    scores, indices = scores.cpu().tolist(), indices.cpu().tolist()
    predictions = []
    for row_scores, row_indices, similarity in zip(scores, indices, in_scope):
        ranked = [(adapter.labels[i], s) for i, s in zip(row_indices, row_scores)]
        rejected = threshold is not None and similarity < threshold
        close = len(ranked) > 1 and ranked[0][1] - ranked[1][1] < ambiguity_margin
        predictions.append(Prediction(None if rejected else ranked[0][0], ranked[0][1], ranked[:k], similarity,
                                      rejected, close))
    return predictions


class FewShotClassifier:
    """Encoder plus inner-loop settings; makes adapters and predicts with them."""

    def __init__(self, encoder: TextEncoder, config: InnerLoopConfig) -> None:
        self.encoder = encoder
        self.config = config

    def fit(self, texts: Sequence[str], labels: Sequence[str], calibrated: bool = False) -> tuple[Adapter, float]:
        """Embed and adapt; returns the adapter and the wall time in milliseconds."""
        started = time.perf_counter()
        adapter = fit_adapter(self.encoder.encode(texts), labels, self.config, self.encoder.fingerprint,
                              calibrated=calibrated)
        return adapter, (time.perf_counter() - started) * 1000

    def predict(self, adapter: Adapter, texts: Sequence[str], top_k: int = 1) -> list[Prediction]:
        return rank(adapter, self.encoder.encode(texts), top_k)
