"""The inner loop: adaptation lowers the support loss and respects the proximal pull."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from models.head import HeadParams, prototype_init
from models.inner_loop import InnerLoopConfig, adapt, support_loss


@pytest.fixture
def support() -> tuple[torch.Tensor, torch.Tensor]:
    """Overlapping clusters, so the prototype head is not already perfect."""
    generator = torch.Generator().manual_seed(0)
    centres = F.normalize(torch.randn(3, 8, generator=generator), dim=-1)
    targets = torch.arange(3).repeat_interleave(4)
    embeddings = F.normalize(centres[targets] + 1.5 * torch.randn(12, 8, generator=generator), dim=-1)
    return embeddings, targets


def _loss(
    params: HeadParams, init: HeadParams, support: tuple[torch.Tensor, torch.Tensor], config: InnerLoopConfig
) -> float:
    embeddings, targets = support
    return float(support_loss(params, init, embeddings, targets, config.scale, config.proximal))


def _distance(a: HeadParams, b: HeadParams) -> float:
    return float(sum(((a[name] - b[name]) ** 2).sum() for name in a) ** 0.5)


@pytest.mark.parametrize("steps", [1, 5, 50])
def test_adaptation_lowers_the_support_loss(support: tuple[torch.Tensor, torch.Tensor], steps: int) -> None:
    embeddings, targets = support
    config = InnerLoopConfig(steps=steps)
    init = prototype_init(embeddings, targets, 3)
    adapted = adapt(embeddings, targets, 3, config)
    assert _loss(adapted, init, support, config) < _loss(init, init, support, config)


def test_more_steps_lower_the_loss_further(support: tuple[torch.Tensor, torch.Tensor]) -> None:
    embeddings, targets = support
    init = prototype_init(embeddings, targets, 3)
    config = InnerLoopConfig()
    adapted = [adapt(embeddings, targets, 3, InnerLoopConfig(steps=steps)) for steps in (1, 10, 50)]
    losses = [_loss(params, init, support, config) for params in adapted]
    assert losses[0] > losses[1] > losses[2]


def test_zero_steps_return_the_prototype_init(support: tuple[torch.Tensor, torch.Tensor]) -> None:
    embeddings, targets = support
    init = prototype_init(embeddings, targets, 3)
    adapted = adapt(embeddings, targets, 3, InnerLoopConfig(steps=0))
    for name in init:
        assert torch.equal(adapted[name], init[name])
        assert not adapted[name].requires_grad


def test_explicit_init_is_the_start_and_is_not_modified(support: tuple[torch.Tensor, torch.Tensor]) -> None:
    embeddings, targets = support
    init = {"weight": torch.randn(3, 8), "bias": torch.zeros(3)}
    before = {name: value.clone() for name, value in init.items()}
    assert torch.equal(adapt(embeddings, targets, 3, InnerLoopConfig(steps=0), init=init)["weight"], init["weight"])
    adapt(embeddings, targets, 3, InnerLoopConfig(steps=5), init=init)
    for name in init:
        assert torch.equal(init[name], before[name])


def test_proximal_term_keeps_params_near_the_init(support: tuple[torch.Tensor, torch.Tensor]) -> None:
    embeddings, targets = support
    init = prototype_init(embeddings, targets, 3)
    distances = [
        _distance(adapt(embeddings, targets, 3, InnerLoopConfig(steps=30, learning_rate=0.05, proximal=p)), init)
        for p in (0.0, 1.0, 10.0, 100.0)
    ]
    assert all(a > b for a, b in zip(distances, distances[1:])), distances


def test_adapt_with_create_graph_is_differentiable(support: tuple[torch.Tensor, torch.Tensor]) -> None:
    embeddings, targets = support
    embeddings = embeddings.clone().requires_grad_(True)
    adapted = adapt(embeddings, targets, 3, InnerLoopConfig(steps=3), create_graph=True)
    assert adapted["weight"].requires_grad
    (adapted["weight"].sum() + adapted["bias"].sum()).backward()
    assert embeddings.grad is not None
    assert torch.isfinite(embeddings.grad).all() and embeddings.grad.abs().sum() > 0


def test_adapt_is_deterministic(support: tuple[torch.Tensor, torch.Tensor]) -> None:
    embeddings, targets = support
    first = adapt(embeddings, targets, 3, InnerLoopConfig(steps=10))
    second = adapt(embeddings, targets, 3, InnerLoopConfig(steps=10))
    for name in first:
        assert torch.equal(first[name], second[name])


def test_config_round_trips_through_a_dict() -> None:
    config = InnerLoopConfig(steps=7, learning_rate=0.2, proximal=0.5, scale=12.5)
    assert InnerLoopConfig.from_dict(config.to_dict()) == config
    assert config.to_dict() == {"steps": 7, "learning_rate": 0.2, "proximal": 0.5, "scale": 12.5, "continual_steps": 10}


def test_config_from_dict_ignores_unknown_keys_and_keeps_defaults() -> None:
    config = InnerLoopConfig.from_dict({"steps": 3, "meta_lr": 1e-4})
    assert config == InnerLoopConfig(steps=3)
