"""Presenting evaluation results: per-encoder summaries with CIs, a markdown table, a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from models.meta.evaluation import EncoderResult, mean_ci


def summary(results: Sequence[EncoderResult]) -> list[dict]:
    """Per encoder: fixed-split accuracies, episode means with CIs, paired deltas to the first (bare)."""
    rows, reference = [], results[0]
    for result in results:
        row: dict = {"name": result.name, "inner_loop": result.inner_loop.to_dict(), "fixed": result.fixed, "episodes": {}}
        for k, scores in result.episodes.items():
            mean, half = mean_ci(scores)
            delta = mean_ci([a - b for a, b in zip(scores, reference.episodes[k])])
            row["episodes"][k] = {"n": len(scores), "mean": mean, "ci95": half, "delta_vs_first": delta[0], "delta_ci95": delta[1]}
        rows.append(row)
    return rows


def markdown_table(data_name: str, rows: Sequence[dict], ways: int) -> str:
    shots = sorted({k for row in rows for k in list(row["fixed"]) + list(row["episodes"])})
    head = ["encoder"] + [f"fixed {k}-shot" for k in shots] + [f"{f'{ways}-way' if ways else 'all-class'} {k}-shot episodes (95% CI)" for k in shots] \
        + [f"Δ {k}-shot vs {rows[0]['name']} (paired 95% CI)" for k in shots]
    lines = [f"**{data_name}**", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row["name"]] + [f"{100 * row['fixed'][k]:.2f}" if k in row["fixed"] else "–" for k in shots]
        cells += [f"{100 * e['mean']:.2f} ± {100 * e['ci95']:.2f} (n={e['n']})" for k in shots for e in [row["episodes"][k]]]
        cells += [f"{100 * e['delta_vs_first']:+.2f} ± {100 * e['delta_ci95']:.2f}" for k in shots for e in [row["episodes"][k]]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_results(data_name: str, rows: Sequence[dict], path: Path) -> None:
    try:
        import matplotlib
    except ImportError:  # optional extra: pip install .[meta]
        import warnings

        warnings.warn(f"matplotlib is not installed (pip install .[meta]): no {path.name}", stacklevel=2)
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shots = sorted({k for row in rows for k in row["episodes"]})
    groups = [(f"fixed {k}", "fixed", k) for k in shots] + [(f"episodes {k}", "episodes", k) for k in shots]
    width = 0.8 / len(rows)
    fig, axis = plt.subplots(figsize=(7, 3.6), dpi=100)
    for i, row in enumerate(rows):
        values = [100 * (row[kind][k] if kind == "fixed" else row[kind][k]["mean"]) if k in row[kind] else 0 for _, kind, k in groups]
        errors = [100 * row["episodes"][k]["ci95"] if kind == "episodes" else float("nan") for _, kind, k in groups]
        axis.bar([g + i * width for g in range(len(groups))], values, width, yerr=errors, capsize=3, label=row["name"])
    axis.set_xticks([g + width * (len(rows) - 1) / 2 for g in range(len(groups))], [g[0] for g in groups])
    low = min(100 * (r["fixed"].get(k, 1) if kind == "fixed" else r["episodes"][k]["mean"]) for r in rows for _, kind, k in groups)
    axis.set_ylim(max(0, low - 10), 100)
    axis.set_ylabel("accuracy (%)")
    axis.set_title(f"{data_name}: bare encoder vs meta-trained checkpoints (95% CI on episodes)")
    axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
