"""Meta-learning algorithms over the service's own adapter, one per ``--algorithm`` value.

Each algorithm turns one episode into gradients on the :class:`~models.meta.model.MetaModel`
(``accumulate`` calls ``backward`` or writes ``.grad``); the trainer owns the outer
optimiser. Embeddings come from ``embed(rows)`` and carry a graph to the LoRA
factors when the encoder is being trained.

- ``protonet``: prototypical loss (Snell et al. 2017) with cosine similarity.
- ``fomaml``: first-order MAML (Finn et al. 2017) over the prototype-initialised
  cosine head adapted by :func:`models.inner_loop.adapt`; the query-loss gradient at
  the adapted head is passed straight through to the prototype init (first-order
  approximation d(adapted)/d(init) = I) and on into the encoder.
- ``maml-head``: second-order MAML through the head only: the whole inner loop is
  differentiated (``create_graph=True``), back into the prototype init, the encoder
  and the learned inner-loop hyperparameters.
- ``reptile``: Reptile (Nichol et al. 2018): a few Adam steps on the episode for LoRA
  factors and head jointly, then the outer gradient is ``theta_0 - theta_k``.
- ``metasgd``: learned inner-loop hyperparameters only (Li et al. 2017), second-order
  through the head with the encoder frozen; runs from cached embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from models.episodes import Episode
from models.head import head_logits, prototype_init, prototypes
from models.inner_loop import InnerLoopConfig, adapt
from models.meta.model import MetaModel
from models.meta.oos_loss import with_out_of_scope

EmbedFn = Callable[[Episode, Sequence[int]], torch.Tensor]


def protonet_loss(support: torch.Tensor, ys: torch.Tensor, query: torch.Tensor, yq: torch.Tensor, ways: int,
                  scale: float | torch.Tensor) -> torch.Tensor:
    """Cross-entropy of scaled cosine similarity to the class prototypes (Snell et al. 2017)."""
    logits = scale * F.normalize(query, dim=-1) @ prototypes(support, ys, ways).T
    return F.cross_entropy(logits, yq)


def fomaml_loss(support: torch.Tensor, ys: torch.Tensor, query: torch.Tensor, yq: torch.Tensor, ways: int,
                config: InnerLoopConfig) -> torch.Tensor:
    """Query loss at the adapted head, first-order: gradients reach the init unchanged."""
    init = prototype_init(support, ys, ways)
    adapted = adapt(support.detach(), ys, ways, _floats(config))
    head = {name: init[name] + (adapted[name] - init[name]).detach() for name in init}
    return F.cross_entropy(head_logits(head, query, float(config.scale)), yq)


def maml_head_loss(support: torch.Tensor, ys: torch.Tensor, query: torch.Tensor, yq: torch.Tensor, ways: int,
                   config: InnerLoopConfig) -> torch.Tensor:
    """Query loss after the differentiable inner loop (second order through the head)."""
    adapted = adapt(support, ys, ways, config, create_graph=True, differentiable_init=True)
    return F.cross_entropy(head_logits(adapted, query, config.scale), yq)


def _floats(config: InnerLoopConfig) -> InnerLoopConfig:
    return replace(config, learning_rate=float(config.learning_rate), proximal=float(config.proximal), scale=float(config.scale))


@dataclass
class LossAlgorithm:
    """An algorithm whose episode objective is a differentiable query loss."""

    name: str
    loss: Callable[..., torch.Tensor]
    trains_encoder: bool = True
    learns_inner: bool = False

    def accumulate(self, model: MetaModel, episode: Episode, embed: EmbedFn, weight: float = 1.0) -> float:
        support = embed(episode, episode.support_rows)
        query = embed(episode, episode.query_rows)
        ys, yq = episode.support_targets().to(support.device), episode.query_targets().to(support.device)
        config = model.inner.config() if self.learns_inner else _floats(model.inner.config())
        loss = self.loss(support, ys, query, yq, episode.ways, config)
        if loss.requires_grad and torch.isfinite(loss):
            (loss * weight).backward()
        return float(loss.detach())


@dataclass
class Reptile:
    """Reptile over LoRA factors plus a prototype-initialised head (Nichol et al. 2018)."""

    steps: int = 3
    learning_rate: float = 1e-3
    name: str = "reptile"
    trains_encoder: bool = True
    learns_inner: bool = False

    def accumulate(self, model: MetaModel, episode: Episode, embed: EmbedFn, weight: float = 1.0) -> float:
        params = model.encoder_parameters()
        start = [p.detach().clone() for p in params]
        rows = episode.support_rows + episode.query_rows
        targets = torch.tensor(episode.support_labels + episode.query_labels)
        config = _floats(model.inner.config())
        with torch.no_grad():
            support = embed(episode, episode.support_rows)
        head = {k: v.clone().requires_grad_(True) for k, v in prototype_init(support, targets[: len(support)].to(support.device), episode.ways).items()}
        optimiser = torch.optim.Adam([{"params": params, "lr": self.learning_rate},
                                      {"params": list(head.values()), "lr": config.learning_rate}], betas=(0.0, 0.999))
        saved = [p.grad for p in params]
        losses = []
        for _ in range(self.steps):
            optimiser.zero_grad(set_to_none=True)
            embeddings = embed(episode, rows)
            loss = F.cross_entropy(head_logits(head, embeddings, config.scale), targets.to(embeddings.device))
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
        with torch.no_grad():
            for p, p0, grad in zip(params, start, saved):
                delta = (p0 - p) * weight
                p.copy_(p0)
                p.grad = delta if grad is None else grad + delta
        return losses[0]


def make_algorithm(name: str, reptile_steps: int = 3, reptile_lr: float = 1e-3,
                   oos_weight: float = 0.0) -> LossAlgorithm | Reptile:
    """The algorithm behind ``--algorithm name``; ``oos_weight > 0`` adds the out-of-scope
    ranking term of :mod:`models.meta.oos_loss` to a loss-based algorithm."""
    algorithm = _make_algorithm(name, reptile_steps, reptile_lr)
    if oos_weight <= 0:
        return algorithm
    if not isinstance(algorithm, LossAlgorithm):
        raise ValueError(f"--oos-weight needs a loss-based algorithm, not {name!r}")
    return replace(algorithm, loss=with_out_of_scope(algorithm.loss, oos_weight))


def _make_algorithm(name: str, reptile_steps: int, reptile_lr: float) -> LossAlgorithm | Reptile:
    if name == "protonet":
        return LossAlgorithm("protonet", lambda s, ys, q, yq, ways, config: protonet_loss(s, ys, q, yq, ways, config.scale))
    if name == "fomaml":
        return LossAlgorithm("fomaml", fomaml_loss)
    if name == "maml-head":
        return LossAlgorithm("maml-head", maml_head_loss, learns_inner=True)
    if name == "metasgd":
        return LossAlgorithm("metasgd", maml_head_loss, trains_encoder=False, learns_inner=True)
    if name == "reptile":
        return Reptile(reptile_steps, reptile_lr)
    raise ValueError(f"unknown algorithm {name!r}; choose from {', '.join(ALGORITHMS)}")


ALGORITHMS = ("protonet", "fomaml", "reptile", "maml-head", "metasgd")
