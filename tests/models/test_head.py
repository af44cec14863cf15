"""The cosine head and its prototype initialisation."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from models.head import head_logits, head_probabilities, prototype_init, prototypes


def _clustered(
    num_classes: int = 4, per_class: int = 5, dim: int = 16, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(num_classes, dim, generator=generator), dim=-1)
    targets = torch.arange(num_classes).repeat_interleave(per_class)
    noise = 0.3 * torch.randn(len(targets), dim, generator=generator)
    return F.normalize(centres[targets] + noise, dim=-1), targets


def test_prototypes_are_unit_norm_class_means() -> None:
    embeddings, targets = _clustered()
    protos = prototypes(embeddings, targets, 4)
    assert protos.shape == (4, 16)
    torch.testing.assert_close(protos.norm(dim=-1), torch.ones(4))
    torch.testing.assert_close(protos[2], F.normalize(embeddings[targets == 2].mean(0), dim=0))


def test_empty_class_prototype_stays_zero() -> None:
    embeddings, targets = _clustered(num_classes=2)
    protos = prototypes(embeddings, targets, 3)
    assert torch.count_nonzero(protos[2]) == 0


def test_prototype_init_predicts_the_nearest_prototype() -> None:
    embeddings, targets = _clustered()
    params = prototype_init(embeddings, targets, 4)
    torch.testing.assert_close(params["bias"], torch.zeros(4))
    queries = F.normalize(torch.randn(50, 16, generator=torch.Generator().manual_seed(1)), dim=-1)
    nearest = (queries @ prototypes(embeddings, targets, 4).T).argmax(-1)
    assert torch.equal(head_logits(params, queries, 20.0).argmax(-1), nearest)


def test_probabilities_are_a_distribution() -> None:
    embeddings, targets = _clustered()
    probabilities = head_probabilities(prototype_init(embeddings, targets, 4), embeddings, 10.0)
    assert probabilities.shape == (20, 4)
    assert bool((probabilities >= 0).all())
    torch.testing.assert_close(probabilities.sum(-1), torch.ones(20))


def test_refinement_with_unlabelled_texts_moves_prototypes_to_their_clusters() -> None:
    from models.head import refine_with_unlabelled

    generator = torch.Generator().manual_seed(3)
    centres = F.normalize(torch.randn(5, 32, generator=generator), dim=-1)
    anchors = F.normalize(centres + 0.3 * torch.randn(5, 32, generator=generator), dim=-1)  # names: off-centre
    targets = torch.arange(5).repeat_interleave(40)
    pool = F.normalize(centres[targets] + 0.15 * torch.randn(len(targets), 32, generator=generator), dim=-1)

    refined = refine_with_unlabelled(anchors, pool)
    torch.testing.assert_close(refined.norm(dim=-1), torch.ones(5))
    assert ((refined * centres).sum(-1) > (anchors * centres).sum(-1)).all()  # every prototype nearer its centre
    before = ((pool @ anchors.T).argmax(-1) == targets).float().mean()
    after = ((pool @ refined.T).argmax(-1) == targets).float().mean()
    assert before < 0.9 and after > 0.95


def test_refinement_without_unlabelled_texts_or_steps_keeps_the_anchors() -> None:
    from models.head import refine_with_unlabelled

    anchors = torch.tensor([[2.0, 0.0], [0.0, 3.0]])
    expected = F.normalize(anchors, dim=-1)
    torch.testing.assert_close(refine_with_unlabelled(anchors, torch.empty(0, 2)), expected)
    torch.testing.assert_close(refine_with_unlabelled(anchors, torch.randn(6, 2), iterations=0), expected)
