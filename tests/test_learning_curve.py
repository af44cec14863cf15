"""The learning-curve and reliability-diagram benchmarks: their support draws, their bins,
and their summary rows read from the stored results."""

from __future__ import annotations

import torch

from benchmarks import calibration_plot, learning_curve
from benchmarks.report import read_results
from models.calibration import top1_calibration_error
from models.data import LabelledText


def _rows() -> list[LabelledText]:
    return [LabelledText(f"{label} text {i}", label) for label in ("a", "b", "c") for i in range(8 if label != "c" else 3)]


def test_support_draws_take_k_per_label_nested_in_shots_and_differ_by_seed() -> None:
    rows = _rows()
    five, two = learning_curve.support_draw(rows, 5, seed=0), learning_curve.support_draw(rows, 2, seed=0)
    labels = [rows[i].label for i in five]
    assert (labels.count("a"), labels.count("b"), labels.count("c")) == (5, 5, 3)  # c has only 3
    assert set(two) <= set(five) and len(two) == 6
    assert learning_curve.support_draw(rows, 5, seed=0) == five
    assert learning_curve.support_draw(rows, 5, seed=1) != five


def test_reliability_bins_give_the_services_ece() -> None:
    generator = torch.Generator().manual_seed(0)
    confidence = torch.rand(500, generator=generator)
    correct = torch.rand(500, generator=generator) < confidence * 0.9
    bins = calibration_plot.reliability_bins(confidence, correct)
    assert sum(b["texts"] for b in bins) == 500 and len(bins) == calibration_plot.BINS
    ece = sum(b["texts"] / 500 * abs(b["confidence"] - b["accuracy"]) for b in bins if b["texts"])
    assert abs(ece - top1_calibration_error(confidence, correct, bins=calibration_plot.BINS)) < 1e-3


def test_summary_rows_read_the_stored_results() -> None:
    data = {r["name"]: r["data"] for r in read_results()}
    curve_rows = learning_curve.summary_rows(data["learning_curve"])
    assert len(curve_rows) == sum(len(encoders) for encoders in data["learning_curve"]["results"].values())
    assert all(row["topic"] == "accuracy" and row["value"].endswith("%") for row in curve_rows)
    calibration_rows = calibration_plot.summary_rows(data["calibration"])
    assert [row["value"] for row in calibration_rows] == [f"{c['ece']:.4f}" for c in data["calibration"]["curves"].values()]
