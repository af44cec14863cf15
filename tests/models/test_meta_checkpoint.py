"""Checkpoints with LoRA factors: save/load round trip, merged at load, same embeddings as training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from models.checkpoint import build_encoder, load_checkpoint, save_checkpoint
from models.encoder import TransformerEncoder, weights_sha256
from models.inner_loop import InnerLoopConfig
from models.meta.features import cached_token_states
from models.meta.model import MetaModel
from tests.models.meta_helpers import tiny_bert_dir, toy_rows


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bert_dir(tmp_path_factory.mktemp("tiny-bert"))


def _trained_model(tiny_dir: Path) -> tuple[MetaModel, TransformerEncoder]:
    encoder = TransformerEncoder(tiny_dir, device="cpu")
    model = MetaModel(encoder.model.encoder.layer[1:], 1, InnerLoopConfig(steps=7), rank=2, alpha=4.0)
    with torch.no_grad():
        for parameter in model.encoder_parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    return model, encoder


def test_round_trip_and_merged_encoder_matches_training(tiny_dir: Path, tmp_path: Path) -> None:
    model, encoder = _trained_model(tiny_dir)
    manifest = {"base_encoder": "tiny", "inner_loop": {"steps": 7, "scale": 12.5}, "lora": model.lora_manifest()}
    path = save_checkpoint(tmp_path / "ckpt", manifest, model.encoder_tensors())
    checkpoint = load_checkpoint(path)
    assert checkpoint.encoder_weights == {} and len(checkpoint.lora_factors) == 2 * 6 * 2
    assert checkpoint.lora_scaling == 2.0 and checkpoint.inner_loop == InnerLoopConfig(steps=7, scale=12.5)
    assert checkpoint.changed_parameters()[0].startswith("encoder.layer.1.")
    assert json.loads((path / "manifest.json").read_text())["lora"]["rank"] == 2
    served = build_encoder(str(tiny_dir), checkpoint, device="cpu")
    texts = [r.text for r in toy_rows(3, 3)]
    states = cached_token_states(encoder.model, encoder.tokenizer, texts, 1, weights_sha256(tiny_dir), None)
    with torch.no_grad():
        trained = model.embed(states, list(range(len(texts))))
    assert torch.allclose(served.encode(texts), trained, atol=1e-5)
    assert not torch.allclose(encoder.encode(texts), trained, atol=1e-3)
    assert served.fingerprint != encoder.fingerprint


def test_scaling_is_part_of_the_fingerprint_and_required(tiny_dir: Path, tmp_path: Path) -> None:
    model, _ = _trained_model(tiny_dir)
    tensors = model.encoder_tensors()
    a = load_checkpoint(save_checkpoint(tmp_path / "a", {"lora": {"scaling": 1.0}}, tensors))
    b = load_checkpoint(save_checkpoint(tmp_path / "b", {"lora": {"scaling": 2.0}}, tensors))
    assert a.fingerprint != b.fingerprint
    save_checkpoint(tmp_path / "c", {}, tensors)
    with pytest.raises(ValueError, match="scaling"):
        load_checkpoint(tmp_path / "c")


def test_manifest_only_checkpoint_removes_stale_weights(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "d", {}, {"x.weight": torch.zeros(1)})
    save_checkpoint(tmp_path / "d", {"inner_loop": {"steps": 3}})
    checkpoint = load_checkpoint(tmp_path / "d")
    assert checkpoint.fingerprint == "bare" and checkpoint.inner_loop.steps == 3
    assert not list((tmp_path / "d").glob("*.safetensors"))


def test_weights_for_another_base_encoder_are_refused(tiny_dir: Path, tmp_path: Path) -> None:
    model, _ = _trained_model(tiny_dir)
    manifest = {"lora": model.lora_manifest(), "base_encoder_sha256": "0" * 64}
    checkpoint = load_checkpoint(save_checkpoint(tmp_path / "other", manifest, model.encoder_tensors()))
    with pytest.raises(ValueError, match="base encoder"):
        build_encoder(str(tiny_dir), checkpoint, device="cpu")
