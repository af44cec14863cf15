"""Meta-trained checkpoints: a directory with ``manifest.json`` and optional tensors.

- ``manifest.json``: base encoder name and weights sha256, training data, algorithm,
  hyperparameters, the learned inner loop (``inner_loop``), evaluation figures.
- ``encoder.safetensors`` (optional): parameters that replace the base encoder's
  (merged low-rank updates or fine-tuned top layers), by their state-dict names.

The setting ``none`` means the bare encoder with default inner-loop settings, and
``default`` the checkpoint shipped in ``models/checkpoints/default`` when present.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file

from models.encoder import TransformerEncoder
from models.inner_loop import InnerLoopConfig

SHIPPED_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "default"


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    manifest: dict
    inner_loop: InnerLoopConfig
    encoder_weights: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """Identifies the encoder change this checkpoint makes (adapters depend on it)."""
        weights = self.path / "encoder.safetensors"
        if not weights.is_file():
            return "bare"
        return hashlib.sha256(weights.read_bytes()).hexdigest()[:16]


def load_checkpoint(path: str | Path) -> Checkpoint:
    path = Path(path)
    manifest_file = path / "manifest.json"
    if not manifest_file.is_file():
        raise FileNotFoundError(f"no manifest.json in checkpoint {path}")
    manifest = json.loads(manifest_file.read_text())
    weights_file = path / "encoder.safetensors"
    weights = load_file(weights_file) if weights_file.is_file() else {}
    return Checkpoint(path, manifest, InnerLoopConfig.from_dict(manifest.get("inner_loop", {})), weights)


def resolve_checkpoint(setting: str | None) -> Checkpoint | None:
    """``none`` -> None; ``default`` -> the shipped checkpoint if any; else a path."""
    if setting is None or setting.lower() == "none":
        return None
    if setting.lower() == "default":
        return load_checkpoint(SHIPPED_CHECKPOINT) if (SHIPPED_CHECKPOINT / "manifest.json").is_file() else None
    return load_checkpoint(setting)


def build_encoder(
    encoder_dir: str | None, checkpoint: Checkpoint | None, device: str = "auto", batch_size: int = 64
) -> TransformerEncoder:
    """The base encoder with the checkpoint's weight changes applied."""
    return TransformerEncoder(
        encoder_dir,
        device=device,
        batch_size=batch_size,
        weight_overrides=checkpoint.encoder_weights if checkpoint else None,
        fingerprint_extra=checkpoint.fingerprint if checkpoint else "bare",
    )
