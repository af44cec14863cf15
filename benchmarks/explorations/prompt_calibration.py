"""Exploration: should label names be held out when a task
fits its temperature?

A BANKING77 task from the label names plus 0, 1, 2 or 5 ``train_5`` examples per label
(made in one call, as a task created with both would be). The temperature comes from a
two-fold cross-fit; before this change a name could be held out and scored by a head
fitted on its label's one example, which says little about customers' texts. Side by
side, same adapters: names held out like examples, against names always trained on
(``prompts``, what the service does now). Accuracy, temperature, top-1 ECE on ``test``
and the share of ``test`` rejected as out of scope (the threshold is the same for both).

    python benchmarks/explorations/prompt_calibration.py --data ../shared/data/banking77 --checkpoint default
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from models.calibration import top1_calibration_error  # noqa: E402
from models.checkpoint import build_encoder, resolve_checkpoint  # noqa: E402
from models.classifier import fit_adapter  # noqa: E402
from models.data import read_jsonl  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/banking77")
    parser.add_argument("--checkpoint", default="default")
    args = parser.parse_args()
    checkpoint = resolve_checkpoint(args.checkpoint)
    encoder = build_encoder(None, checkpoint, "cpu")
    support, test = read_jsonl(Path(args.data) / "train_5.jsonl"), read_jsonl(Path(args.data) / "test.jsonl")
    labels = sorted({r.label for r in support})
    names = encoder.encode([label.replace("_", " ") for label in labels])
    support_vectors, test_vectors = encoder.encode([r.text for r in support]), encoder.encode([r.text for r in test])
    by_label: dict[str, list[int]] = {}
    for i, row in enumerate(support):
        by_label.setdefault(row.label, []).append(i)
    print("| shots | names held out: accuracy / T / ECE / rejected % | names never held out: accuracy / T / ECE / rejected % |")
    print("|---|---|---|")
    for shots in (0, 1, 2, 5):
        ids = [i for label in labels for i in by_label[label][:shots]]
        vectors = torch.cat([support_vectors[ids], names])
        row_labels = [support[i].label for i in ids] + labels
        prompts = torch.arange(len(row_labels)) >= len(ids)
        cells = []
        for mask in (None, prompts):
            adapter = fit_adapter(vectors, row_labels, checkpoint.inner_loop, "x", calibrated=True, prompts=mask)
            confidence, predicted = adapter.probabilities(test_vectors).max(-1)
            correct = torch.tensor([adapter.labels[j] == r.label for j, r in zip(predicted.tolist(), test)])
            rejected = 0.0
            if adapter.oos_threshold is not None:
                rejected = 100 * float((adapter.oos_model.scores(test_vectors) < adapter.oos_threshold).float().mean())
            cells.append(f"{100 * correct.float().mean():.2f} / {adapter.temperature:.3f} / "
                         f"{top1_calibration_error(confidence, correct):.4f} / {rejected:.1f}")
        print(f"| {shots} | {cells[0]} | {cells[1]} |", flush=True)


if __name__ == "__main__":
    main()
