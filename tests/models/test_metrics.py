"""models.metrics: the evaluation report's optional calibration and out-of-scope figures."""

from __future__ import annotations

import pytest
import torch

from models.calibration import expected_calibration_error, top1_calibration_error
from models.metrics import classification_report, roc_auc


def test_top1_calibration_error_by_hand() -> None:
    # Two bins: scores 0.9 (2 of 2 right: |0.9 - 1| = 0.1) and 0.55 (1 of 2 right: 0.05).
    confidence = torch.tensor([0.9, 0.9, 0.55, 0.55])
    correct = torch.tensor([True, True, True, False])
    assert top1_calibration_error(confidence, correct) == pytest.approx(0.5 * 0.1 + 0.5 * 0.05)


def test_expected_calibration_error_is_the_top1_error_of_the_argmax() -> None:
    probabilities = torch.tensor([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]])
    targets = torch.tensor([0, 0, 1])
    confidence, predicted = probabilities.max(-1)
    assert expected_calibration_error(probabilities, targets) == pytest.approx(
        top1_calibration_error(confidence, predicted == targets))


def test_report_adds_top1_accuracy_calibration_and_auroc() -> None:
    gold = ["a", "a", "b", None, None]
    predicted = [None, "a", "b", None, "a"]  # first text rejected, last out-of-scope text accepted
    report = classification_report(gold, predicted, top1=["a", "a", "a", "b", "a"], confidence=[0.9, 0.9, 0.55, 0.5, 0.6],
                                   in_scope_scores=[-1.0, 2.0, 3.0, -2.0, 2.5])
    assert report["accuracy"] == pytest.approx(2 / 3)
    assert report["top1_accuracy"] == pytest.approx(2 / 3)  # the third text's best label was wrong
    # In-scope texts only: scores 0.9, 0.9 (both right) and 0.55 (wrong): (2 * 0.1 + 0.55) / 3.
    assert report["calibration_error"] == pytest.approx((2 * 0.1 + 0.55) / 3)
    # In-scope scores -1, 2, 3 against out-of-scope -2, 2.5: 4 of 6 pairs ordered right.
    assert report["out_of_scope"]["auroc"] == pytest.approx(4 / 6)
    assert report["out_of_scope"]["auroc"] == pytest.approx(roc_auc([-1.0, 2.0, 3.0], [-2.0, 2.5]))


def test_report_without_the_optional_inputs_has_none_of_their_keys() -> None:
    report = classification_report(["a", None], ["a", None])
    assert "top1_accuracy" not in report and "calibration_error" not in report
    assert "auroc" not in report["out_of_scope"]


def test_report_auroc_is_none_without_both_kinds_of_texts() -> None:
    report = classification_report([None, None], [None, "a"], in_scope_scores=[0.0, 1.0])
    assert report["out_of_scope"]["auroc"] is None


def test_report_refuses_inputs_of_other_lengths() -> None:
    with pytest.raises(ValueError, match="confidence"):
        classification_report(["a"], ["a"], top1=["a"], confidence=[0.5, 0.5])


def test_confusions_include_rejected_and_wrongly_accepted_texts() -> None:
    report = classification_report(["a", "a", None, None, "b"], [None, "a", "b", "b", "a"])
    assert report["confusions"] == [{"gold": None, "predicted": "b", "count": 2},
                                    {"gold": "a", "predicted": None, "count": 1},
                                    {"gold": "b", "predicted": "a", "count": 1}]
