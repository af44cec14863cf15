"""Exploration: which reject quantile makes the threshold reject 5%?

Each task's out-of-scope threshold is the ``reject_quantile`` quantile of its support set's
leave-one-out in-scope scores (:func:`models.calibration.choose_threshold`). Support texts
look more typical than new texts of their class, by an amount that depends on the data set
and the checkpoint, so the share of *new* in-scope texts the rule rejects differs from the
quantile. This prints, for each checkpoint and data set (``train_10`` as the support set,
``valid`` as new in-scope texts; no test texts, no out-of-scope texts), the realised share
at each quantile from 1% to 10% and the largest quantile whose share stays at or below 5%:
the value a conformal-style calibration (Angelopoulos & Bates 2021) of the service-wide
``FEWSHOT_OOS_REJECT_QUANTILE`` would pick on that data set.

    python benchmarks/explorations/reject_quantile.py default runs/lora/x --data ../shared/data
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from models.calibration import choose_threshold  # noqa: E402
from models.checkpoint import build_encoder, resolve_checkpoint  # noqa: E402
from models.data import read_jsonl  # noqa: E402
from models.out_of_scope import fit_out_of_scope  # noqa: E402

GRID = tuple(round(0.01 + 0.0025 * i, 4) for i in range(37))  # 1% .. 10%


def realised_rejection(support: torch.Tensor, targets: torch.Tensor, classes: int, queries: torch.Tensor,
                       quantiles: Sequence[float] = GRID) -> list[float]:
    """Share of ``queries`` (new in-scope texts) that each quantile's threshold rejects."""
    model = fit_out_of_scope(support, targets, classes)
    held_out, scores = model.leave_one_out_scores(support, targets), model.scores(queries)
    return [float((scores < choose_threshold(held_out, None, q)).double().mean()) for q in quantiles]


def pick_quantile(quantiles: Sequence[float], shares: Sequence[float], target: float) -> float:
    """The largest quantile whose realised share is at most ``target`` (else the smallest)."""
    fitting = [q for q, share in zip(quantiles, shares) if share <= target + 1e-9]
    return max(fitting) if fitting else min(quantiles)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--datasets", nargs="+", default=["clinc150", "banking77"])
    parser.add_argument("--target", type=float, default=0.05)
    args = parser.parse_args()
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    print("| checkpoint | data set | share at 4% / 5% / 6% | quantile for <= 5% |")
    print("|---|---|---|---|")
    for name in args.checkpoints:
        encoder = build_encoder(None, resolve_checkpoint(name), device="cpu")
        for dataset in args.datasets:
            support = read_jsonl(Path(args.data) / dataset / "train_10.jsonl")
            queries = read_jsonl(Path(args.data) / dataset / "valid.jsonl")
            labels = sorted({row.label for row in support})
            index = {label: i for i, label in enumerate(labels)}
            shares = realised_rejection(encoder.encode([r.text for r in support]),
                                        torch.tensor([index[r.label] for r in support]), len(labels),
                                        encoder.encode([r.text for r in queries]))
            at = {q: s for q, s in zip(GRID, shares)}
            print(f"| {name} | {dataset} | {100 * at[0.04]:.2f} / {100 * at[0.05]:.2f} / {100 * at[0.06]:.2f} | "
                  f"{100 * pick_quantile(GRID, shares, args.target):.2f}% |", flush=True)


if __name__ == "__main__":
    main()
