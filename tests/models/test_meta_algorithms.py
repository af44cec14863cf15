"""Each algorithm's meta-step runs on a tiny random model and lowers its loss on a toy problem."""

from __future__ import annotations

import pytest
import torch

from models.episodes import EpisodeSampler
from models.inner_loop import InnerLoopConfig
from models.meta.algorithms import ALGORITHMS, make_algorithm, maml_head_loss
from models.meta.model import LearnedInnerLoop, MetaModel
from tests.models.meta_helpers import tiny_layers, toy_rows, toy_states

INNER = InnerLoopConfig(steps=5, learning_rate=0.05, proximal=0.01, scale=10.0)


def _setup(algorithm: str, seed: int = 0):
    rows = toy_rows(6, 10, seed=seed)
    states = toy_states(rows, seed=seed, signal=0.4)
    rank = 0 if algorithm == "metasgd" else 4
    model = MetaModel(tiny_layers(2, seed), 1, INNER, rank=rank, alpha=8.0, learn_inner=algorithm in ("maml-head", "metasgd"))
    episodes = EpisodeSampler(rows, 4, 3, 3, seed=seed).take(4)
    return model, states, episodes


def _mean_loss(algorithm, model: MetaModel, states, episodes) -> float:
    """The algorithm's episode loss without changing the model (gradients thrown away)."""
    before = {k: v.clone() for k, v in model.state_dict().items()}
    losses = [algorithm.accumulate(model, ep, lambda _ep, rows: model.embed(states, rows)) for ep in episodes]
    model.load_state_dict(before)
    model.zero_grad(set_to_none=True)
    return sum(losses) / len(losses)


@pytest.mark.parametrize("name", ALGORITHMS)
def test_meta_steps_lower_the_meta_loss(name: str) -> None:
    torch.manual_seed(0)
    model, states, episodes = _setup(name)
    algorithm = make_algorithm(name, reptile_steps=2, reptile_lr=0.02)
    params = model.encoder_parameters() + model.inner_parameters()
    assert params, "every algorithm trains something"
    optimiser = torch.optim.Adam(params, lr=0.03)
    start = _mean_loss(algorithm, model, states, episodes)
    for _ in range(8):
        optimiser.zero_grad(set_to_none=True)
        for episode in episodes:
            algorithm.accumulate(model, episode, lambda _ep, rows: model.embed(states, rows), 1 / len(episodes))
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in params if p.requires_grad)
        optimiser.step()
    end = _mean_loss(algorithm, model, states, episodes)
    assert end < start, (name, start, end)


def test_learned_inner_loop_receives_gradients() -> None:
    model, states, episodes = _setup("maml-head")
    episode = episodes[0]
    support, query = model.embed(states, episode.support_rows), model.embed(states, episode.query_rows)
    loss = maml_head_loss(support, episode.support_targets(), query, episode.query_targets(), episode.ways, model.inner.config())
    loss.backward()
    for parameter in (model.inner.log_lr, model.inner.log_proximal, model.inner.log_scale):
        assert parameter.grad is not None and torch.isfinite(parameter.grad) and parameter.grad != 0
    # second order through the head reaches the encoder too (through the prototype init and the loop)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder_parameters())


def test_fomaml_and_protonet_reach_the_encoder_but_not_the_inner_loop() -> None:
    for name in ("fomaml", "protonet"):
        model, states, episodes = _setup(name)
        make_algorithm(name).accumulate(model, episodes[0], lambda _ep, rows: model.embed(states, rows))
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder_parameters())
        assert model.inner.log_lr.grad is None


def test_reptile_restores_weights_and_writes_the_difference_as_gradient() -> None:
    model, states, episodes = _setup("reptile")
    before = [p.detach().clone() for p in model.encoder_parameters()]
    make_algorithm("reptile", reptile_steps=2, reptile_lr=0.05).accumulate(model, episodes[0], lambda _ep, rows: model.embed(states, rows))
    for parameter, start in zip(model.encoder_parameters(), before):
        assert torch.equal(parameter.detach(), start)
    assert any(p.grad.abs().sum() > 0 for p in model.encoder_parameters())


def test_learned_inner_loop_exports_plain_floats() -> None:
    learned = LearnedInnerLoop(InnerLoopConfig(steps=7, learning_rate=0.02, proximal=0.0, scale=15.0))
    exported = learned.export()
    assert exported.steps == 7 and abs(exported.learning_rate - 0.02) < 1e-6 and abs(exported.scale - 15.0) < 1e-3
    assert isinstance(exported.proximal, float) and exported.proximal <= 1e-6
    assert isinstance(learned.config().scale, torch.Tensor) and learned.config().scale.requires_grad


def test_unknown_algorithm_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown algorithm"):
        make_algorithm("maml-everything")
