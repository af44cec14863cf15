"""The outer loop: deterministic, resumable, early-stopped, writes a loadable checkpoint."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from models.checkpoint import load_checkpoint
from models.inner_loop import InnerLoopConfig
from models.meta.data import MetaDataset
from models.meta.model import MetaModel
from models.meta.report import build_manifest, write_run
from models.meta.trainer import MetaTrainConfig, meta_train
from tests.models.meta_helpers import tiny_layers, toy_rows, toy_states

CONFIG = MetaTrainConfig(
    algorithm="protonet", episodes=8, meta_batch=2, ways=3, shots=(2,), queries=2, episode_mode="hard", learning_rate=0.01,
    lora_rank=2, val_every=2, val_episodes=1, val_shots=(2,), patience=10, calibrate=False,
    calibrate_steps=(2, 4), calibrate_episodes=3, calibrate_ways=3, inner_loop={"steps": 3, "learning_rate": 0.05},
)


def _data() -> list[MetaDataset]:
    train, valid = toy_rows(5, 8, seed=0), toy_rows(5, 6, seed=1)
    return [MetaDataset("toy", train, toy_states(train, seed=0, signal=0.2), valid, toy_states(valid, seed=1, signal=0.2),
                        {"name": "toy", "path": "/nowhere/toy", "splits": {"train": {"sha256": "abc"}}})]


def _model(config: MetaTrainConfig) -> MetaModel:
    rank = 0 if config.algorithm == "metasgd" else config.lora_rank
    return MetaModel(tiny_layers(1), 2, InnerLoopConfig.from_dict(config.inner_loop), rank=rank, alpha=4.0,
                     learn_inner=config.algorithm in ("maml-head", "metasgd"))


def _weights(model: MetaModel) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if "lora_" in k or k.startswith("inner.")}


def test_same_seed_same_result(tmp_path: Path) -> None:
    a, b = _model(CONFIG), _model(CONFIG)
    metrics_a = meta_train(CONFIG, _data(), a, tmp_path / "a", progress=False)
    metrics_b = meta_train(CONFIG, _data(), b, tmp_path / "b", progress=False)
    assert [r["val"] for r in metrics_a["history"]] == [r["val"] for r in metrics_b["history"]]
    assert all(torch.equal(x, y) for x, y in zip(_weights(a).values(), _weights(b).values()))
    assert [r["step"] for r in metrics_a["history"]] == [0, 2, 4]  # step 0, then every 2 outer steps


def test_resume_continues_where_it_stopped(tmp_path: Path) -> None:
    no_early = replace(CONFIG, patience=100)
    straight = _model(no_early)
    full = meta_train(no_early, _data(), straight, tmp_path / "straight", progress=False)
    first = meta_train(replace(no_early, episodes=4), _data(), _model(no_early), tmp_path / "resumed", progress=False)
    assert first["history"][-1]["step"] == 2
    resumed_model = _model(no_early)
    resumed = meta_train(no_early, _data(), resumed_model, tmp_path / "resumed", resume=True, progress=False)
    assert [r["step"] for r in resumed["history"]] == [r["step"] for r in full["history"]]
    assert [r["val"]["mean"] for r in resumed["history"]] == pytest.approx([r["val"]["mean"] for r in full["history"]])
    assert all(torch.allclose(x, y, atol=1e-6) for x, y in zip(_weights(resumed_model).values(), _weights(straight).values()))


def test_early_stopping_and_best_state(tmp_path: Path) -> None:
    config = replace(CONFIG, episodes=40, val_every=1, patience=0, learning_rate=0.5)  # a wild learning rate
    model = _model(config)
    metrics = meta_train(config, _data(), model, tmp_path / "es", progress=False)
    assert metrics["stopped"] == "early stopping"
    assert metrics["best_val"] == max(r["val"]["mean"] for r in metrics["history"])


def test_calibration_keeps_the_out_of_scope_selection(tmp_path: Path) -> None:
    """With ``select_on="accuracy+oos"`` the calibration table (and ``final_val``, the
    search objective) scores candidates the way training's validation did."""
    config = replace(CONFIG, algorithm="metasgd", episodes=4, calibrate=True, select_on="accuracy+oos")
    metrics = meta_train(config, _data(), _model(config), tmp_path / "run", progress=False)
    assert all("oos_auroc" in row for row in metrics["calibration"])
    assert all(row["mean"] == pytest.approx(row["toy"] + row["oos_auroc"]) for row in metrics["calibration"])


@pytest.mark.parametrize("algorithm", ["metasgd", "maml-head"])
def test_calibration_and_checkpoint_files(tmp_path: Path, algorithm: str) -> None:
    config = replace(CONFIG, algorithm=algorithm, episodes=4, calibrate=True)
    model = _model(config)
    metrics = meta_train(config, _data(), model, tmp_path / "run", progress=False)
    assert {row["candidate"] for row in metrics["calibration"]} == {"start", "steps=2", "steps=4"}
    assert metrics["final_val"] == max(row["mean"] for row in metrics["calibration"])
    changed = model.trains_encoder and metrics["best_step"] > 0
    manifest = build_manifest(base_encoder="tiny", base_sha256="0" * 64, datasets=[_data()[0].provenance], algorithm=algorithm,
                              hyperparameters={}, inner_loop=metrics["inner_loop"], lora=model.lora_manifest() if changed else None,
                              metrics=metrics, max_length=32)
    write_run(tmp_path / "ckpt", manifest, metrics, model.encoder_tensors() if changed else None)
    checkpoint = load_checkpoint(tmp_path / "ckpt")
    assert checkpoint.inner_loop == InnerLoopConfig.from_dict(metrics["inner_loop"])
    assert checkpoint.manifest["trained_on"][0]["name"] == "toy" and checkpoint.manifest["git_commit"]
    curve = tmp_path / "ckpt" / "learning_curve.png"
    if importlib.util.find_spec("matplotlib"):  # optional extra [meta]
        assert curve.stat().st_size > 1000
    else:  # documented: a warning and no picture
        assert not curve.exists()
    assert json.loads((tmp_path / "ckpt" / "metrics.json").read_text())["config"]["algorithm"] == algorithm


def test_validation_scores_the_out_of_scope_auroc_of_held_out_classes() -> None:
    from models.episodes import EpisodeSampler
    from models.meta.validation import episode_oos_auroc, score, validation_sets

    data = _data()
    sets = validation_sets(data, (2,), 2, 4, seed=0)
    valid = data[0].valid_rows
    labels = sorted({r.label for r in valid})
    # well separated classes: a held-out class is far from every fitted one
    separated = torch.nn.functional.normalize(torch.eye(16)[[labels.index(r.label) for r in valid]] * 5
                                              + 0.05 * torch.randn(len(valid), 16, generator=torch.Generator().manual_seed(0)), dim=-1)
    episode = EpisodeSampler(valid, 4, 2, 3, seed=0).episode(0)
    assert episode_oos_auroc(separated, episode) > 0.95
    noise = torch.nn.functional.normalize(torch.randn(len(valid), 16, generator=torch.Generator().manual_seed(1)), dim=-1)
    assert episode_oos_auroc(noise, episode) < 0.9
    # real out-of-scope rows: far from every class (a direction no class uses), or drawn like in-scope ones
    far = torch.nn.functional.normalize(torch.eye(16)[[15] * 6] + 0.05 * torch.randn(6, 16), dim=-1)
    alike = separated[:6]
    with_far, with_alike = torch.cat([separated, far]), torch.cat([separated, alike])
    oos_rows = list(range(len(valid), len(valid) + 6))
    assert episode_oos_auroc(with_far, episode, oos_rows) > 0.95
    assert episode_oos_auroc(with_alike, episode, oos_rows) < 0.9
    config = InnerLoopConfig.from_dict(CONFIG.inner_loop)
    plain, both = score({"toy": separated}, sets, config), score({"toy": separated}, sets, config, out_of_scope=True)
    assert "oos_auroc" not in plain and both["mean"] == pytest.approx(plain["mean"] + both["oos_auroc"])


def test_a_run_whose_meta_gradient_is_never_finite_stops_and_says_so(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Skipped steps (non-finite meta-gradient) are counted, and a run that could only skip
    stops instead of spending its budget with the encoder untouched."""
    import models.meta.trainer as trainer

    monkeypatch.setattr(trainer, "MAX_SKIPPED_IN_A_ROW", 3)
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda params, max_norm: torch.tensor(float("inf")))
    config = replace(CONFIG, episodes=40, patience=100)
    model = _model(config)
    before = _weights(model)
    metrics = meta_train(config, _data(), model, tmp_path / "run", progress=False)
    assert metrics["skipped_steps"] == 3 and metrics["trained_episodes"] == 3 * config.meta_batch
    assert metrics["stopped"].startswith("meta-gradient not finite")
    assert all(torch.equal(before[k], v) for k, v in _weights(model).items())
