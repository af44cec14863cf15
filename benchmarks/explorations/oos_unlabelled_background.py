"""Exploration: the out-of-scope score's background Gaussian
fitted to unlabelled texts instead of the support set.

The relative Mahalanobis score (:mod:`models.out_of_scope`) subtracts the distance to a
"background" Gaussian; Ren et al. 2021 fit it to broad data, the service to the task's own
support set. With unlabelled customer texts at hand, the background could come from them.
CLINC150, support ``train_10``, `default` checkpoint; the background is fitted to
``n`` texts drawn from ``train`` (labels dropped), optionally with ``oos_train`` mixed in
(real traffic holds out-of-scope texts too), at the shipped shrinkage (0.9) and 0.5, with
the shipped background weight and 1. The threshold is the shipped leave-one-out rule
(class part held out; the background does not contain the support texts).

    python benchmarks/explorations/oos_unlabelled_background.py --data ../shared/data/clinc150
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from models.calibration import choose_threshold  # noqa: E402
from models.checkpoint import build_encoder, resolve_checkpoint  # noqa: E402
from models.data import read_jsonl  # noqa: E402
from models.metrics import roc_auc  # noqa: E402
from models.out_of_scope import OutOfScopeModel, fit_out_of_scope, fit_precision  # noqa: E402

SPLITS = ("train", "train_10", "valid", "test", "oos_train", "oos_valid", "oos_test")


def figures(model: OutOfScopeModel, loo: torch.Tensor, embedded: dict[str, torch.Tensor]) -> str:
    threshold = choose_threshold(loo, None, 0.05)
    parts = []
    for inside, outside in (("valid", "oos_valid"), ("test", "oos_test")):
        scores_in, scores_out = model.scores(embedded[inside]), model.scores(embedded[outside])
        parts.append(f"{inside}: AUROC {roc_auc((-scores_out).tolist(), (-scores_in).tolist()):.4f}, "
                     f"in-scope rejected {100 * float((scores_in < threshold).float().mean()):.2f}%, "
                     f"OOS recall {100 * float((scores_out < threshold).float().mean()):.2f}%")
    return "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/clinc150")
    parser.add_argument("--checkpoint", default="default")
    args = parser.parse_args()
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    encoder = build_encoder(None, resolve_checkpoint(args.checkpoint), device="cpu")
    rows = {split: read_jsonl(Path(args.data) / f"{split}.jsonl") for split in SPLITS}
    embedded = {split: encoder.encode([r.text for r in rows[split]]).float() for split in SPLITS}
    labels = sorted({r.label for r in rows["train_10"]})
    targets = torch.tensor([labels.index(r.label) for r in rows["train_10"]])
    support = embedded["train_10"]
    shipped = fit_out_of_scope(support, targets, len(labels))
    print("shipped (background = support set):", figures(shipped, shipped.leave_one_out_scores(support, targets), embedded))
    held_out = shipped.within.held_out_distances(support, shipped.means, targets, torch.bincount(targets)[targets].float())
    generator = torch.Generator().manual_seed(0)
    pools = {"train": embedded["train"], "train+oos_train": torch.cat([embedded["train"], embedded["oos_train"]])}
    for (name, pool), size, shrinkage in itertools.product(pools.items(), (500, 2000, None), (0.9, 0.5)):
        drawn = pool[torch.randperm(len(pool), generator=generator)[:size]] if size else pool
        residuals = drawn - drawn.mean(0)
        spread = float((residuals**2).sum(-1).mean()) / drawn.shape[1]
        background = fit_precision(residuals, spread, shrinkage)
        for weight in (shipped.background_weight, 1.0):
            model = OutOfScopeModel(shipped.means, shipped.within, drawn.mean(0), background, weight)
            print(f"{name}, {len(drawn)} texts, shrinkage {shrinkage}, weight {weight:.3f}:",
                  figures(model, model._combine(support, held_out), embedded), flush=True)


if __name__ == "__main__":
    main()
