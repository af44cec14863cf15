"""Meta-learning out-of-scope rejection: a ranking term on held-out classes of each episode.

The service rejects texts by the relative Mahalanobis score of :mod:`models.out_of_scope`.
Meta-training for accuracy alone does not ask the encoder (or its layer mix) to make
that score separate unknown intents from known ones. Here each episode's last
``held_out`` classes lose their support examples and play out-of-scope texts: their
queries should score below every in-scope query. The term is a smooth AUROC surrogate
(the mean softplus of ``(s_out - s_in) / temperature`` over all pairs; Yan et al. 2003,
"Optimizing classifier performance via an approximation to the Wilcoxon-Mann-Whitney
statistic"), added to the episode's own loss on the remaining classes. The score is
computed densely here (a ``dim x dim`` inverse), which is differentiable. It equals the
service's low-rank form while the support set's scatter has at most ``DEFAULT_RANK``
(64) directions; with more rows the service keeps only the top 64 and the two differ
a little (a few percent of a typical score at 400 rows). Like the service, a scatter
without spread (one example per class) borrows the background's variance.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from models.inner_loop import InnerLoopConfig
from models.out_of_scope import DEFAULT_SHRINKAGE, background_weight, class_means, relative_score

EpisodeLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int, InnerLoopConfig], torch.Tensor]


def _shrunk_precision(residuals: torch.Tensor, shrinkage: float, fallback_variance: torch.Tensor | None = None
                      ) -> torch.Tensor:
    covariance = residuals.T @ residuals / len(residuals)
    dim = covariance.shape[0]
    variance = covariance.diagonal().mean()
    if fallback_variance is not None:  # as models.out_of_scope.fit_precision: no spread, borrow the background's
        variance = torch.where(variance > 1e-12, variance, fallback_variance)
    target = variance.clamp_min(1e-8) * torch.eye(dim, dtype=covariance.dtype, device=covariance.device)
    return torch.linalg.inv((1 - shrinkage) * covariance + shrinkage * target)


def relative_mahalanobis(support: torch.Tensor, targets: torch.Tensor, classes: int, points: torch.Tensor,
                         shrinkage: float = DEFAULT_SHRINKAGE) -> torch.Tensor:
    """In-scope scores of ``points`` under Gaussians fitted to ``support``; differentiable."""
    means = class_means(support, targets, classes)
    centre = support.mean(0)
    spread = ((support - centre) ** 2).sum(-1).mean() / support.shape[1]  # the background's variance
    within = _shrunk_precision(support - means[targets], shrinkage, spread)
    background = _shrunk_precision(support - centre, shrinkage)
    diff = points[:, None, :] - means[None]
    nearest = torch.einsum("ncd,de,nce->nc", diff, within, diff).min(-1).values
    away = points - centre
    return relative_score(nearest, torch.einsum("nd,de,ne->n", away, background, away), background_weight(classes),
                          support.shape[1])


def known_classes(ways: int, held_out: float = 0.25) -> int:
    """How many of an episode's ``ways`` classes stay in scope when the last ``held_out``
    fraction (at least one) plays out-of-scope texts."""
    return ways - max(1, int(round(ways * held_out)))


def with_out_of_scope(loss: EpisodeLoss, weight: float, held_out: float = 0.25, temperature: float = 0.5) -> EpisodeLoss:
    """``loss`` on the episode's first classes plus ``weight`` times the ranking term with
    the last ``held_out`` fraction of classes (at least one) as out-of-scope queries."""

    def episode_loss(support: torch.Tensor, ys: torch.Tensor, query: torch.Tensor, yq: torch.Tensor, ways: int,
                     config: InnerLoopConfig) -> torch.Tensor:
        known = known_classes(ways, held_out)
        if known < 2:
            return loss(support, ys, query, yq, ways, config)
        keep_support, inside = ys < known, yq < known
        base = loss(support[keep_support], ys[keep_support], query[inside], yq[inside], known, config)
        scores = relative_mahalanobis(support[keep_support], ys[keep_support], known, query)
        pairs = (scores[~inside][:, None] - scores[inside][None, :]) / temperature
        return base + weight * F.softplus(pairs).mean()

    return episode_loss
