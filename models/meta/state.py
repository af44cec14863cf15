"""Resume state of a meta-training run: safetensors for tensors, JSON for the rest (never pickle).

``trainer_state.safetensors`` holds the current trainable tensors (``model.*``), the best
ones so far (``best.*``) and the Adam moments (``opt.<index>.<name>``);
``trainer_state.json`` holds the step, the early-stopping counters, the history and the
optimiser's parameter groups.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from models.meta.model import MetaModel

STATE_TENSORS, STATE_JSON = "trainer_state.safetensors", "trainer_state.json"


def trainable_state(model: MetaModel) -> dict[str, torch.Tensor]:
    """Copies of what meta-training changes: LoRA factors, fine-tuned layers or layer mix, and the
    learned inner loop."""
    finetune = getattr(model, "finetune", False)
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()
            if "lora_" in k or k.startswith(("inner.", "layer_mix")) or (finetune and k.startswith("layers."))}


def save_state(out: Path, model: MetaModel, best: dict, optimiser: torch.optim.Optimizer, info: dict) -> None:
    """Write both state files (overwriting the previous ones)."""
    tensors = {f"model.{k}": v.contiguous() for k, v in trainable_state(model).items()}
    tensors.update({f"best.{k}": v for k, v in best.items()})
    groups = optimiser.state_dict()
    for index, state in groups["state"].items():
        for key, value in state.items():
            tensors[f"opt.{index}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    save_file(tensors, str(out / STATE_TENSORS))
    (out / STATE_JSON).write_text(json.dumps({**info, "param_groups": groups["param_groups"]}, indent=1))


def load_state(out: Path, model: MetaModel, optimiser: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Restore ``model`` and ``optimiser`` in place; return the best tensors and the JSON info."""
    tensors, info = load_file(str(out / STATE_TENSORS)), json.loads((out / STATE_JSON).read_text())
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=False)
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    optimiser.load_state_dict({"state": state, "param_groups": info.pop("param_groups")})
    return {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}, info
