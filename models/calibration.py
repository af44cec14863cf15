"""Per-task calibration from the support set alone: temperature and out-of-scope threshold.

The adapted head fits its own support set almost perfectly, so support scores say
little about new texts. The temperature therefore comes from a cross-fit: split the
support set in two stratified folds, adapt on one fold with the same inner loop, score
the other; the held-out logits fit a temperature (Guo et al. 2017, "On Calibration of
Modern Neural Networks"). The out-of-scope score is the relative Mahalanobis score of
:mod:`models.out_of_scope`; its leave-one-out scores on the support set set the
rejection threshold at a chosen quantile (the fraction of in-scope texts one accepts to
reject). Negative (out-of-scope) examples, when given, move the threshold to the value
that best separates them from the held-out in-scope scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from models.head import head_logits
from models.inner_loop import InnerLoopConfig, adapt
from models.out_of_scope import OutOfScopeModel


@dataclass(frozen=True)
class TaskCalibration:
    temperature: float = 1.0
    oos_threshold: float | None = None


def stratified_folds(targets: torch.Tensor, num_classes: int, seed: int = 0,
                     holdable: torch.Tensor | None = None) -> torch.Tensor:
    """Fold 0 or 1 per example, each class split evenly at random; -1 for the examples of
    classes with fewer than two (they cannot be held out and still have a class) and for
    rows that are not ``holdable`` (label prompts: always trained on, never scored)."""
    generator = torch.Generator().manual_seed(seed)
    fold = torch.full((len(targets),), -1, dtype=torch.long)
    cpu_targets = targets.cpu()
    cpu_holdable = torch.ones(len(targets), dtype=torch.bool) if holdable is None else holdable.cpu()
    for label in range(num_classes):
        members = torch.nonzero((cpu_targets == label) & cpu_holdable).flatten()
        if len(members) >= 2:
            members = members[torch.randperm(len(members), generator=generator)]
            fold[members] = torch.arange(len(members)) % 2
    return fold.to(targets.device)


def cross_fit(
    embeddings: torch.Tensor, targets: torch.Tensor, num_classes: int, config: InnerLoopConfig, seed: int = 0,
    holdable: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Held-out (logits, targets) for examples of classes with >= 2 holdable examples,
    each scored by a head adapted on the other fold (plus every row not held out)."""
    fold = stratified_folds(targets, num_classes, seed, holdable)
    logits = torch.zeros(len(targets), num_classes, device=embeddings.device)
    for held_out in (0, 1):
        train = fold != held_out
        test = fold == held_out
        if not test.any():
            continue
        params = adapt(embeddings[train], targets[train], num_classes, config)
        logits[test] = head_logits(params, embeddings[test], config.scale)
    mask = fold >= 0
    return logits[mask], targets[mask]


def fit_temperature(
    logits: torch.Tensor, targets: torch.Tensor, prior_std: float = 0.5, bounds: tuple[float, float] = (0.1, 10.0)
) -> float:
    """The MAP temperature: held-out NLL of softmax(logits / T) summed over examples,
    plus a Gaussian prior on log T (mean 0, ``prior_std``). With hundreds of held-out
    texts the data decide; with a handful, which are often all right and would
    otherwise drive T toward 0 (probabilities of exactly 1), the prior keeps T near 1."""
    if len(targets) == 0:
        return 1.0
    log_t = torch.zeros(1, device=logits.device, requires_grad=True)
    optimiser = torch.optim.LBFGS([log_t], lr=0.1, max_iter=100)

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        nll = F.cross_entropy(logits.detach() / log_t.exp(), targets, reduction="sum")
        loss = nll + 0.5 * (log_t**2).sum() / prior_std**2
        loss.backward()
        return loss

    optimiser.step(closure)
    return float(log_t.exp().clamp(*bounds).item())


def rejection_quantile(scores: torch.Tensor, level: float) -> float:
    """The threshold that rejects (``score < threshold``) a share ``level`` of new texts
    exchangeable with ``scores``, on average: the value at position ``h = level (n + 1)``
    among the ``n`` sorted scores, interpolated linearly between its neighbours (Hyndman
    and Fan 1996, type 6). A new text falls below the k-th smallest of the n scores with
    probability exactly ``k / (n + 1)``, which is what makes position ``h`` the right one;
    the split-conformal rank ``floor(h)`` (Vovk et al. 2005) bounds the rate by ``level``
    but with a few dozen scores falls a whole rank short (30 scores: 3.2% instead of 5%),
    and the usual interpolated quantile (type 7) rejects up to twice ``level``. Below
    position 1 (fewer than ``1 / level - 1`` scores) the smallest score is the best
    available. Leave-one-out scores are only nearly exchangeable with new texts'; over
    CLINC150 tasks of 2-150 labels and 2-10 examples the rejected share strays from the
    asked one by 1.75 points on average on ``valid`` (type 7: 1.63, the conformal rank:
    1.86) and 1.41 on ``test`` (1.62, 1.52), with higher out-of-scope recall than the
    conformal rank on both (``benchmarks/explorations/oos_thresholds.py``, docs/benchmarks.md)."""
    ordered = scores.float().sort().values
    position = level * (len(ordered) + 1)
    if position <= 1 or len(ordered) == 1:
        return float(ordered[0].item())
    if position >= len(ordered):  # a level above n / (n + 1): the largest score (not past it)
        return float(ordered[-1].item())
    below = min(int(position), len(ordered) - 1)  # 1-based rank of the neighbour below
    lower, upper = ordered[below - 1], ordered[below]
    return float((lower + (position - below) * (upper - lower)).item())


def choose_threshold(in_scope: torch.Tensor, negatives: torch.Tensor | None, reject_quantile: float) -> float:
    """Rejection quantile of held-out in-scope scores; with negatives, the best balanced
    separation at or above it, never rejecting more than twice ``reject_quantile`` of the
    in-scope scores."""
    quantile = rejection_quantile(in_scope, reject_quantile)
    if negatives is None or len(negatives) == 0:
        return quantile
    # The ceiling is the interpolated quantile: a few dozen scores leave room above the minimum.
    ceiling = float(torch.quantile(in_scope.float(), min(1.0, 2 * reject_quantile)).item())
    # Negatives may only raise the threshold (reject more), never lower it below the
    # support-only default, and never past rejecting 2 x reject_quantile of in-scope texts.
    candidates = torch.cat([in_scope, negatives, in_scope.new_tensor([quantile])]).unique()
    candidates = candidates[(candidates >= quantile) & (candidates <= ceiling)]
    if len(candidates) == 0:
        return quantile
    accept_in = (in_scope[None, :] >= candidates[:, None]).float().mean(1)
    reject_neg = (negatives[None, :] < candidates[:, None]).float().mean(1)
    return float(candidates[(accept_in + reject_neg).argmax()].item())


def calibrate(
    embeddings: torch.Tensor,
    targets: torch.Tensor,
    num_classes: int,
    config: InnerLoopConfig,
    oos_model: OutOfScopeModel,
    negatives: torch.Tensor | None = None,
    reject_quantile: float = 0.05,
    prompts: torch.Tensor | None = None,
) -> TaskCalibration:
    """Temperature and out-of-scope threshold (in ``oos_model``'s score) for a task,
    from its support set; without two held-out texts there is neither.

    ``prompts`` marks rows that stand for a label's name or description rather than a
    text a customer wrote: they take part in every fit but are never held out, since
    the temperature must describe new texts, and a label name scored by a head fitted on
    that label's one example says little about them (1 example per BANKING77 label plus
    its name: top-1 ECE 0.17 with names held out, 0.02 without). The out-of-scope
    threshold still uses every row's leave-one-out score: prompts are part of what the
    Gaussians cover, and without them tasks of one example per label would have none."""
    holdable = None if prompts is None else ~prompts
    logits, held_targets = cross_fit(embeddings, targets, num_classes, config, holdable=holdable)
    temperature = fit_temperature(logits, held_targets) if len(held_targets) >= 2 else 1.0
    held_out_scores = oos_model.leave_one_out_scores(embeddings, targets)
    if len(held_out_scores) < 2:
        return TaskCalibration(temperature)
    negative_scores = oos_model.scores(negatives) if negatives is not None and len(negatives) > 0 else None
    return TaskCalibration(temperature, choose_threshold(held_out_scores, negative_scores, reject_quantile))


def expected_calibration_error(probabilities: torch.Tensor, targets: torch.Tensor, bins: int = 15) -> float:
    """ECE of the top-1 class of each row of ``probabilities`` (see :func:`top1_calibration_error`)."""
    confidence, predicted = probabilities.max(dim=-1)
    return top1_calibration_error(confidence, predicted == targets, bins)


def top1_calibration_error(confidence: torch.Tensor, correct: torch.Tensor, bins: int = 15) -> float:
    """ECE (Guo et al. 2017): bin the top-1 scores by value, average |score - share correct|
    weighted by bin size; 0 means a score of 0.8 is right 80% of the time."""
    confidence, correct = confidence.float(), correct.float()
    edges = torch.linspace(0, 1, bins + 1, device=confidence.device)
    error = torch.zeros((), device=confidence.device)
    for low, high in zip(edges[:-1], edges[1:]):
        in_bin = (confidence > low) & (confidence <= high)
        if in_bin.any():
            error += in_bin.float().mean() * (confidence[in_bin].mean() - correct[in_bin].mean()).abs()
    return float(error.item())
