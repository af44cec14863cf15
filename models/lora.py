"""Low-rank adapters (LoRA, Hu et al. 2021) for the encoder's linear layers.

A frozen linear map ``W`` becomes ``W + scaling * B @ A`` with ``A [rank, in]`` and
``B [out, rank]``; ``B`` starts at zero so training starts from the base encoder.
Only the factors are trained and saved (safetensors, never pickle), under the name
of the base weight they modify: ``<param>.lora_A`` / ``<param>.lora_B``, with
``scaling = alpha / rank`` recorded in the checkpoint manifest. At load time the
factors are merged into the base weights (:func:`merge_lora`), so serving costs
nothing extra.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

LORA_A, LORA_B = ".lora_A", ".lora_B"
# Linear layers of a BERT-style layer, by their path inside ``encoder.layer.<i>``.
DEFAULT_TARGETS = (
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
)


class LoRALinear(nn.Module):
    """``base(x) + scaling * x A^T B^T`` with the base layer frozen."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if rank < 1:
            raise ValueError("LoRA rank must be at least 1")
        self.base = base
        for parameter in base.parameters():
            parameter.requires_grad_(False)
        self.rank, self.scaling = rank, alpha / rank
        a = torch.empty(rank, base.in_features)
        bound = 1.0 / math.sqrt(base.in_features)  # kaiming-uniform(a=sqrt(5)) bound, as in the paper's code
        a.uniform_(-bound, bound, generator=generator)
        self.lora_A = nn.Parameter(a.to(base.weight.device, base.weight.dtype))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, device=base.weight.device, dtype=base.weight.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled():  # inference: one matmul with the merged weight
            return F.linear(x, self.merged_weight(), self.base.bias)
        return self.base(x) + F.linear(F.linear(x, self.lora_A), self.lora_B) * self.scaling

    def merged_weight(self) -> torch.Tensor:
        return self.base.weight + self.scaling * self.lora_B @ self.lora_A


def _parent(root: nn.Module, path: str) -> tuple[nn.Module, str]:
    *parents, leaf = path.split(".")
    module = root
    for name in parents:
        module = getattr(module, name)
    return module, leaf


def apply_lora(
    layers: Sequence[nn.Module],
    layer_ids: Sequence[int],
    rank: int,
    alpha: float,
    targets: Iterable[str] = DEFAULT_TARGETS,
    seed: int = 0,
) -> dict[str, LoRALinear]:
    """Wrap the ``targets`` linear layers of ``layers`` (encoder layers ``layer_ids``) in place.

    Returns the wrappers keyed by the state-dict name of the base weight they modify,
    e.g. ``encoder.layer.5.attention.self.query.weight``.
    """
    generator = torch.Generator().manual_seed(seed)
    wrapped: dict[str, LoRALinear] = {}
    for layer, layer_id in zip(layers, layer_ids):
        for target in targets:
            parent, leaf = _parent(layer, target)
            base = getattr(parent, leaf)
            if isinstance(base, LoRALinear):
                raise ValueError(f"{target} of layer {layer_id} already has a LoRA adapter")
            module = LoRALinear(base, rank, alpha, generator)
            setattr(parent, leaf, module)
            wrapped[f"encoder.layer.{layer_id}.{target}.weight"] = module
    return wrapped


def lora_factors(wrapped: dict[str, LoRALinear]) -> dict[str, torch.Tensor]:
    """The trainable factors as plain CPU float32 tensors, ready for safetensors."""
    tensors: dict[str, torch.Tensor] = {}
    for name, module in wrapped.items():
        tensors[name + LORA_A] = module.lora_A.detach().to("cpu", torch.float32).contiguous()
        tensors[name + LORA_B] = module.lora_B.detach().to("cpu", torch.float32).contiguous()
    return tensors


def load_lora_factors(wrapped: dict[str, LoRALinear], tensors: dict[str, torch.Tensor]) -> None:
    """Copy saved factors into wrappers made by :func:`apply_lora` (same names and ranks)."""
    with torch.no_grad():
        for name, module in wrapped.items():
            module.lora_A.copy_(tensors[name + LORA_A])
            module.lora_B.copy_(tensors[name + LORA_B])


def split_lora(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Separate plain replacement tensors from LoRA factors (keys ending in .lora_A/.lora_B)."""
    plain = {k: v for k, v in tensors.items() if not k.endswith((LORA_A, LORA_B))}
    factors = {k: v for k, v in tensors.items() if k.endswith((LORA_A, LORA_B))}
    return plain, factors


def lora_targets(factors: dict[str, torch.Tensor]) -> list[str]:
    """Names of the base weights the factors modify; both factors must be present."""
    names = sorted({k[: -len(LORA_A)] for k in factors if k.endswith(LORA_A)})
    for name in names:
        if name + LORA_B not in factors:
            raise ValueError(f"LoRA factor {name}{LORA_B} is missing")
    if len(names) * 2 != len(factors):
        raise ValueError("LoRA factors come in pairs: every .lora_B needs its .lora_A")
    return names


def merge_lora(base: dict[str, torch.Tensor], factors: dict[str, torch.Tensor], scaling: float) -> dict[str, torch.Tensor]:
    """``{name: W + scaling * B @ A}`` for every weight the factors modify (new tensors)."""
    merged = {}
    for name in lora_targets(factors):
        if name not in base:
            raise ValueError(f"LoRA factors name a weight the encoder lacks: {name}")
        weight = base[name]
        a, b = factors[name + LORA_A].to(torch.float32), factors[name + LORA_B].to(torch.float32)
        if b.shape[0] != weight.shape[0] or a.shape[1] != weight.shape[1] or a.shape[0] != b.shape[1]:
            raise ValueError(f"LoRA factor shapes {tuple(b.shape)} @ {tuple(a.shape)} do not fit {name} {tuple(weight.shape)}")
        merged[name] = (weight.to(torch.float32) + scaling * b @ a).to(weight.dtype)
    return merged
