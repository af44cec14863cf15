"""Per-task calibration: temperature, out-of-scope threshold, ECE (tiny tensors)."""

from __future__ import annotations

import torch

from models.calibration import (
    calibrate,
    choose_threshold,
    expected_calibration_error,
    fit_temperature,
    rejection_quantile,
    stratified_folds,
)
from models.inner_loop import InnerLoopConfig
from models.out_of_scope import fit_out_of_scope


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
    assert abs(plain - 0.3246) < 1e-4  # position 0.05 * 102 = 5.1: a tenth of the way from the 5th to the 6th score
    assert plain < high_negatives <= float(torch.quantile(in_scope, 0.10))
    assert low_negatives == plain


def test_rejection_quantile_rejects_the_level_on_average_even_with_few_scores() -> None:
    generator = torch.Generator().manual_seed(4)
    for n in (20, 30, 60):
        trials = torch.randn(4000, n + 1, generator=generator)  # n calibration scores + 1 new, exchangeable
        thresholds = torch.tensor([rejection_quantile(row[:n], 0.05) for row in trials])
        rate = float((trials[:, n] < thresholds).float().mean())
        # the conformal rank floor(0.05 (n + 1)) would give 4.8%, 3.2% and 4.9%
        assert 0.04 < rate < 0.06, (n, rate)
    assert rejection_quantile(torch.tensor([3.0, 1.0, 2.0]), 0.05) == 1.0  # too few: the smallest
    assert rejection_quantile(torch.tensor([7.0]), 0.05) == 7.0
    # a level above n / (n + 1) is the largest score, never beyond it (type 6, as numpy's "weibull")
    assert rejection_quantile(torch.tensor([0.0, 1.0, 2.0]), 0.9) == 2.0
    assert rejection_quantile(torch.tensor([0.0, 1.0, 2.0]), 0.5) == 1.0
    assert rejection_quantile(torch.arange(39.0), 0.05) == 1.0  # position 2.0: the 2nd smallest
    assert abs(rejection_quantile(torch.arange(49.0), 0.05) - 1.5) < 1e-6  # position 2.5: halfway 2nd-3rd


def _clusters(per_class: int, noise: float, seed: int):
    """Three unit-norm clusters in 16 dimensions: (centres, embeddings, targets, generator)."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.nn.functional.normalize(torch.randn(3, 16, generator=generator), dim=-1)
    embeddings = torch.nn.functional.normalize(
        centres.repeat_interleave(per_class, 0) + noise * torch.randn(3 * per_class, 16, generator=generator), dim=-1
    )
    return centres, embeddings, torch.arange(3).repeat_interleave(per_class), generator


def test_calibrate_rejects_few_held_out_support_texts_and_most_unrelated_ones() -> None:
    _, embeddings, targets, generator = _clusters(per_class=40, noise=0.1, seed=1)
    oos_model = fit_out_of_scope(embeddings, targets, 3)
    calibration = calibrate(embeddings, targets, 3, InnerLoopConfig(steps=10), oos_model)
    assert calibration.oos_threshold is not None
    held_out = oos_model.leave_one_out_scores(embeddings, targets)
    assert 0.02 <= float((held_out < calibration.oos_threshold).float().mean()) <= 0.08
    unrelated = torch.nn.functional.normalize(torch.randn(200, 16, generator=generator), dim=-1)
    assert float((oos_model.scores(unrelated) < calibration.oos_threshold).float().mean()) > 0.9
    assert 0.1 <= calibration.temperature <= 10.0


def test_negatives_between_the_default_and_the_ceiling_raise_the_threshold() -> None:
    centres, embeddings, targets, generator = _clusters(per_class=20, noise=0.3, seed=2)
    oos_model = fit_out_of_scope(embeddings, targets, 3)
    plain = calibrate(embeddings, targets, 3, InnerLoopConfig(steps=10), oos_model)
    ceiling = float(torch.quantile(oos_model.leave_one_out_scores(embeddings, targets), 0.10))
    near = torch.nn.functional.normalize(embeddings.repeat(5, 1) + 0.25 * torch.randn(300, 16, generator=generator), dim=-1)
    scores = oos_model.scores(near)
    borderline = near[(scores > plain.oos_threshold) & (scores < ceiling)]  # texts the default would accept
    assert len(borderline) >= 5
    with_negatives = calibrate(embeddings, targets, 3, InnerLoopConfig(steps=10), oos_model, negatives=borderline)
    assert plain.oos_threshold < with_negatives.oos_threshold <= ceiling


def test_choose_threshold_moves_only_between_the_quantile_and_its_ceiling() -> None:
    in_scope = torch.linspace(0, 1, 41)
    quantile, ceiling = choose_threshold(in_scope, None, 0.05), float(torch.quantile(in_scope, 0.10))
    assert choose_threshold(in_scope, torch.tensor([-1.0, -0.5]), 0.05) == quantile  # already rejected
    raised = choose_threshold(in_scope, torch.tensor([0.05, 0.06, 0.07]), 0.05)
    assert 0.07 < raised <= ceiling  # now rejects all three
    assert choose_threshold(in_scope, torch.tensor([0.5, 0.9]), 0.05) <= ceiling  # never past 2 x the quantile


def test_prompt_rows_are_never_held_out() -> None:
    targets = torch.tensor([0, 0, 0, 1, 1, 1, 0, 1])
    prompts = torch.tensor([False] * 6 + [True] * 2)
    fold = stratified_folds(targets, 2, holdable=~prompts)
    assert (fold[prompts] == -1).all()
    for label in (0, 1):  # the three real examples of each label are split 2 + 1
        members = fold[:6][targets[:6] == label]
        assert (members >= 0).all() and sorted(members.tolist()) in ([0, 0, 1], [0, 1, 1])
    # One example per label plus its prompt: nothing can be held out.
    assert (stratified_folds(torch.tensor([0, 1, 0, 1]), 2, holdable=torch.tensor([True, True, False, False])) == -1).all()


def test_prompts_leave_the_temperature_to_the_examples_and_the_threshold_to_every_row() -> None:
    """Label prompts far from their examples (as names are from customers' texts) would
    make a held-out fit look wrong and inflate the temperature; marked as prompts they
    are trained on only. The out-of-scope threshold still comes from all rows."""
    generator = torch.Generator().manual_seed(0)
    centres = torch.eye(8)[:2] * 3
    examples = torch.cat([centres[0] + 0.3 * torch.randn(6, 8, generator=generator),
                          centres[1] + 0.3 * torch.randn(6, 8, generator=generator)])
    names = -centres + 0.1 * torch.randn(2, 8, generator=generator)  # nowhere near their examples
    embeddings = torch.nn.functional.normalize(torch.cat([examples, names]), dim=-1)
    targets = torch.tensor([0] * 6 + [1] * 6 + [0, 1])
    prompts = torch.tensor([False] * 12 + [True] * 2)
    config = InnerLoopConfig(steps=5, learning_rate=0.5, proximal=0.1, scale=10.0)
    oos_model = fit_out_of_scope(embeddings, targets, 2)
    with_prompts = calibrate(embeddings, targets, 2, config, oos_model, prompts=prompts)
    held_out_too = calibrate(embeddings, targets, 2, config, oos_model)
    assert with_prompts.oos_threshold == held_out_too.oos_threshold
    assert with_prompts.temperature < held_out_too.temperature  # the held-out names looked uncertain
    # One example per label plus its name: no temperature to fit (1.0), but a threshold.
    one_shot = calibrate(embeddings[[0, 6, 12, 13]], targets[[0, 6, 12, 13]], 2, config,
                         fit_out_of_scope(embeddings[[0, 6, 12, 13]], targets[[0, 6, 12, 13]], 2),
                         prompts=prompts[[0, 6, 12, 13]])
    assert one_shot.temperature == 1.0 and one_shot.oos_threshold is not None
