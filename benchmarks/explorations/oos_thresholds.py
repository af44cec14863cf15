"""Exploration: threshold rules for small support sets.

The service sets a task's out-of-scope threshold from the leave-one-out scores of its
support set, asking to reject ``q`` = 5% of in-scope texts. With ``n`` scores the
split-conformal rank ``floor(q (n + 1))`` (the rule before) is 0 below 19 scores and a
whole rank short of ``q (n + 1)`` above, so small tasks rejected ~1-2% (docs/benchmarks.md,
the ``--shots 3`` table). The service now uses the type-6 position (the winner here). This script compares rules over CLINC150 tasks of 2 to 150 labels
and 2 to 10 examples per label (random draws, support from ``train_10``), reporting the
in-scope share rejected (the aim: close to ``q``) and out-of-scope recall, on ``valid``
(+ ``oos_valid`` + ``oos_train``), where a rule is chosen, and on ``test`` + ``oos_test``.

    python benchmarks/explorations/oos_thresholds.py --data ../shared/data/clinc150
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.explorations.oos_features import load_clinc150_pooled  # noqa: E402
from models.calibration import rejection_quantile  # noqa: E402
from models.checkpoint import resolve_checkpoint  # noqa: E402
from models.encoder import mix_pooled  # noqa: E402
from models.out_of_scope import fit_out_of_scope  # noqa: E402

Z = statistics.NormalDist().inv_cdf


def conformal_rank(scores: torch.Tensor, q: float) -> float:
    """The rule before this exploration: the ``floor(q (n + 1))``-th smallest score (at least the first)."""
    ordered = scores.float().sort().values
    return float(ordered[min(max(int(q * (len(ordered) + 1)), 1), len(ordered)) - 1])


def gaussian(scores: torch.Tensor, q: float) -> float:
    """Mean minus z_(1-q) standard deviations of the scores (a normal fit)."""
    return float(scores.mean() + Z(q) * scores.std())


def gaussian_predictive(scores: torch.Tensor, q: float) -> float:
    """The q-quantile of the Student-t predictive distribution of a new score under a
    normal model with unknown mean and variance: mean + t_(n-1)(q) s sqrt(1 + 1/n), with
    the t quantile from its first Cornish-Fisher term (no scipy needed)."""
    n, z = len(scores), Z(q)
    t = z * (1 + (z * z + 1) / (4 * max(n - 1, 1)))
    return float(scores.mean() + t * scores.std() * (1 + 1 / n) ** 0.5)


def interpolated(scores: torch.Tensor, q: float) -> float:
    return float(torch.quantile(scores.float(), q))


def hybrid(scores: torch.Tensor, q: float) -> float:
    """Conformal rank where it exists (n >= 1/q - 1), the normal fit below."""
    return conformal_rank(scores, q) if int(q * (len(scores) + 1)) >= 1 else gaussian(scores, q)


RULES = {"conformal rank (before)": conformal_rank, "interpolated (type 7)": interpolated,
         "type 6 (now: rejection_quantile)": rejection_quantile, "normal fit": gaussian,
         "normal predictive": gaussian_predictive, "conformal, normal below 19": hybrid}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/clinc150")
    parser.add_argument("--cache", default="runs/cache")
    parser.add_argument("--quantile", type=float, default=0.05)
    parser.add_argument("--draws", type=int, default=10)
    args = parser.parse_args()
    pooled, rows, labels = load_clinc150_pooled(args.data, args.cache)
    weights = torch.tensor(resolve_checkpoint("default").layer_mix)
    vectors = {s: mix_pooled(p, weights) for s, p in pooled.items()}
    y = {s: torch.tensor([labels.index(r.label) for r in rows[s]]) for s in ("train_10", "valid", "test")}
    outside = {"valid": torch.cat([vectors["oos_valid"], vectors["oos_train"]]), "test": vectors["oos_test"]}
    rng = random.Random(0)
    results: dict = {}
    for shots in (2, 3, 5, 10):
        for size in (2, 5, 10, 20, 50, 150):
            totals: dict = {}
            for _ in range(args.draws if size < len(labels) else 1):
                chosen = rng.sample(range(len(labels)), size)
                remap = {c: i for i, c in enumerate(chosen)}
                picked, seen = [], {}
                for i, v in enumerate(y["train_10"].tolist()):
                    if v in remap and seen.get(v, 0) < shots:
                        seen[v] = seen.get(v, 0) + 1
                        picked.append(i)
                support = vectors["train_10"][picked]
                targets = torch.tensor([remap[int(v)] for v in y["train_10"][picked]])
                model = fit_out_of_scope(support, targets, size)
                loo = model.leave_one_out_scores(support, targets)
                for split in ("valid", "test"):
                    keep = torch.tensor([int(v) in remap for v in y[split]])
                    s_in, s_out = model.scores(vectors[split][keep]), model.scores(outside[split])
                    for name, rule in RULES.items():
                        threshold = rule(loo, args.quantile)
                        entry = totals.setdefault(f"{split}|{name}", [])
                        entry.append(((s_in < threshold).float().mean().item(), (s_out < threshold).float().mean().item()))
            for key, values in totals.items():
                split, name = key.split("|")
                rejected = 100 * sum(v[0] for v in values) / len(values)
                recall = 100 * sum(v[1] for v in values) / len(values)
                results.setdefault(f"{shots} shots", {}).setdefault(str(size), {}).setdefault(name, {})[split] = {
                    "rejected": round(rejected, 2), "recall": round(recall, 1)}
            for name in RULES:
                r = results[f"{shots} shots"][str(size)][name]
                print(f"shots {shots:2d} labels {size:3d} {name:28s} valid {r['valid']}  test {r['test']}", flush=True)
    grid = list(results.values())
    for split in ("valid", "test"):
        for name in RULES:
            cells = [c[name][split] for shot in grid for c in shot.values()]
            deviation = sum(abs(c["rejected"] - 100 * args.quantile) for c in cells) / len(cells)
            recall = sum(c["recall"] for c in cells) / len(cells)
            results.setdefault("summary", {}).setdefault(name, {})[split] = {
                "mean |rejected - asked|": round(deviation, 2), "mean recall": round(recall, 1)}
            print(f"summary {split:5s} {name:28s} {results['summary'][name][split]}")
    Path("runs/oos").mkdir(parents=True, exist_ok=True)
    Path("runs/oos/thresholds.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
