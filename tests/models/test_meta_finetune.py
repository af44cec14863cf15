"""Full fine-tuning of the top layers: L2-SP pull, selection on a held-out set, checkpoint round trip."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from models.checkpoint import load_checkpoint
from models.inner_loop import InnerLoopConfig
from models.meta.data import MetaDataset
from models.meta.model import MetaModel
from models.meta.report import build_manifest, write_run
from models.meta.state import trainable_state
from models.meta.trainer import MetaTrainConfig, meta_train
from tests.models.meta_helpers import tiny_layers, toy_rows, toy_states

CONFIG = MetaTrainConfig(
    algorithm="protonet", episodes=8, meta_batch=2, ways=3, shots=(2,), queries=2, episode_mode="uniform", learning_rate=0.01,
    finetune=True, val_every=2, val_episodes=1, val_shots=(2,), patience=10, calibrate=False,
    inner_loop={"steps": 3, "learning_rate": 0.05},
)


def _dataset(name: str, seed: int, prefix: str = "c") -> MetaDataset:
    train, valid = toy_rows(5, 8, seed=seed, prefix=prefix), toy_rows(5, 6, seed=seed + 1, prefix=prefix)
    return MetaDataset(name, train, toy_states(train, seed=seed, signal=0.2), valid, toy_states(valid, seed=seed + 1, signal=0.2),
                       {"name": name, "path": f"/nowhere/{name}", "splits": {}})


def _model() -> MetaModel:
    return MetaModel(tiny_layers(1), 2, InnerLoopConfig.from_dict(CONFIG.inner_loop), finetune=True)


def test_finetune_trains_every_weight_of_the_top_layers() -> None:
    model = _model()
    assert model.trains_encoder and not model.lora
    assert len(model.encoder_parameters()) == len(list(model.layers.parameters()))
    assert all(p.requires_grad for p in model.encoder_parameters())
    assert any(k.startswith("layers.") for k in trainable_state(model))


def test_l2_sp_pull_points_back_to_the_pretrained_weights() -> None:
    model = _model()
    parameter = model.encoder_parameters()[0]
    with torch.no_grad():
        parameter.add_(0.5)
    model.pull_to_start(0.1)
    assert torch.allclose(parameter.grad, torch.full_like(parameter, 2 * 0.1 * 0.5), atol=1e-6)
    model.pull_to_start(0.0)  # no strength, no change
    assert torch.allclose(parameter.grad, torch.full_like(parameter, 0.1), atol=1e-6)


def test_a_strong_pull_keeps_the_weights_closer(tmp_path: Path) -> None:
    def drift(strength: float) -> float:
        model = _model()
        meta_train(replace(CONFIG, l2_sp=strength, patience=100, val_every=100), [_dataset("toy", 0)], model,
                   tmp_path / f"run-{strength}", progress=False)
        return sum(float((p.detach() - model.start[n]).pow(2).sum()) for n, p in model.layers.named_parameters())

    assert drift(50.0) < drift(0.0)


def test_selection_uses_the_held_out_set_only(tmp_path: Path) -> None:
    metrics = meta_train(CONFIG, [_dataset("toy", 0)], _model(), tmp_path / "run", progress=False,
                         val_datasets=[_dataset("held-out", 5, prefix="h")])
    assert all(set(row["val"]) == {"held-out", "mean"} for row in metrics["history"])


def test_finetuned_checkpoint_replaces_the_top_layers(tmp_path: Path) -> None:
    model = _model()
    metrics = meta_train(replace(CONFIG, learning_rate=0.05), [_dataset("toy", 0)], model, tmp_path / "run", progress=False)
    tensors = model.encoder_tensors()
    assert tensors and all(name.startswith("encoder.layer.2.") for name in tensors)
    assert all(t.dtype == torch.float16 for t in tensors.values())
    manifest = build_manifest(base_encoder="tiny", base_sha256="0" * 64, datasets=[], algorithm="protonet",
                              hyperparameters={}, inner_loop=metrics["inner_loop"], lora=model.lora_manifest(),
                              metrics=metrics, max_length=32, finetuned_layers=[2],
                              selected_on=[{"name": "held-out"}])
    write_run(tmp_path / "ckpt", manifest, metrics, tensors)
    checkpoint = load_checkpoint(tmp_path / "ckpt")
    assert set(checkpoint.changed_parameters()) == set(tensors) and not checkpoint.lora_factors
    assert checkpoint.manifest["finetuned_layers"] == [2] and checkpoint.manifest["selected_on"][0]["name"] == "held-out"
    assert "lora" not in checkpoint.manifest
