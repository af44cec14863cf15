"""Exploration: how much do the out-of-scope figures depend on the support draw?

The published figures use one support set, CLINC150 ``train_10``. Here the same relative
Mahalanobis score and leave-one-out threshold (5% asked) with other 10-shot support sets
of all 150 labels: four random draws of ``train`` rows outside ``train_10`` (seeded), and
one draw of ``valid`` rows; ``test`` + ``oos_test`` scored each time. For each checkpoint
named on the command line.

    python benchmarks/explorations/oos_support_draws.py default runs/lora-oos/v2 --data ../shared/data/clinc150
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.explorations.oos_features import figures  # noqa: E402
from models.checkpoint import build_encoder, resolve_checkpoint  # noqa: E402
from models.data import LabelledText, read_jsonl  # noqa: E402
from models.out_of_scope import fit_out_of_scope  # noqa: E402


def draw(rows: list[LabelledText], shots: int, rng: random.Random, exclude: set[str] = frozenset()) -> list[LabelledText]:
    """``shots`` rows per label, none of whose text is in ``exclude``."""
    by_label: dict[str, list[LabelledText]] = {}
    for row in rows:
        if row.text not in exclude:
            by_label.setdefault(row.label, []).append(row)
    return [row for label in sorted(by_label) for row in rng.sample(by_label[label], shots)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--data", default="../shared/data/clinc150")
    parser.add_argument("--draws", type=int, default=4)
    args = parser.parse_args()
    rows = {s: read_jsonl(Path(args.data) / f"{s}.jsonl") for s in ("train", "train_10", "valid", "test", "oos_test")}
    rng = random.Random(0)
    fixed = {r.text for r in rows["train_10"]}
    supports = {"train_10 (the benchmark's)": rows["train_10"]}
    supports |= {f"other train rows, draw {i}": draw(rows["train"], 10, rng, fixed) for i in range(args.draws)}
    supports["valid rows"] = draw(rows["valid"], 10, rng)
    for name in args.checkpoints:
        encoder = build_encoder(None, resolve_checkpoint(name), "cpu")
        inside, outside = encoder.encode([r.text for r in rows["test"]]), encoder.encode([r.text for r in rows["oos_test"]])
        for support_name, support in supports.items():
            labels = sorted({r.label for r in support})
            targets = torch.tensor([labels.index(r.label) for r in support])
            vectors = encoder.encode([r.text for r in support])
            model = fit_out_of_scope(vectors, targets, len(labels))
            result = figures({"test": model.scores(inside), "oos_test": model.scores(outside)},
                             model.leave_one_out_scores(vectors, targets), "test", ["oos_test"], 0.05)
            print(f"{name} | {support_name} | AUROC {result['auroc']:.4f} | "
                  f"in-scope rejected {result['rejected']:.2f}% | recall {result['recall']:.1f}%", flush=True)


if __name__ == "__main__":
    main()
