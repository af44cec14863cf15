"""Meta-validation and inner-loop calibration, scored with the service's own adaptation.

Validation episodes come from the ``valid`` split of each training data set: all of
its classes by default (as the fixed-split benchmarks use all classes), at 5 and 10
shots, the remaining rows of each class as queries. Scores are query accuracies of
:func:`models.classifier.fit_adapter` heads, exactly what the server computes; with
``out_of_scope`` also the AUROC of the service's out-of-scope score
(:mod:`models.out_of_scope`), added to the accuracy as the selection score: against the
data set's real out-of-scope texts when it has them (CLINC150's ``oos_valid`` and
``oos_train``, which training never uses), else with the last quarter of each episode's
classes stripped of their support to play unknown intents. The second is only a proxy: on
CLINC150 it rose steadily during a LoRA run while the AUROC on real out-of-scope texts fell
(measured in docs/benchmarks.md).

Calibration is the Meta-SGD stage (Li et al. 2017): with the (possibly adapted)
encoder frozen, learn log learning rate / log proximal / log scale by second-order
differentiation through the inner loop on training episodes, once per candidate
number of steps, and keep whichever candidate (or the starting settings) scores best
on meta-validation: the steps are chosen by search, the rest by gradient.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import torch

from models.adapter import Adapter
from models.classifier import fit_adapter
from models.episodes import Episode, EpisodeSampler
from models.inner_loop import InnerLoopConfig
from models.meta.algorithms import maml_head_loss
from models.meta.model import LearnedInnerLoop
from models.meta.oos_loss import known_classes
from models.metrics import roc_auc
from models.out_of_scope import fit_out_of_scope


@dataclass
class ValidationSet:
    """Fixed validation episodes of one data set, with indices into its valid split."""

    name: str
    episodes: list[Episode]
    oos_rows: list[int] = field(default_factory=list)  # real out-of-scope texts among the valid states


def validation_sets(datasets: Sequence, shots: Sequence[int], episodes: int, ways: int, seed: int) -> list[ValidationSet]:
    sets = []
    for data in datasets:
        picked = []
        for shot in shots:
            sampler = EpisodeSampler(data.valid_rows, ways, shot, 10_000, seed=seed + 7919 * shot, source=data.name)
            picked += sampler.take(episodes)
        sets.append(ValidationSet(data.name, picked, data.valid_oos_indices()))
    return sets


def episode_adapter(embeddings: torch.Tensor, episode: Episode, config: InnerLoopConfig) -> Adapter:
    """The service's adapter (head and out-of-scope model) fitted on the episode's support set."""
    labels = [episode.classes[i] for i in episode.support_labels]
    return fit_adapter(embeddings[list(episode.support_rows)], labels, config, "meta-validation")


def episode_accuracy(embeddings: torch.Tensor, episode: Episode, config: InnerLoopConfig,
                     adapter: Adapter | None = None) -> float:
    """Query accuracy of the service's adapter fitted on the episode's support set (or ``adapter``, that fit)."""
    adapter = adapter or episode_adapter(embeddings, episode, config)
    predicted = adapter.probabilities(embeddings[list(episode.query_rows)]).argmax(-1).cpu()
    truth = torch.tensor([adapter.labels.index(episode.classes[i]) for i in episode.query_labels])
    return float((predicted == truth).float().mean())


def episode_oos_auroc(embeddings: torch.Tensor, episode: Episode, oos_rows: Sequence[int] = (),
                      held_out: float = 0.25, adapter: Adapter | None = None) -> float:
    """AUROC of the out-of-scope score: the rows ``oos_rows`` against the episode's queries,
    fitted on its whole support (``adapter``'s out-of-scope model when given, it is that fit);
    without ``oos_rows``, the queries of the episode's last ``held_out`` classes (fitted
    without their support) against the queries of the others."""
    if oos_rows:
        if adapter is not None:
            in_scope_scores = adapter.in_scope_scores
        else:
            targets = episode.support_targets().to(embeddings.device)
            in_scope_scores = fit_out_of_scope(embeddings[list(episode.support_rows)], targets, episode.ways).scores
        inside = in_scope_scores(embeddings[list(episode.query_rows)]).cpu()
        return roc_auc(inside.tolist(), in_scope_scores(embeddings[list(oos_rows)]).cpu().tolist())
    known = known_classes(episode.ways, held_out)
    ys, yq = episode.support_targets().to(embeddings.device), episode.query_targets().to(embeddings.device)
    support = embeddings[list(episode.support_rows)][ys < known]
    model = fit_out_of_scope(support, ys[ys < known], known)
    scores = model.scores(embeddings[list(episode.query_rows)]).cpu()
    inside = (yq < known).cpu()
    return roc_auc(scores[inside].tolist(), scores[~inside].tolist())


def score(embeddings_by_set: dict[str, torch.Tensor], sets: Sequence[ValidationSet], config: InnerLoopConfig,
          out_of_scope: bool = False) -> dict[str, float]:
    """Mean query accuracy per data set and overall; ``"mean"`` is the early-stopping score:
    the overall accuracy, plus with ``out_of_scope`` the mean out-of-scope AUROC
    (``<set>/oos_auroc``) of the data sets with real out-of-scope texts, or of all of them
    (held-out classes) when none has any. Each episode's adapter is fitted once, for both."""
    counted = ([v for v in sets if v.oos_rows] or list(sets)) if out_of_scope else []
    result, aurocs = {}, {}
    for vset in sets:
        embeddings, accuracies, aurocs[vset.name] = embeddings_by_set[vset.name], [], []
        for episode in vset.episodes:
            adapter = episode_adapter(embeddings, episode, config)
            accuracies.append(episode_accuracy(embeddings, episode, config, adapter))
            if any(vset is v for v in counted):
                aurocs[vset.name].append(episode_oos_auroc(embeddings, episode, vset.oos_rows, adapter=adapter))
        result[vset.name] = sum(accuracies) / len(accuracies)
    result["mean"] = sum(result[v.name] for v in sets) / len(sets)
    if counted:  # real out-of-scope texts where any data set has them; the held-out-class proxy otherwise
        for vset in counted:
            result[f"{vset.name}/oos_auroc"] = sum(aurocs[vset.name]) / len(aurocs[vset.name])
        result["oos_auroc"] = sum(result[f"{v.name}/oos_auroc"] for v in counted) / len(counted)
        result["mean"] += result["oos_auroc"]
    return result


def calibrate_inner_loop(
    train: dict[str, tuple[list, torch.Tensor]],
    valid_embeddings: dict[str, torch.Tensor],
    sets: Sequence[ValidationSet],
    start: InnerLoopConfig,
    steps_grid: Sequence[int],
    episodes: int = 60,
    ways: int = 40,
    shots: Sequence[int] = (5, 10),
    learning_rate: float = 0.05,
    seed: int = 0,
    progress: bool = False,
    out_of_scope: bool = False,
) -> tuple[InnerLoopConfig, list[dict]]:
    """Learn the inner loop on ``train`` episodes (rows, frozen embeddings) for each steps value.

    Returns the best config on meta-validation (possibly ``start`` itself) and the table
    of candidates with their scores (with ``out_of_scope``, the same score as training's
    ``--select-on accuracy+oos``: accuracy plus out-of-scope AUROC).
    """
    from tqdm.auto import tqdm

    table = [{"candidate": "start", **start.to_dict(), **score(valid_embeddings, sets, start, out_of_scope)}]
    samplers = [EpisodeSampler(rows, ways, shot, 5, seed=seed + shot, source=name)
                for name, (rows, _) in train.items() for shot in shots]
    for steps in steps_grid:
        learned = LearnedInnerLoop(replace(start, steps=steps), learn=True)
        optimiser = torch.optim.Adam(learned.parameters(), lr=learning_rate)
        for index in tqdm(range(episodes), desc=f"calibrate steps={steps}", disable=not progress, leave=False):
            sampler = samplers[index % len(samplers)]
            episode = sampler.episode(index // len(samplers))
            embeddings = train[episode.source][1]
            support, query = embeddings[list(episode.support_rows)], embeddings[list(episode.query_rows)]
            loss = maml_head_loss(support, episode.support_targets().to(support.device), query,
                                  episode.query_targets().to(support.device), episode.ways, learned.config())
            optimiser.zero_grad()
            if torch.isfinite(loss):
                loss.backward()
                if torch.isfinite(torch.nn.utils.clip_grad_norm_(learned.parameters(), 1.0)):
                    optimiser.step()
        config = learned.export()
        table.append({"candidate": f"steps={steps}", **config.to_dict(), **score(valid_embeddings, sets, config, out_of_scope)})
    best = max(table, key=lambda row: row["mean"])
    return InnerLoopConfig.from_dict(best), table
