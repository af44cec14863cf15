"""Per-task calibration: temperature, out-of-scope threshold, ECE (tiny tensors)."""

from __future__ import annotations

import torch

from models.calibration import calibrate, choose_threshold, expected_calibration_error, fit_temperature
from models.inner_loop import InnerLoopConfig


def test_fit_temperature_recovers_the_temperature_that_generated_the_labels() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(4000, 5, generator=generator) * 4
    targets = torch.multinomial((logits / 2.0).softmax(-1), 1, generator=generator).squeeze(1)
    assert abs(fit_temperature(logits, targets) - 2.0) < 0.2


def test_a_handful_of_all_correct_examples_keeps_the_temperature_near_one() -> None:
    logits = torch.tensor([[5.0, 0.0], [0.0, 5.0], [4.0, 0.0], [0.0, 6.0]])
    temperature = fit_temperature(logits, torch.tensor([0, 1, 0, 1]))
    assert 0.4 < temperature <= 1.0


def test_ece_is_zero_for_perfect_confident_answers_and_large_for_confident_wrong_ones() -> None:
    targets = torch.tensor([0, 1, 0, 1])
    right = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(right, targets) < 1e-6
    assert expected_calibration_error(right.flip(1), targets) > 0.99


def test_negatives_only_raise_the_threshold_and_within_the_ceiling() -> None:
    in_scope = torch.linspace(0.3, 0.9, 101)
    plain = choose_threshold(in_scope, None, 0.05)
    high_negatives = choose_threshold(in_scope, torch.full((20,), 0.34), 0.05)
    low_negatives = choose_threshold(in_scope, torch.full((20,), 0.1), 0.05)
    assert abs(plain - 0.33) < 1e-4
    assert plain < high_negatives <= float(torch.quantile(in_scope, 0.10))
    assert low_negatives == plain


def test_calibrate_gives_a_threshold_below_most_support_scores() -> None:
    generator = torch.Generator().manual_seed(1)
    centres = torch.nn.functional.normalize(torch.randn(3, 16, generator=generator), dim=-1)
    embeddings = torch.nn.functional.normalize(
        centres.repeat_interleave(8, 0) + 0.3 * torch.randn(24, 16, generator=generator), dim=-1
    )
    targets = torch.arange(3).repeat_interleave(8)
    calibration = calibrate(embeddings, targets, 3, InnerLoopConfig(steps=10))
    assert calibration.oos_threshold is not None and -1.0 <= calibration.oos_threshold <= 1.0
    assert 0.1 <= calibration.temperature <= 10.0
