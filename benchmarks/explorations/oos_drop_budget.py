"""Exploration: how much out-of-scope recall fits in a 3-point drop?

The target is out-of-scope recall >= 85% while in-scope accuracy drops <= 3 points
(rejected in-scope texts that were classified correctly). For the service's score with
the shipped checkpoint (CLINC150, ``train_10`` support, 150 labels) this prints, on
``valid`` (+ ``oos_valid`` + ``oos_train``) and on ``test`` (+ ``oos_test``):

- the leave-one-out threshold at reject quantiles 4-7% (the service's rule; 5% ships);
- the best any threshold could do, chosen on the evaluated texts themselves (an oracle,
  not a rule): the largest recall with a drop of at most 3 points;
- the same oracle for the score plus the classifier's top-1 probability (each
  standardised on in-scope texts), in case rejecting likely misclassifications costs less.

    python benchmarks/explorations/oos_drop_budget.py --data ../shared/data/clinc150 --checkpoint default
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.oos_scores import relative_mahalanobis_scorer  # noqa: E402
from models.calibration import choose_threshold  # noqa: E402
from models.checkpoint import build_encoder, resolve_checkpoint  # noqa: E402
from models.data import read_jsonl  # noqa: E402
from models.head import head_logits  # noqa: E402
from models.out_of_scope import fit_out_of_scope  # noqa: E402

SPLITS = ("train_10", "valid", "oos_valid", "oos_train", "test", "oos_test")


def oracle_recall(s_in: torch.Tensor, s_out: torch.Tensor, correct: torch.Tensor, budget: float = 3.0) -> tuple[float, float]:
    """Largest out-of-scope recall (and the in-scope share rejected) with a drop of at most ``budget`` points."""
    best = None
    for threshold in torch.sort(s_in).values:
        if 100 * ((s_in < threshold) & correct).float().mean() > budget:
            break
        best = threshold
    if best is None:
        return 0.0, 0.0
    return round(100 * (s_out < best).float().mean().item(), 1), round(100 * (s_in < best).float().mean().item(), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/clinc150")
    parser.add_argument("--checkpoint", default="default")
    args = parser.parse_args()
    checkpoint = resolve_checkpoint(args.checkpoint)
    encoder = build_encoder(None, checkpoint, "cpu")
    config = checkpoint.inner_loop
    rows = {s: read_jsonl(Path(args.data) / f"{s}.jsonl") for s in SPLITS}
    vectors = {s: encoder.encode([r.text for r in v]) for s, v in rows.items()}
    labels = sorted({r.label for r in rows["train_10"]})
    targets = torch.tensor([labels.index(r.label) for r in rows["train_10"]])
    head, score, _ = relative_mahalanobis_scorer(vectors["train_10"], targets, len(labels), config, 0.05)
    loo = fit_out_of_scope(vectors["train_10"], targets, len(labels)).leave_one_out_scores(vectors["train_10"], targets)
    for name, outside in (("valid", ["oos_valid", "oos_train"]), ("test", ["oos_test"])):
        truth = torch.tensor([labels.index(r.label) for r in rows[name]])
        out_vectors = torch.cat([vectors[o] for o in outside])
        logits = head_logits(head, vectors[name], config.scale)
        correct = logits.argmax(-1) == truth
        s_in, s_out = score(vectors[name]), score(out_vectors)
        print(f"{name}: accuracy {100 * correct.float().mean():.2f}")
        for quantile in (0.04, 0.045, 0.05, 0.055, 0.06, 0.065, 0.07):
            rejected = s_in < choose_threshold(loo, None, quantile)
            print(f"  reject quantile {quantile}: rejected {100 * rejected.float().mean():.2f}%, "
                  f"drop {100 * (rejected & correct).float().mean():.2f}, "
                  f"recall {100 * (s_out < choose_threshold(loo, None, quantile)).float().mean():.1f}%")
        recall, share = oracle_recall(s_in, s_out, correct)
        print(f"  oracle threshold, drop <= 3: recall {recall}% ({share}% of in-scope rejected)")
        conf_in = logits.softmax(-1).max(-1).values
        conf_out = head_logits(head, out_vectors, config.scale).softmax(-1).max(-1).values
        for weight in (0.5, 1.0, 2.0, 4.0):
            z = lambda s, c: (s - s_in.mean()) / s_in.std() + weight * (c - conf_in.mean()) / conf_in.std()  # noqa: E731
            recall, share = oracle_recall(z(s_in, conf_in), z(s_out, conf_out), correct)
            print(f"  score + {weight} x top-1 probability, oracle threshold, drop <= 3: recall {recall}% ({share}% rejected)")


if __name__ == "__main__":
    main()
