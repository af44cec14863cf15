"""What meta-training learns: low-rank adapters on the top encoder layers and the inner loop.

:class:`MetaModel` holds a copy of the encoder's top layers (the lower ones are frozen
and cached, see :mod:`models.meta.features`) wrapped with LoRA (Hu et al. 2021), and
a :class:`LearnedInnerLoop`: the service's inner-loop hyperparameters as learnable
log-values, in the spirit of Meta-SGD (Li et al. 2017), which learns the inner
loop's learning rates by differentiating through the adaptation. Here one learning
rate, the proximal pull strength and the logit scale (inverse temperature) are
learned; the number of steps is discrete and chosen by search.
"""

from __future__ import annotations

import copy
import math
from dataclasses import replace
from typing import Sequence

import torch
from torch import nn

from models.inner_loop import InnerLoopConfig
from models.lora import DEFAULT_TARGETS, LoRALinear, apply_lora, lora_factors, load_lora_factors
from models.meta.features import TokenStates, embed_states

PROXIMAL_FLOOR = 1e-6


class LearnedInnerLoop(nn.Module):
    """``log learning_rate``, ``log proximal`` and ``log scale`` as parameters; ``steps`` fixed."""

    def __init__(self, config: InnerLoopConfig, learn: bool = True) -> None:
        super().__init__()
        self.base = config  # fields not learned here (e.g. continual_steps) pass through unchanged
        self.steps = int(config.steps)
        values = [math.log(config.learning_rate), math.log(max(config.proximal, PROXIMAL_FLOOR)), math.log(config.scale)]
        self.log_lr, self.log_proximal, self.log_scale = (nn.Parameter(torch.tensor(v), requires_grad=learn) for v in values)

    def config(self) -> InnerLoopConfig:
        """A differentiable config: the float fields hold 0-d tensors (``adapt`` accepts them)."""
        return replace(self.base, steps=self.steps, learning_rate=self.log_lr.exp(), proximal=self.log_proximal.exp(),
                       scale=self.log_scale.exp())

    def export(self) -> InnerLoopConfig:
        """Plain floats, for the manifest and the service."""
        return replace(
            self.base,
            steps=self.steps,
            learning_rate=round(float(self.log_lr.detach().exp()), 6),
            proximal=round(float(self.log_proximal.detach().exp()), 6),
            scale=round(float(self.log_scale.detach().exp()), 4),
        )


class MetaModel(nn.Module):
    """Trainable top of the encoder (LoRA on layers ``first_layer..``) plus the learned inner loop.

    ``top_layers`` are deep-copied, so the encoder they came from is never modified.
    With ``rank == 0`` the encoder is frozen and only the inner loop can learn, unless
    ``finetune``: then every weight of the top layers trains (full fine-tuning, no LoRA),
    and :meth:`pull_to_start` adds the L2-SP penalty ``strength * ||theta - theta_0||^2``
    (Li et al. 2018, "Explicit inductive bias for transfer learning") that keeps them near
    the pretrained weights, as the service's proximal term keeps the head near its prototypes.
    """

    def __init__(
        self,
        top_layers: Sequence[nn.Module],
        first_layer: int,
        inner: InnerLoopConfig,
        rank: int = 8,
        alpha: float = 16.0,
        targets: Sequence[str] = DEFAULT_TARGETS,
        learn_inner: bool = False,
        pooling: str = "mean",
        seed: int = 0,
        finetune: bool = False,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(list(top_layers)))
        for parameter in self.layers.parameters():
            parameter.requires_grad_(False)
        self.first_layer, self.rank, self.alpha, self.targets, self.pooling = first_layer, rank, alpha, tuple(targets), pooling
        layer_ids = list(range(first_layer, first_layer + len(self.layers)))
        self.finetune = finetune
        if finetune:
            rank = self.rank = 0
            for parameter in self.layers.parameters():
                parameter.requires_grad_(True)
        self.lora: dict[str, LoRALinear] = apply_lora(self.layers, layer_ids, rank, alpha, targets, seed) if rank > 0 else {}
        self.start = {name: p.detach().clone() for name, p in self.layers.named_parameters()} if finetune else {}
        self.inner = LearnedInnerLoop(inner, learn=learn_inner)
        self.layers.eval()  # no dropout: adaptation at serving time runs without it

    @property
    def trains_encoder(self) -> bool:
        return bool(self.lora) or self.finetune

    def encoder_parameters(self) -> list[nn.Parameter]:
        if self.finetune:
            return list(self.layers.parameters())
        return [p for module in self.lora.values() for p in (module.lora_A, module.lora_B)]

    @torch.no_grad()
    def pull_to_start(self, strength: float) -> None:
        """Add the gradient of ``strength * ||theta - theta_0||^2`` (L2-SP) to the fine-tuned weights."""
        if strength <= 0 or not self.finetune:
            return
        for name, parameter in self.layers.named_parameters():
            pull = 2.0 * strength * (parameter - self.start[name].to(parameter.device))
            parameter.grad = pull if parameter.grad is None else parameter.grad + pull

    def state_name(self, name: str) -> str:
        """``<i>.<rest>`` (a name in ``self.layers``) -> the encoder's ``encoder.layer.<first + i>.<rest>``."""
        index, rest = name.split(".", 1)
        return f"encoder.layer.{self.first_layer + int(index)}.{rest}"

    def inner_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.inner.parameters() if p.requires_grad]

    def embed(self, states: TokenStates, indices: Sequence[int]) -> torch.Tensor:
        """Unit-norm sentence embeddings of cached texts through the adapted top layers."""
        return embed_states(self.layers, states, indices, self.pooling)

    @torch.no_grad()
    def embed_all(self, states: TokenStates, batch: int = 256) -> torch.Tensor:
        """Embeddings of every cached text (no graph), e.g. for validation."""
        chunks = [self.embed(states, range(start, min(start + batch, len(states)))) for start in range(0, len(states), batch)]
        return torch.cat(chunks)

    def encoder_tensors(self) -> dict[str, torch.Tensor]:
        """The LoRA factors, by ``<param>.lora_A`` / ``<param>.lora_B``; when fine-tuning, the
        top layers' weights by their encoder state-dict names, in float16 (half the size; the
        rounding, about 5e-4 relative, is what the GPU path's fp16 encoder sees anyway)."""
        if self.finetune:
            return {self.state_name(name): p.detach().to(torch.float16) for name, p in self.layers.named_parameters()}
        return lora_factors(self.lora)

    def load_encoder_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        load_lora_factors(self.lora, tensors)

    def lora_manifest(self) -> dict | None:
        if self.finetune:
            return None
        return {
            "rank": self.rank,
            "alpha": self.alpha,
            "scaling": self.alpha / self.rank if self.rank else 0.0,
            "layers": [self.first_layer + i for i in range(len(self.layers))],
            "targets": list(self.targets),
        }
