"""Checkpoint directories: manifest, optional encoder weights, resolution of settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from models.checkpoint import SHIPPED_CHECKPOINT, load_checkpoint, resolve_checkpoint
from models.inner_loop import InnerLoopConfig


def _write(path: Path, inner_loop: dict, weights: dict[str, torch.Tensor] | None = None) -> Path:
    path.mkdir()
    (path / "manifest.json").write_text(json.dumps({"base_encoder": "x", "inner_loop": inner_loop}))
    if weights is not None:
        save_file(weights, str(path / "encoder.safetensors"))
    return path


def test_none_means_no_checkpoint() -> None:
    assert resolve_checkpoint("none") is None
    assert resolve_checkpoint("NONE") is None
    assert resolve_checkpoint(None) is None


def test_default_is_the_shipped_checkpoint_or_none() -> None:
    resolved = resolve_checkpoint("default")
    if (SHIPPED_CHECKPOINT / "manifest.json").is_file():
        assert resolved is not None and resolved.path == SHIPPED_CHECKPOINT
    else:
        assert resolved is None


def test_manifest_only_checkpoint_is_bare(tmp_path: Path) -> None:
    checkpoint = resolve_checkpoint(str(_write(tmp_path / "ckpt", {"steps": 9, "scale": 15.0, "unknown": 1})))
    assert checkpoint is not None
    assert checkpoint.inner_loop == InnerLoopConfig(steps=9, scale=15.0)
    assert checkpoint.encoder_weights == {} and checkpoint.fingerprint == "bare"


def test_weights_change_the_fingerprint(tmp_path: Path) -> None:
    a = load_checkpoint(_write(tmp_path / "a", {}, {"layer.weight": torch.zeros(2, 2)}))
    b = load_checkpoint(_write(tmp_path / "b", {}, {"layer.weight": torch.ones(2, 2)}))
    assert set(a.encoder_weights) == {"layer.weight"}
    assert a.fingerprint != b.fingerprint and len(a.fingerprint) == 16


def test_missing_manifest_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="manifest"):
        load_checkpoint(tmp_path)
