"""LoRA: merged weights behave exactly like the unmerged adapter; bad factors are refused."""

from __future__ import annotations

import copy

import pytest
import torch

from models.lora import LORA_A, LORA_B, LoRALinear, apply_lora, lora_factors, merge_lora, split_lora
from models.meta.features import run_layers
from tests.models.meta_helpers import tiny_layers


def _randomise_b(modules: dict[str, LoRALinear]) -> None:
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in modules.values():
            module.lora_B.copy_(torch.randn(module.lora_B.shape, generator=generator) * 0.1)


def test_lora_starts_as_the_identity_change() -> None:
    base = torch.nn.Linear(6, 4)
    wrapped = LoRALinear(copy.deepcopy(base), rank=2, alpha=4.0)
    x = torch.randn(3, 6)
    assert torch.equal(wrapped(x), base(x))
    assert not wrapped.base.weight.requires_grad and wrapped.lora_A.requires_grad


def test_merge_equals_running_unmerged() -> None:
    layers = tiny_layers(2)
    base_state = {f"encoder.layer.{i}.{k}": v.clone() for i, layer in enumerate(layers) for k, v in layer.state_dict().items()}
    adapted = copy.deepcopy(layers)
    wrapped = apply_lora(adapted, [0, 1], rank=3, alpha=6.0, seed=0)
    _randomise_b(wrapped)
    hidden, mask = torch.randn(2, 5, 16), torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    with torch.no_grad():
        unmerged = run_layers(adapted, hidden, mask)
        merged = merge_lora(base_state, lora_factors(wrapped), scaling=2.0)
        plain = copy.deepcopy(layers)
        for i, layer in enumerate(plain):
            prefix = f"encoder.layer.{i}."
            layer.load_state_dict({k[len(prefix):]: v for k, v in merged.items() if k.startswith(prefix)}, strict=False)
        assert torch.allclose(run_layers(plain, hidden, mask), unmerged, atol=1e-5)
        assert not torch.allclose(run_layers(layers, hidden, mask), unmerged, atol=1e-3)


def test_factor_names_and_split() -> None:
    wrapped = apply_lora(tiny_layers(1), [5], rank=2, alpha=2.0, targets=["attention.self.query"])
    factors = lora_factors(wrapped)
    assert set(factors) == {"encoder.layer.5.attention.self.query.weight" + LORA_A, "encoder.layer.5.attention.self.query.weight" + LORA_B}
    plain, lora = split_lora({**factors, "encoder.layer.0.output.dense.bias": torch.zeros(3)})
    assert set(plain) == {"encoder.layer.0.output.dense.bias"} and lora == factors


def test_bad_factors_are_refused() -> None:
    weight = {"w": torch.zeros(4, 6)}
    with pytest.raises(ValueError, match="missing"):
        merge_lora(weight, {"w" + LORA_A: torch.zeros(2, 6)}, 1.0)
    with pytest.raises(ValueError, match="do not fit"):
        merge_lora(weight, {"w" + LORA_A: torch.zeros(2, 5), "w" + LORA_B: torch.zeros(4, 2)}, 1.0)
    with pytest.raises(ValueError, match="lacks"):
        merge_lora(weight, {"v" + LORA_A: torch.zeros(2, 6), "v" + LORA_B: torch.zeros(4, 2)}, 1.0)
    with pytest.raises(ValueError, match="rank"):
        LoRALinear(torch.nn.Linear(2, 2), rank=0, alpha=1.0)
