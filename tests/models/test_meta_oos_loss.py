"""The out-of-scope meta-loss (tiny tensors): its dense score is the service's score, and
its ranking term pulls held-out classes' texts below in-scope ones."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from models.inner_loop import InnerLoopConfig
from models.meta.algorithms import fomaml_loss, make_algorithm
from models.meta.oos_loss import relative_mahalanobis, with_out_of_scope
from models.out_of_scope import fit_out_of_scope


def _episode(ways: int = 4, shots: int = 5, dim: int = 12, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(ways, dim, generator=generator), dim=-1)
    support = F.normalize(centres.repeat_interleave(shots, 0) + 0.2 * torch.randn(ways * shots, dim, generator=generator), dim=-1)
    query = F.normalize(centres.repeat_interleave(3, 0) + 0.2 * torch.randn(ways * 3, dim, generator=generator), dim=-1)
    return support, torch.arange(ways).repeat_interleave(shots), query, torch.arange(ways).repeat_interleave(3)


def test_dense_score_equals_the_services_low_rank_score() -> None:
    support, ys, query, _ = _episode()
    service = fit_out_of_scope(support, ys, 4, rank=12)
    torch.testing.assert_close(relative_mahalanobis(support, ys, 4, query), service.scores(query), rtol=1e-4, atol=1e-4)


def test_one_example_per_class_borrows_the_background_variance_like_the_service() -> None:
    support, ys, query, _ = _episode(shots=1)
    service = fit_out_of_scope(support, ys, 4, rank=12)
    dense = relative_mahalanobis(support, ys, 4, query)
    assert dense.abs().max() < 100  # not a division by the 1e-8 floor
    torch.testing.assert_close(dense, service.scores(query), rtol=1e-4, atol=1e-4)


def test_the_ranking_term_adds_to_the_loss_and_reaches_the_embeddings() -> None:
    support, ys, query, yq = _episode()
    support.requires_grad_(True)
    config = InnerLoopConfig(steps=5)
    plain = fomaml_loss(support[ys < 3], ys[ys < 3], query[yq < 3], yq[yq < 3], 3, config)
    combined = with_out_of_scope(fomaml_loss, weight=1.0)(support, ys, query, yq, 4, config)
    assert combined > plain
    combined.backward()
    assert support.grad is not None and support.grad[ys < 3].abs().sum() > 0


def test_descending_the_term_separates_held_out_queries() -> None:
    support, ys, query, yq = _episode(seed=1)
    shift = torch.zeros(12, requires_grad=True)  # a stand-in for encoder parameters
    optimiser = torch.optim.SGD([shift], lr=0.05)
    term = with_out_of_scope(lambda *args: torch.zeros(()), weight=1.0)

    def auroc() -> float:
        with torch.no_grad():
            scores = relative_mahalanobis(F.normalize(support + shift, dim=-1)[ys < 3], ys[ys < 3], 3,
                                          F.normalize(query + shift, dim=-1))
            inside, outside = scores[yq < 3], scores[yq == 3]
            return float((inside[None, :] > outside[:, None]).float().mean())

    before = auroc()
    for _ in range(30):
        optimiser.zero_grad()
        term(F.normalize(support + shift, dim=-1), ys, F.normalize(query + shift, dim=-1), yq, 4, InnerLoopConfig()).backward()
        optimiser.step()
    assert before < 0.95 and auroc() > before


def test_make_algorithm_wraps_loss_algorithms_only() -> None:
    assert make_algorithm("fomaml", oos_weight=0.5).loss is not make_algorithm("fomaml").loss
    try:
        make_algorithm("reptile", oos_weight=0.5)
    except ValueError as error:
        assert "loss-based" in str(error)
    else:
        raise AssertionError("reptile has no episode loss to add the term to")
