"""Out-of-scope scores side by side, in-process, on the same embeddings.

Compares the score the service used before adapter format 3 (max cosine to the adapted
head's weights, threshold from a two-fold cross-fit) with the relative Mahalanobis score
of :mod:`models.out_of_scope` (threshold from leave-one-out scores), both with the
service's own adaptation and the same reject quantile:

A. CLINC150 with all 150 labels from ``train_10``; ``test`` in scope, ``oos_test`` out:
   AUROC, and at the default threshold the share of in-scope texts rejected (the target
   is the quantile), out-of-scope recall and the in-scope accuracy drop.
B. Smaller tasks: random subsets of 2 to 50 CLINC150 labels (10 draws each), the same
   figures averaged, to show the score and its threshold also hold for small tasks.

The result replaces ``docs/results/oos_scores_<shots>shot.json`` (with the checkpoint's name
appended when it is not ``default``) and re-renders docs/benchmarks.md.

    python benchmarks/oos_scores.py --data ../shared/data/clinc150 --checkpoint default
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.results import write_result  # noqa: E402
from models.calibration import choose_threshold, stratified_folds  # noqa: E402
from models.checkpoint import build_encoder, resolve_checkpoint  # noqa: E402
from models.data import read_jsonl  # noqa: E402
from models.head import head_logits  # noqa: E402
from models.inner_loop import InnerLoopConfig, adapt  # noqa: E402
from models.metrics import roc_auc  # noqa: E402
from models.out_of_scope import fit_out_of_scope  # noqa: E402


def max_cosine_scorer(support: torch.Tensor, targets: torch.Tensor, classes: int, config: InnerLoopConfig,
                      quantile: float):
    """The pre-format-3 rule: max cosine to the head; threshold the interpolated quantile of
    two-fold held-out scores (as the service computed it before adapter format 3)."""
    head = adapt(support, targets, classes, config)
    score = lambda x: (F.normalize(x, dim=-1) @ F.normalize(head["weight"], dim=-1).T).max(-1).values  # noqa: E731
    fold = stratified_folds(targets, classes)
    held_out = torch.empty(len(targets))
    for part in (0, 1):
        fold_head = adapt(support[fold != part], targets[fold != part], classes, config)
        held_out[fold == part] = (support[fold == part] @ F.normalize(fold_head["weight"], dim=-1).T).max(-1).values
    return head, score, float(torch.quantile(held_out[fold >= 0], quantile))  # the interpolated quantile it used


def relative_mahalanobis_scorer(support: torch.Tensor, targets: torch.Tensor, classes: int,
                                config: InnerLoopConfig, quantile: float):
    head = adapt(support, targets, classes, config)
    model = fit_out_of_scope(support, targets, classes)
    return head, model.scores, choose_threshold(model.leave_one_out_scores(support, targets), None, quantile)


SCORERS = {"max cosine (before)": max_cosine_scorer, "relative Mahalanobis (now)": relative_mahalanobis_scorer}
SHIPPED = "relative Mahalanobis (now)"


def evaluate(scorer, support, targets, classes, inside, inside_targets, outside, config, quantile) -> dict:
    head, score, threshold = scorer(support, targets, classes, config, quantile)
    s_in, s_out = score(inside), score(outside)
    correct = head_logits(head, inside, config.scale).argmax(-1) == inside_targets
    rejected = s_in < threshold
    return {
        "auroc": roc_auc((-s_out).tolist(), (-s_in).tolist()),
        "in_scope_rejected": 100 * rejected.float().mean().item(),
        "oos_recall": 100 * (s_out < threshold).float().mean().item(),
        "accuracy_drop": 100 * (correct & rejected).float().mean().item(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/clinc150")
    parser.add_argument("--checkpoint", default="default")
    parser.add_argument("--quantile", type=float, default=0.05)
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument("--shots", type=int, default=10, help="support examples per label (the first of train_10)")
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    checkpoint = resolve_checkpoint(args.checkpoint)
    encoder = build_encoder(None, checkpoint, "auto")
    config = checkpoint.inner_loop if checkpoint else InnerLoopConfig()
    data = Path(args.data)
    rows = {split: read_jsonl(data / f"{split}.jsonl") for split in ("train_10", "test", "oos_test")}
    seen: dict[str, int] = {}
    rows["train_10"] = [r for r in rows["train_10"] if (seen := seen | {r.label: seen.get(r.label, 0) + 1})[r.label] <= args.shots]
    vectors = {split: encoder.encode([r.text for r in split_rows]) for split, split_rows in rows.items()}
    labels = sorted({r.label for r in rows["train_10"]})
    index = {label: i for i, label in enumerate(labels)}
    y_support = torch.tensor([index[r.label] for r in rows["train_10"]])
    y_test = torch.tensor([index[r.label] for r in rows["test"]])

    result: dict = {"checkpoint": args.checkpoint, "quantile": args.quantile, "shots": args.shots, "all_labels": {},
                    "subsets": {}}
    for name, scorer in SCORERS.items():
        result["all_labels"][name] = evaluate(scorer, vectors["train_10"], y_support, len(labels), vectors["test"],
                                              y_test, vectors["oos_test"], config, args.quantile)
        print(name, json.dumps(result["all_labels"][name]), flush=True)
    rng = random.Random(0)
    for size in (2, 5, 10, 20, 50):
        draws = [rng.sample(range(len(labels)), size) for _ in range(args.draws)]
        for name, scorer in SCORERS.items():
            runs = []
            for chosen in draws:
                remap = {c: i for i, c in enumerate(chosen)}
                keep_s = torch.tensor([int(v) in remap for v in y_support])
                keep_t = torch.tensor([int(v) in remap for v in y_test])
                runs.append(evaluate(
                    scorer, vectors["train_10"][keep_s], torch.tensor([remap[int(v)] for v in y_support[keep_s]]),
                    size, vectors["test"][keep_t], torch.tensor([remap[int(v)] for v in y_test[keep_t]]),
                    vectors["oos_test"], config, args.quantile))
            result["subsets"].setdefault(str(size), {})[name] = {k: sum(r[k] for r in runs) / len(runs) for k in runs[0]}
        print(size, json.dumps(result["subsets"][str(size)]), flush=True)
    if not args.no_doc:
        suffix = "" if args.checkpoint == "default" else re.sub(r"[^a-z0-9]+", "-", args.checkpoint.lower()).strip("-")
        write_result(f"oos_scores_{args.shots}shot" + (f"_{suffix}" if suffix else ""),
                     f"Out-of-scope scores side by side: {args.shots} shots" + (f", {args.checkpoint}" if suffix else ""),
                     markdown(result), result, summary=summary_rows(result), order=30 if args.shots >= 10 else 31)


def summary_rows(result: dict) -> list[dict[str, str]]:
    """A summary row for small tasks (10 labels) when the support has fewer than 10 shots."""
    small = result["subsets"].get("10", {}).get(SHIPPED)
    if result["shots"] >= 10 or small is None:
        return []
    return [{"topic": "out of scope", "figure": f"small tasks: 10 labels, {result['shots']} examples each "
             f"(mean of draws), default threshold", "value": f"{small['in_scope_rejected']:.2f}% of in-scope texts rejected, "
             f"{small['oos_recall']:.1f}% out-of-scope recall, AUROC {small['auroc']:.4f}", "note": "CLINC150"}]


def markdown(result: dict) -> str:
    lines = [f"Checkpoint `{result['checkpoint']}`, reject quantile {result['quantile']}; CLINC150 support: the first "
             f"{result['shots']} examples per label of `train_10`, "
             "`test` in scope, `oos_test` out of scope; same embeddings and adaptation for both scores.\n",
             "| labels | score | AUROC | in-scope rejected % | OOS recall % | accuracy drop (points) |",
             "|---|---|---|---|---|---|"]
    rows = [("150", result["all_labels"])] + [(f"{k} (mean of draws)", v) for k, v in result["subsets"].items()]
    for size, scores in rows:
        for name, r in scores.items():
            lines.append(f"| {size} | {name} | {r['auroc']:.4f} | {r['in_scope_rejected']:.2f} | {r['oos_recall']:.1f} "
                         f"| {r['accuracy_drop']:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
