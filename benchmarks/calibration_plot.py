"""Reliability diagram of the service's calibrated probabilities: CLINC150 ``train_10`` ->
in-scope ``test`` texts, top-1 confidence against the share correct in 10 equal-width bins.

The adapter is the one a task gets (``fit_adapter(..., calibrated=True)``: the temperature
from the support set's cross-fit) and the probabilities are ``adapter.probabilities``. The
same support set is also adapted without calibration (temperature 1) to show what the
temperature changes, and with the leave-one-out checkpoint that never saw CLINC150.
Embeddings come from the cache that ``benchmarks/learning_curve.py`` fills.

    nice -n 5 python benchmarks/calibration_plot.py --data runs/data/clinc150 --cache-dir runs/cache
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.learning_curve import CHECKPOINTS, embed_splits  # noqa: E402
from benchmarks.results import write_result  # noqa: E402
from models.calibration import top1_calibration_error  # noqa: E402
from models.checkpoint import resolve_checkpoint  # noqa: E402
from models.classifier import fit_adapter  # noqa: E402
from models.data import read_jsonl  # noqa: E402

BINS = 10


def reliability_bins(confidence: torch.Tensor, correct: torch.Tensor, bins: int = BINS) -> list[dict]:
    """Per equal-width bin (low, high]: texts, mean confidence and share correct (None when empty),
    the same bins as :func:`models.calibration.top1_calibration_error`."""
    edges = torch.linspace(0, 1, bins + 1)
    rows = []
    for low, high in zip(edges[:-1].tolist(), edges[1:].tolist()):
        members = (confidence > low) & (confidence <= high)
        count = int(members.sum())
        rows.append({"low": round(low, 2), "high": round(high, 2), "texts": count,
                     "confidence": round(float(confidence[members].mean()), 4) if count else None,
                     "accuracy": round(float(correct[members].float().mean()), 4) if count else None})
    return rows


def plot(curves: dict[str, dict], path: Path) -> None:
    """Reliability (left) and texts per bin (right) for each adapter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (diagram, counts) = plt.subplots(1, 2, figsize=(11, 4.3), gridspec_kw={"width_ratios": [3, 2]})
    diagram.plot([0, 1], [0, 1], ":", color="grey", label="perfect calibration")
    centres = [(b["low"] + b["high"]) / 2 for b in next(iter(curves.values()))["bins"]]
    width = 0.8 / (BINS * len(curves))
    for i, (name, curve) in enumerate(curves.items()):
        label = name.replace("`", "")
        full = [b for b in curve["bins"] if b["texts"]]
        diagram.plot([b["confidence"] for b in full], [b["accuracy"] for b in full], "o-",
                     label=f"{label} (ECE {curve['ece']:.4f})")
        counts.bar([c + (i - (len(curves) - 1) / 2) * width for c in centres], [b["texts"] for b in curve["bins"]],
                   width=width, label=label)
    diagram.set(xlabel="top-1 probability (mean per bin)", ylabel="share correct", xlim=(0, 1.02), ylim=(0, 1.02),
                title=f"CLINC150 train_10 -> in-scope test: reliability ({BINS} bins)")
    counts.set(xlabel="top-1 probability bin", ylabel="texts (log scale)", yscale="log", title="texts per bin")
    for axis in (diagram, counts):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summary_rows(data: dict) -> list[dict[str, str]]:
    """The report's calibration rows: the 10-bin ECE of each adapter."""
    return [{"topic": "calibration", "figure": f"ECE (top-1, {BINS} bins), CLINC150 `train_10` -> in-scope `test`, {label}",
             "value": f"{curve['ece']:.4f}", "note": f"top-1 accuracy {curve['accuracy']:.2f}%, temperature "
                                                       f"{curve['temperature']:.3f}; see the reliability diagram"}
            for label, curve in data["curves"].items()]


def body(data: dict, plot_name: str) -> str:
    """The section: conditions, per-bin table of the shipped calibrated adapter, ECE of each adapter."""
    first = next(iter(data["curves"]))
    lines = [f"A task from CLINC150 `train_{data['shots']}` ({data['support_examples']} examples), scored on the "
             f"{data['test_texts']} in-scope `test` texts; top-1 probability of `adapter.probabilities`, "
             f"{BINS} equal-width bins.", "",
             "| adapter | temperature | top-1 accuracy % | ECE (10 bins) | ECE (15 bins) |", "|---|---|---|---|---|"]
    lines += [f"| {label} | {c['temperature']:.3f} | {c['accuracy']:.2f} | {c['ece']:.4f} | {c['ece_15_bins']:.4f} |"
              for label, c in data["curves"].items()]
    lines += ["", f"Bins of {first}:", "", "| probability bin | texts | mean probability | share correct |",
              "|---|---|---|---|"]
    lines += [f"| ({b['low']:.1f}, {b['high']:.1f}] | {b['texts']} | {b['confidence'] if b['texts'] else ''} | "
              f"{b['accuracy'] if b['texts'] else ''} |" for b in data["curves"][first]["bins"]]
    lines += ["", "`default` was meta-trained on CLINC150's `train` split without its fixed `train_5` / `train_10` "
              "rows (the support set here), and on BANKING77, SNIPS and ATIS; `clinc150-ft` (the same recipe with "
              "CLINC150 left out) never saw CLINC150.", "", f"![reliability diagram]({plot_name})"]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="runs/data/clinc150", help="folder with train.jsonl, train_<shots>.jsonl, test.jsonl")
    parser.add_argument("--shots", type=int, default=10)
    parser.add_argument("--cache-dir", default="runs/cache", help="embedding cache ('' for none)")
    parser.add_argument("--plot", default="docs/reliability_diagram.png")
    parser.add_argument("--no-doc", action="store_true", help="do not write docs/results/")
    args = parser.parse_args()
    torch.manual_seed(0)
    folder = Path(args.data)
    train, test = read_jsonl(folder / "train.jsonl"), read_jsonl(folder / "test.jsonl")
    support = read_jsonl(folder / f"train_{args.shots}.jsonl")
    position = {(r.text, r.label): i for i, r in enumerate(train)}
    index = [position[(r.text, r.label)] for r in support]  # the fixed split is a subset of train
    checkpoints = {"`default`": resolve_checkpoint("default"),
                   "`clinc150-ft` (held out)": resolve_checkpoint(str(CHECKPOINTS / "clinc150-ft"))}
    embedded = embed_splits([[r.text for r in train], [r.text for r in test]], list(checkpoints.values()),
                            args.cache_dir or None)
    data: dict = {"data": folder.name, "shots": args.shots, "support_examples": len(support),
                  "test_texts": len(test), "bins": BINS, "curves": {}}
    labels = [r.label for r in support]
    for (name, checkpoint), (train_emb, test_emb) in zip(checkpoints.items(), embedded):
        for calibrated in (True, False):
            adapter = fit_adapter(train_emb[index], labels, checkpoint.inner_loop, "evaluation", calibrated=calibrated)
            probabilities = adapter.probabilities(test_emb).cpu()
            confidence, top = probabilities.max(-1)
            correct = torch.tensor([adapter.labels[i] == r.label for i, r in zip(top.tolist(), test)])
            label = f"{name}, calibrated" if calibrated else f"{name}, temperature 1 (not calibrated)"
            data["curves"][label] = {
                "temperature": float(adapter.temperature), "accuracy": round(100 * float(correct.float().mean()), 2),
                "ece": round(top1_calibration_error(confidence, correct, bins=BINS), 4),
                "ece_15_bins": round(top1_calibration_error(confidence, correct, bins=15), 4),
                "bins": reliability_bins(confidence, correct)}
            print(label, {k: v for k, v in data["curves"][label].items() if k != "bins"}, flush=True)
    plot(data["curves"], Path(args.plot))
    if not args.no_doc:
        write_result("calibration", "Calibration: reliability diagram on CLINC150", body(data, Path(args.plot).name),
                     data, summary=summary_rows(data), order=21,
                     plots=[{"file": Path(args.plot).name, "caption": "reliability diagram"}])
    return 0


if __name__ == "__main__":
    sys.exit(main())
