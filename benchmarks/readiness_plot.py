"""The figure of ``benchmarks/customer_service.py``: what its out-of-scope, calibration and
zero-shot figures look like.

Three panels: a reliability diagram of the top-1 scores on in-scope CLINC150 texts (do
scores mean what they say?), the in-scope score of in-scope and out-of-scope texts with
the task's default threshold (where does rejection cut?), and BANKING77 accuracy as
examples are appended to a task made from label names (with and without unlabelled texts).
"""

from __future__ import annotations

from pathlib import Path

import torch


def reliability(confidence: torch.Tensor, correct: torch.Tensor, bins: int = 15,
                min_count: int = 10) -> tuple[list[float], list[float], list[int]]:
    """Mean confidence, accuracy and count per equal-width confidence bin (the bins of the
    ECE); bins with fewer than ``min_count`` texts are left out (their share is noise)."""
    index = (confidence * bins).long().clamp(0, bins - 1)
    means, accuracies, counts = [], [], []
    for b in range(bins):
        members = index == b
        if int(members.sum()) >= min_count:
            means.append(float(confidence[members].mean()))
            accuracies.append(float(correct[members].float().mean()))
            counts.append(int(members.sum()))
    return means, accuracies, counts


def plot_readiness(confidence: torch.Tensor, correct: torch.Tensor, in_scores: torch.Tensor, out_scores: torch.Tensor,
                   threshold: float, ece: float, curves: dict[str, dict[str, float]], path: Path) -> None:
    """Write the three-panel PNG to ``path`` (needs matplotlib: ``pip install .[meta]``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (calibration, rejection, shots) = plt.subplots(1, 3, figsize=(15, 4.2))
    means, accuracies, counts = reliability(confidence, correct)
    calibration.plot([0, 1], [0, 1], ":", color="grey", label="perfect calibration")
    calibration.plot(means, accuracies, "o-", label=f"in-scope test texts (ECE {ece:.4f}; bins of >= 10 texts)")
    for x, y, n in zip(means, accuracies, counts):
        calibration.annotate(str(n), (x, y), textcoords="offset points", xytext=(0, -11), fontsize=6, ha="center")
    calibration.set(xlabel="top-1 score (mean per bin)", ylabel="share correct", xlim=(0, 1.02), ylim=(0, 1.02),
                    title="CLINC150 (train_10): reliability")
    low = float(torch.quantile(torch.cat([in_scores, out_scores]), 0.005))
    high = float(torch.cat([in_scores, out_scores]).max())
    edges = torch.linspace(low, high, 60).tolist()
    rejection.hist(in_scores.clamp_min(low).tolist(), bins=edges, density=True, alpha=0.6, label=f"in scope ({len(in_scores)})")
    rejection.hist(out_scores.clamp_min(low).tolist(), bins=edges, density=True, alpha=0.6, label=f"out of scope ({len(out_scores)})")
    rejection.axvline(threshold, color="black", linestyle="--", label="default threshold (from the support set)")
    rejection.set(xlabel="in-scope score (clipped at the 0.5% quantile)", ylabel="density",
                  title="CLINC150: out-of-scope rejection")
    for name, curve in curves.items():
        shots.plot([int(k) for k in curve], list(curve.values()), "o-", label=name)
    shots.axhline(65, color="grey", linestyle=":", label="target at 0 shots (65%)")
    shots.set(xlabel="examples per label appended", ylabel="accuracy on test (%)",
              title="BANKING77: from label names to 5 shots")
    for axis in (calibration, rejection, shots):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
