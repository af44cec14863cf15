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
