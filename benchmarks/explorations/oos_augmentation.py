"""Exploration: do word-dropout copies of the support texts
give the out-of-scope Gaussians better estimates?

The shared within-class covariance of a 150-label, 10-shot task comes from 1,500 texts in
384 dimensions and is shrunk hard (0.9) toward the identity. Easy data augmentation (Wei
and Zou 2019) adds copies of each support text with one word deleted, labelled like the
original, so the fit sees more within-class spread at the cost of encoding them. CLINC150
``train_10`` support; AUROC of the service's relative Mahalanobis score on ``valid``
(+ ``oos_valid`` + ``oos_train``) and ``test`` (+ ``oos_test``), with and without copies.

    python benchmarks/explorations/oos_augmentation.py --data ../shared/data/clinc150 --checkpoint default
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from models.checkpoint import build_encoder, resolve_checkpoint  # noqa: E402
from models.data import read_jsonl  # noqa: E402
from models.metrics import roc_auc  # noqa: E402
from models.out_of_scope import fit_out_of_scope  # noqa: E402

SPLITS = ("train_10", "valid", "oos_valid", "oos_train", "test", "oos_test")


def drop_one_word(text: str, rng: random.Random) -> str:
    """The text without one of its words (texts of fewer than three words stay as they are)."""
    words = text.split()
    if len(words) < 3:
        return text
    gone = rng.randrange(len(words))
    return " ".join(words[:gone] + words[gone + 1 :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/clinc150")
    parser.add_argument("--checkpoint", default="default")
    parser.add_argument("--copies", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    encoder = build_encoder(None, resolve_checkpoint(args.checkpoint), "cpu")
    rows = {s: read_jsonl(Path(args.data) / f"{s}.jsonl") for s in SPLITS}
    vectors = {s: encoder.encode([r.text for r in v]) for s, v in rows.items()}
    labels = sorted({r.label for r in rows["train_10"]})
    targets = torch.tensor([labels.index(r.label) for r in rows["train_10"]])
    rng = random.Random(0)
    copies = encoder.encode([drop_one_word(r.text, rng) for _ in range(max(args.copies)) for r in rows["train_10"]])
    n = len(targets)
    for count in [0] + args.copies:
        support = torch.cat([vectors["train_10"], copies[: count * n]])
        model = fit_out_of_scope(support, targets.repeat(count + 1), len(labels))
        figures = []
        for name, outside in (("valid", ["oos_valid", "oos_train"]), ("test", ["oos_test"])):
            inside, out = model.scores(vectors[name]), model.scores(torch.cat([vectors[o] for o in outside]))
            figures.append(f"{name} AUROC {roc_auc(inside.tolist(), out.tolist()):.4f}")
        print(f"{count} word-dropout copies per support text: " + ", ".join(figures), flush=True)


if __name__ == "__main__":
    main()
