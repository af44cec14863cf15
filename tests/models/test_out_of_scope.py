"""The relative Mahalanobis out-of-scope model (tiny tensors): its low-rank precision
matches the dense formula, leave-one-out means what it says, and it survives the
adapter's safetensors round trip."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from models.adapter import Adapter
from models.out_of_scope import fit_out_of_scope, fit_precision
from tests.fakes import FakeEncoder


def _clusters(classes: int = 3, per_class: int = 10, dim: int = 16, noise: float = 0.1, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(classes, dim, generator=generator), dim=-1)
    embeddings = F.normalize(centres.repeat_interleave(per_class, 0)
                             + noise * torch.randn(classes * per_class, dim, generator=generator), dim=-1)
    return embeddings, torch.arange(classes).repeat_interleave(per_class), generator


def test_low_rank_precision_at_full_rank_equals_the_dense_shrunk_inverse() -> None:
    residuals = torch.randn(50, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    precision = fit_precision(residuals, fallback_variance=1.0, shrinkage=0.7, rank=6)
    covariance = residuals.T @ residuals / 50
    dense = torch.linalg.inv(0.3 * covariance + 0.7 * covariance.diagonal().mean() * torch.eye(6, dtype=torch.float64))
    points, centres = torch.randn(4, 6, dtype=torch.float64), torch.randn(2, 6, dtype=torch.float64)
    diff = points[:, None] - centres[None]
    expected = torch.einsum("ncd,de,nce->nc", diff, dense, diff)
    torch.testing.assert_close(precision.distances(points, centres), expected)
    torch.testing.assert_close(precision.apply(points), points @ dense)


def test_in_class_texts_score_above_unrelated_ones() -> None:
    embeddings, targets, generator = _clusters()
    model = fit_out_of_scope(embeddings, targets, 3, rank=8)
    near, _, _ = _clusters(seed=0, per_class=5)  # same centres, fresh noise
    unrelated = F.normalize(torch.randn(30, 16, generator=generator), dim=-1)
    assert model.scores(near).min() > model.scores(unrelated).median()


def test_leave_one_out_is_close_to_refitting_without_the_example() -> None:
    """The rank-one downdate ignores only the small change of the isotropic variance."""
    embeddings, targets, _ = _clusters(per_class=5)
    model = fit_out_of_scope(embeddings, targets, 3, rank=16)
    held_out = model.leave_one_out_scores(embeddings, targets)
    refitted = torch.stack([
        fit_out_of_scope(embeddings[torch.arange(15) != i], targets[torch.arange(15) != i], 3, rank=16)
        .scores(embeddings[i : i + 1])[0]
        for i in range(15)
    ])
    in_sample = model.scores(embeddings)
    assert (held_out - refitted).abs().max() < 0.1 * refitted.abs().mean()
    # Scoring the fitted examples in sample would look far too good.
    assert (in_sample - refitted).abs().mean() > 5 * (held_out - refitted).abs().mean()


def test_moving_the_model_keeps_what_leave_one_out_needs() -> None:
    embeddings, targets, _ = _clusters(per_class=5)
    model = fit_out_of_scope(embeddings, targets, 3, rank=16)
    moved = model.to("cpu")
    assert (moved.within.examples, moved.within.shrinkage) == (model.within.examples, model.within.shrinkage)
    torch.testing.assert_close(moved.leave_one_out_scores(embeddings, targets), model.leave_one_out_scores(embeddings, targets))


def test_singletons_are_left_out_and_a_single_class_still_scores() -> None:
    embeddings, targets, _ = _clusters(classes=2, per_class=3)
    targets = torch.tensor([0, 0, 0, 1, 2, 3])  # three singleton classes
    model = fit_out_of_scope(embeddings, targets, 4, rank=4)
    assert model.leave_one_out_scores(embeddings, targets).shape == (3,)
    one_class = fit_out_of_scope(embeddings[:3], torch.zeros(3, dtype=torch.long), 1, rank=4)
    far = -embeddings[:1]
    assert one_class.scores(embeddings[:1]) > one_class.scores(far)


def test_every_class_a_single_example_still_gives_finite_scores() -> None:
    embeddings, _, _ = _clusters(classes=3, per_class=1)
    model = fit_out_of_scope(embeddings, torch.arange(3), 3, rank=4)
    assert torch.isfinite(model.scores(embeddings)).all()


def test_adapter_round_trip_keeps_the_out_of_scope_model() -> None:
    embeddings, targets, generator = _clusters()
    model = fit_out_of_scope(embeddings, targets, 3, rank=8)
    params = {"weight": torch.randn(3, 16, generator=generator), "bias": torch.zeros(3)}
    adapter = Adapter(("a", "b", "c"), params, 20.0, "fp", 1.0, -0.5, model)
    loaded = Adapter.from_bytes(adapter.to_bytes())
    assert set(loaded.params) == {"weight", "bias"} and loaded.oos_model is not None
    torch.testing.assert_close(loaded.in_scope_scores(embeddings), adapter.in_scope_scores(embeddings))
    assert adapter.num_bytes == (3 * 16 + 3 + 3 * 16 + 2 * (16 * 8 + 8) + 16 + 3) * 4


def test_a_small_task_stores_only_the_directions_with_spread() -> None:
    embeddings, targets, _ = _clusters(classes=2, per_class=3, dim=32)
    model = fit_out_of_scope(embeddings, targets, 2, rank=16)
    assert model.within.basis.shape == (32, 4)  # 6 examples around 2 means
    assert model.background.basis.shape == (32, 5)  # 6 examples around 1 mean
    residuals = embeddings - model.means[targets]
    covariance = residuals.T @ residuals / 6
    dense = torch.linalg.inv(0.1 * covariance + 0.9 * covariance.diagonal().mean() * torch.eye(32))
    diff = embeddings[:, None] - model.means[None]
    expected = torch.einsum("ncd,de,nce->nc", diff, dense, diff)
    torch.testing.assert_close(model.within.distances(embeddings, model.means), expected, rtol=1e-4, atol=1e-3)


def test_half_precision_queries_are_scored_in_the_models_precision() -> None:
    embeddings, targets, _ = _clusters()
    model = fit_out_of_scope(embeddings, targets, 3, rank=8)
    half = model.scores(embeddings.half())
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, model.scores(embeddings), rtol=1e-2, atol=1e-2)



def test_a_rank_one_scatter_that_float32_lapack_rejects_still_fits() -> None:
    """Two labels from one text each (a zero-shot task of two names): the background's
    scatter has rank one, on which float32 ``eigh`` fails to converge for these texts."""
    embeddings = FakeEncoder().encode(["weather", "music"])
    model = fit_out_of_scope(embeddings, torch.tensor([0, 1]), 2)
    assert torch.isfinite(model.scores(embeddings)).all()
