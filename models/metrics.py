"""Classification metrics for a labelled evaluation set, out-of-scope included.

Gold and predicted labels are strings, or None for out of scope. With the predictions'
top-1 labels and scores and their in-scope scores, the report also says how well the
scores are calibrated and how well the in-scope score separates out-of-scope texts,
whatever the threshold."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def classification_report(gold: Sequence[str | None], predicted: Sequence[str | None], top_confusions: int = 10, *,
                          top1: Sequence[str] | None = None, confidence: Sequence[float] | None = None,
                          in_scope_scores: Sequence[float] | None = None) -> dict:
    """Accuracy and macro-F1 over in-scope gold texts, per-label precision/recall/F1,
    the most confused (gold, predicted) pairs, and out-of-scope precision/recall.

    Optional, per text: ``top1`` (the best label even where the text was rejected) and
    its ``confidence`` add ``top1_accuracy`` (accuracy without rejection; minus
    ``accuracy``, what rejection costs) and ``calibration_error`` (top-1 ECE), both over
    in-scope gold texts; ``in_scope_scores`` add the out-of-scope AUROC."""
    if len(gold) != len(predicted):
        raise ValueError("gold and predicted differ in length")
    for name, values in (("top1", top1), ("confidence", confidence), ("in_scope_scores", in_scope_scores)):
        if values is not None and len(values) != len(gold):
            raise ValueError(f"{name} and gold differ in length")
    in_scope = [(g, p) for g, p in zip(gold, predicted) if g is not None]
    # One pass of counting (not one scan per label: thousands of labels x texts add up).
    gold_counts = Counter(g for g in gold if g is not None)
    predicted_counts = Counter(p for p in predicted if p is not None)
    true_positives = Counter(g for g, p in in_scope if g == p)
    labels = sorted(set(gold_counts) | set(predicted_counts))
    per_label = {}
    for label in labels:
        true_positive, predicted_count, gold_count = true_positives[label], predicted_counts[label], gold_counts[label]
        precision, recall = _ratio(true_positive, predicted_count), _ratio(true_positive, gold_count)
        f1 = (2 * precision * recall / (precision + recall)) if precision and recall else 0.0
        per_label[label] = {"precision": precision, "recall": recall, "f1": f1, "support": gold_count}
    gold_labels = sorted({g for g, _ in in_scope})
    # Out-of-scope texts taken for a label are confusions too (gold None), as are
    # in-scope texts rejected (predicted None).
    confusions = Counter((g, p) for g, p in zip(gold, predicted) if g != p)
    report: dict = {
        "num_texts": len(gold),
        "num_in_scope": len(in_scope),
        "accuracy": _ratio(sum(1 for g, p in in_scope if g == p), len(in_scope)),
        "macro_f1": (sum(per_label[label]["f1"] for label in gold_labels) / len(gold_labels)) if gold_labels else None,
        "per_label": per_label,
        "confusions": [
            {"gold": g, "predicted": p, "count": n} for (g, p), n in confusions.most_common(top_confusions)
        ],
    }
    inside = [i for i, g in enumerate(gold) if g is not None]
    if top1 is not None:
        correct = [top1[i] == gold[i] for i in inside]
        report["top1_accuracy"] = _ratio(sum(correct), len(inside))
        if confidence is not None:
            report["calibration_error"] = _top1_calibration_error([confidence[i] for i in inside], correct) if inside else None
    oos_gold = sum(1 for g in gold if g is None)
    oos_predicted = sum(1 for p in predicted if p is None)
    if oos_gold or oos_predicted:
        hits = sum(1 for g, p in zip(gold, predicted) if g is None and p is None)
        report["out_of_scope"] = {
            "precision": _ratio(hits, oos_predicted),
            "recall": _ratio(hits, oos_gold),
            "support": oos_gold,
            "in_scope_rejected": _ratio(sum(1 for g, p in in_scope if p is None), len(in_scope)),
        }
        if in_scope_scores is not None:
            outside = [in_scope_scores[i] for i, g in enumerate(gold) if g is None]
            report["out_of_scope"]["auroc"] = (
                roc_auc([in_scope_scores[i] for i in inside], outside) if inside and outside else None
            )
    return report


def _top1_calibration_error(confidence: Sequence[float], correct: Sequence[bool]) -> float:
    import torch

    from models.calibration import top1_calibration_error

    return top1_calibration_error(torch.tensor(confidence), torch.tensor(correct))


def roc_auc(positive_scores: Sequence[float], negative_scores: Sequence[float]) -> float:
    """Probability that a positive scores above a negative (ties count half)."""
    import torch

    scores = torch.tensor(list(positive_scores) + list(negative_scores), dtype=torch.float64)
    ranks = torch.empty_like(scores)
    order = scores.argsort()
    ranks[order] = torch.arange(1, len(scores) + 1, dtype=torch.float64)
    for value in scores.unique():  # average ranks of ties
        tied = scores == value
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    n_pos, n_neg = len(positive_scores), len(negative_scores)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
