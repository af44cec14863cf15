"""What a meta-training run leaves behind: manifest, metrics JSON, learning-curve PNG."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Sequence

import torch

from models.checkpoint import save_checkpoint


def git_commit(cwd: str | Path | None = None) -> str:
    """``HEAD`` commit, suffixed ``-dirty`` when the working tree has changes; ``unknown`` outside git."""
    try:
        run = lambda *args: subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()  # noqa: E731
        commit = run("rev-parse", "HEAD")
        return commit + ("-dirty" if run("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def build_manifest(*, base_encoder: str, base_sha256: str, datasets: Sequence[dict], algorithm: str, hyperparameters: dict,
                   inner_loop: dict, lora: dict | None, metrics: dict, max_length: int,
                   layer_mix: dict | None = None, selected_on: Sequence[dict] = (),
                   finetuned_layers: Sequence[int] | None = None) -> dict:
    """The checkpoint's ``manifest.json`` (see :mod:`models.checkpoint`).

    ``selected_on``: data sets whose valid split chose the checkpoint without being trained on
    (their test splits remain fair held-out data, so the leakage check does not read this)."""
    manifest = {
        "format_version": 1,
        "base_encoder": base_encoder,
        "base_encoder_sha256": base_sha256,
        "max_length": max_length,
        "trained_on": list(datasets),
        "algorithm": algorithm,
        "hyperparameters": hyperparameters,
        "inner_loop": inner_loop,
        "meta_validation": {
            "best_step": metrics.get("best_step"),
            "trained_episodes": metrics.get("trained_episodes"),
            "best_episodes": metrics.get("best_episodes"),
            "best_score": metrics.get("best_val"),
            "final_score": metrics.get("final_val"),
            "stopped": metrics.get("stopped"),
            "score": "mean query accuracy of the service's adapter on all-class 5- and 10-shot episodes of the valid splits"
                     + (" plus the mean out-of-scope AUROC of those episodes (models/meta/validation.py)"
                        if hyperparameters.get("select_on") == "accuracy+oos" else ""),
        },
        "evaluation": {},
        "git_commit": git_commit(Path(__file__).resolve().parent),
        "wall_s": metrics.get("wall_s"),
    }
    if selected_on:
        manifest["selected_on"] = list(selected_on)
    if finetuned_layers:
        manifest["finetuned_layers"] = list(finetuned_layers)
    if lora:
        manifest["lora"] = lora
    if layer_mix:
        manifest["layer_mix"] = layer_mix
    return manifest


def write_run(out: Path, manifest: dict, metrics: dict, tensors: dict[str, torch.Tensor] | None) -> None:
    """Checkpoint files plus ``metrics.json`` and ``learning_curve.png``."""
    save_checkpoint(out, manifest, tensors)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    plot_learning_curve(metrics, out / "learning_curve.png")


def plot_learning_curve(metrics: dict, path: Path) -> None:
    """Training loss (left axis) and meta-validation accuracy, plus the out-of-scope AUROC per
    data set when it was selected on (right axis), against episodes."""
    try:
        import matplotlib
    except ImportError:  # optional extra: pip install .[meta]
        import warnings

        warnings.warn(f"matplotlib is not installed (pip install .[meta]): no {path.name}", stacklevel=2)
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = metrics.get("history", [])
    fig, left = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    episodes = [row["episodes"] for row in history]
    pairs = [(row["episodes"], row["train_loss"]) for row in history if row.get("train_loss") is not None]
    if pairs:
        left.plot(*zip(*pairs), color="tab:blue", marker=".", linestyle="--", label="train loss")
    left.set_xlabel("training episodes")
    left.set_ylabel("meta-train loss", color="tab:blue")
    right = left.twinx()
    names = [k for k in (history[0]["val"] if history else {}) if k not in ("mean", "oos_auroc")]  # per data set
    colours = ("tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")
    for colour, name in zip(colours, names):
        right.plot(episodes, [100 * row["val"][name] for row in history], marker="o", color=colour, label=f"val {name}")
    if metrics.get("best_step") is not None and history:
        best = next((r for r in history if r["step"] == metrics["best_step"]), None)
        if best:
            right.axvline(best["episodes"], color="grey", linestyle=":", label="best")
    with_oos = any(name.endswith("oos_auroc") for name in names)
    right.set_ylabel("meta-validation " + ("accuracy / OOS AUROC" if with_oos else "accuracy") + " (%)")
    right.legend(loc="lower right", fontsize=8)
    left.set_title(f"{metrics.get('config', {}).get('algorithm', '')}: {metrics.get('stopped', '')}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
