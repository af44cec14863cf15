"""Exploration: which embedding should the out-of-scope score use?

The classifier uses the checkpoint's layer mix; the out-of-scope score need not. This
script scores CLINC150 (support: ``train_10``) with the service's relative Mahalanobis
score (:mod:`models.out_of_scope`, leave-one-out threshold) on several candidate
features computed from the same encoder pass, and reports AUROC / recall / rejection on
the *validation* splits (``valid`` + ``oos_valid`` + ``oos_train``, 200 out-of-scope texts)
where a choice is made, and on ``test`` + ``oos_test`` for the chosen ones:

- ``mix``: the classifier's embedding (what ships);
- ``mix(a)``: the mix with layer 3 at weight ``a`` (one hand-set knob);
- ``sum L``: the sum of the relative scores over several features (Lee et al. 2018,
  "A Simple Unified Framework for Detecting Out-of-Distribution Samples", feature ensemble);
- the shipped score plus a similarity score (max cosine to the class means, or to the
  nearest support example), each divided by the spread of its leave-one-out scores.

    python benchmarks/explorations/oos_features.py --data ../shared/data/clinc150
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from models.calibration import choose_threshold  # noqa: E402
from models.checkpoint import resolve_checkpoint  # noqa: E402
from models.data import read_jsonl  # noqa: E402
from models.encoder import TransformerEncoder, mix_pooled, weights_sha256  # noqa: E402
from models.meta.layer_mix import cached_pooled_layers  # noqa: E402
from models.metrics import roc_auc  # noqa: E402
from models.out_of_scope import class_means, fit_out_of_scope  # noqa: E402


SPLITS = ("train_10", "valid", "oos_valid", "oos_train", "test", "oos_test")


def load_clinc150_pooled(data: str | Path, cache: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, list], list[str]]:
    """Per split of CLINC150 (:data:`SPLITS`): the bare encoder's pooled layers ``[n, 7, dim]``
    (cached on disk), the rows, and the sorted in-scope labels of ``train_10``."""
    encoder = TransformerEncoder(device="cpu")
    sha = weights_sha256(encoder.model_dir)
    rows = {s: read_jsonl(Path(data) / f"{s}.jsonl") for s in SPLITS}
    pooled = {s: cached_pooled_layers(encoder, [r.text for r in rows[s]], sha, cache, progress=True) for s in SPLITS}
    return pooled, rows, sorted({r.label for r in rows["train_10"]})


def scores_for(features: dict[str, torch.Tensor], y: torch.Tensor, classes: int) -> tuple[dict, torch.Tensor]:
    """Per split scores and the leave-one-out support scores of one feature."""
    model = fit_out_of_scope(features["train_10"], y, classes)
    out = {split: model.scores(v) for split, v in features.items() if split != "train_10"}
    return out, model.leave_one_out_scores(features["train_10"], y)


def figures(score: dict, loo: torch.Tensor, inside: str, outside: list[str], quantile: float) -> dict:
    threshold = choose_threshold(loo, None, quantile)
    s_in = score[inside]
    s_out = torch.cat([score[o] for o in outside])
    return {"auroc": round(roc_auc((-s_out).tolist(), (-s_in).tolist()), 4),
            "rejected": round(100 * (s_in < threshold).float().mean().item(), 2),
            "recall": round(100 * (s_out < threshold).float().mean().item(), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/clinc150")
    parser.add_argument("--cache", default="runs/cache")
    parser.add_argument("--quantile", type=float, default=0.05)
    args = parser.parse_args()
    torch.manual_seed(0)
    pooled, rows, labels = load_clinc150_pooled(args.data, args.cache)
    y = torch.tensor([labels.index(r.label) for r in rows["train_10"]])
    shipped = torch.tensor(resolve_checkpoint("default").layer_mix)

    candidates: dict[str, torch.Tensor] = {"mix (shipped)": shipped, "last layer": torch.eye(7)[6]}
    for a in (0.5, 0.7, 1.0):
        w = shipped.clone()
        w[3] = a
        candidates[f"mix, layer 3 at {a}"] = w
    for layer in (1, 2, 3, 4, 5):
        w = torch.eye(7)[6].clone()
        w[layer] = 0.7
        candidates[f"last + 0.7 layer {layer}"] = w
    per_feature: dict[str, tuple[dict, torch.Tensor]] = {}
    for name, weights in candidates.items():
        feats = {s: mix_pooled(p, weights) for s, p in pooled.items()}
        per_feature[name] = scores_for(feats, y, len(labels))
    for layer in range(7):
        feats = {s: p[:, layer] for s, p in pooled.items()}
        per_feature[f"layer {layer} alone"] = scores_for(feats, y, len(labels))

    def ensemble(names: list[str]) -> tuple[dict, torch.Tensor]:
        parts = [per_feature[n] for n in names]
        # each score standardised by the spread of its own leave-one-out scores
        scale = [float(loo.std()) for _, loo in parts]
        score = {s: sum(p[0][s] / sc for p, sc in zip(parts, scale)) for s in parts[0][0]}
        return score, sum(p[1] / sc for p, sc in zip(parts, scale))

    # similarity scores on the shipped mix, with their leave-one-out versions
    feats = {s: mix_pooled(p, shipped) for s, p in pooled.items()}
    x = feats["train_10"]
    means = class_means(x, y, len(labels))
    counts = torch.bincount(y, minlength=len(labels)).float()[y, None]
    own = F.normalize((means[y] * counts - x) / (counts - 1), dim=-1)
    cosine = x @ F.normalize(means, dim=-1).T
    cosine[torch.arange(len(y)), y] = (x * own).sum(-1)
    per_feature["max cosine to class means"] = (
        {s: (v @ F.normalize(means, dim=-1).T).max(-1).values for s, v in feats.items() if s != "train_10"},
        cosine.max(-1).values)
    neighbours = x @ x.T
    neighbours.fill_diagonal_(-2.0)
    per_feature["nearest support example"] = (
        {s: (v @ x.T).max(-1).values for s, v in feats.items() if s != "train_10"}, neighbours.max(-1).values)

    per_feature["sum: mix + layer 3"] = ensemble(["mix (shipped)", "layer 3 alone"])
    per_feature["sum: mix + layers 2-4"] = ensemble(["mix (shipped)", "layer 2 alone", "layer 3 alone", "layer 4 alone"])
    for other in ("max cosine to class means", "nearest support example"):
        for weight in (0.25, 1.0):
            base, extra = per_feature["mix (shipped)"], per_feature[other]
            s_base, s_extra = float(base[1].std()), float(extra[1].std())
            per_feature[f"sum: mix + {weight} x {other}"] = (
                {k: base[0][k] / s_base + weight * extra[0][k] / s_extra for k in base[0]},
                base[1] / s_base + weight * extra[1] / s_extra)
    per_feature["sum: all layers"] = ensemble([f"layer {i} alone" for i in range(7)])
    per_feature["sum: layers 1-6"] = ensemble([f"layer {i} alone" for i in range(1, 7)])

    results = {}
    for name, (score, loo) in per_feature.items():
        results[name] = {"valid": figures(score, loo, "valid", ["oos_valid", "oos_train"], args.quantile),
                         "test": figures(score, loo, "test", ["oos_test"], args.quantile)}
        print(f"{name:28s} valid {results[name]['valid']}  test {results[name]['test']}", flush=True)
    Path("runs/oos").mkdir(parents=True, exist_ok=True)
    Path("runs/oos/features.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
