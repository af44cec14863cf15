"""The ``fewshot meta-train`` and ``fewshot evaluate`` commands, end to end on a tiny model."""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import replace
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from app.cli import build_parser, main
from tests.models.meta_helpers import tiny_bert_dir, toy_dataset_dir

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None  # optional extra [meta]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("meta-cli")
    return {
        "encoder": tiny_bert_dir(root / "encoder"),
        "alpha": toy_dataset_dir(root / "data" / "alpha", classes=6, seed=0, prefix="a"),
        "beta": toy_dataset_dir(root / "data" / "beta", classes=5, seed=10, prefix="b"),
        "root": root,
    }


def _meta_train(tiny: dict[str, Path], out: Path, *extra: str) -> int:
    return main([
        "meta-train", "--train-data", str(tiny["alpha"]), "--out", str(out), "--encoder-dir", str(tiny["encoder"]),
        "--encoder-name", "tiny", "--cache-dir", str(tiny["root"] / "cache"), "--device", "cpu", "--no-progress",
        "--episodes", "4", "--meta-batch", "2", "--ways", "3", "--shots", "2", "--queries", "2", "--lora-layers", "1",
        "--val-every", "1", "--val-episodes", "1", "--calibrate-steps", "3", "--calibrate-episodes", "2",
        "--calibrate-ways", "3", "--inner-steps", "3", *extra,
    ])


def test_parser_knows_the_commands() -> None:
    args = build_parser().parse_args(["meta-train", "--train-data", "a", "--train-data", "b", "--out", "o", "--algorithm",
                                      "reptile", "--search", "tpe", "--trials", "3", "--early-stopping-patience", "2"])
    assert args.train_data == ["a", "b"] and args.algorithm == "reptile" and args.search == "tpe" and args.trials == 3
    args = build_parser().parse_args(["evaluate", "--data", "d", "--checkpoint", "x", "--checkpoint", "none", "--shots", "5"])
    assert args.checkpoint == ["x", "none"] and args.shots == [5] and args.episodes == 200


def test_cli_module_does_not_import_torch() -> None:
    """``fewshot serve`` must start fast: the training stack is imported inside the commands."""
    code = "import sys, app.cli; print(any(m in sys.modules for m in ('torch', 'optuna', 'matplotlib', 'models.meta')))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


@pytest.mark.parametrize("algorithm", ["fomaml", "metasgd"])
def test_meta_train_then_evaluate_on_another_data_set(tiny: dict[str, Path], tmp_path: Path, algorithm: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ckpt"
    assert _meta_train(tiny, out, "--algorithm", algorithm) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["algorithm"] == algorithm and manifest["trained_on"][0]["name"] == "alpha"
    assert manifest["base_encoder"] == "tiny" and len(manifest["base_encoder_sha256"]) == 64
    assert {"steps", "learning_rate", "proximal", "scale"} <= set(manifest["inner_loop"])
    assert (out / "metrics.json").is_file()
    assert (out / "learning_curve.png").is_file() == HAS_MATPLOTLIB  # without the [meta] extra: a warning, no file
    if algorithm == "metasgd":
        assert not (out / "encoder.safetensors").exists()  # the encoder is untouched
    results = tmp_path / "eval"
    code = main(["evaluate", "--data", str(tiny["beta"]), "--checkpoint", str(out), "--episodes", "5", "--ways", "3",
                 "--queries", "2", "--out", str(results), "--encoder-dir", str(tiny["encoder"]), "--device", "cpu",
                 "--cache-dir", str(tiny["root"] / "cache"), "--no-progress"])
    assert code == 0
    assert "beta" not in json.loads((out / "manifest.json").read_text()).get("evaluation", {})  # recording is opt-in
    table = (results / "results.md").read_text()
    assert "bare" in table and "ckpt" in table and "fixed 5-shot" in table
    figures = json.loads((results / "results.json").read_text())["results"]
    assert [row["name"] for row in figures] == ["bare", "ckpt"]
    assert figures[0]["episodes"]["5"]["n"] == 5 and 0 <= figures[1]["fixed"]["10"] <= 1
    assert (results / "results.png").is_file() == HAS_MATPLOTLIB
    code = main(["evaluate", "--data", str(tiny["beta"]), "--checkpoint", str(out), "--episodes", "5", "--ways", "3",
                 "--queries", "2", "--out", str(results), "--encoder-dir", str(tiny["encoder"]), "--device", "cpu",
                 "--cache-dir", str(tiny["root"] / "cache"), "--no-progress", "--record"])
    assert code == 0 and "beta" in json.loads((out / "manifest.json").read_text())["evaluation"]


def test_resume_flag_continues_a_run(tiny: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "ckpt"
    assert _meta_train(tiny, out, "--algorithm", "protonet", "--no-calibrate", "--keep-trainer-state") == 0
    first = json.loads((out / "metrics.json").read_text())["history"]
    assert (out / "trainer_state.safetensors").is_file()
    assert _meta_train(tiny, out, "--algorithm", "protonet", "--no-calibrate", "--episodes", "8", "--resume") == 0
    assert not (out / "trainer_state.safetensors").exists()  # a finished run leaves only the checkpoint
    history = json.loads((out / "metrics.json").read_text())["history"]
    assert history[: len(first)] == first and history[-1]["step"] == 4


class _Trial:
    """Stands in for an Optuna trial: the first choice of each categorical, the low end of each range."""

    def __init__(self) -> None:
        self.params: dict[str, object] = {}

    def suggest_categorical(self, name: str, choices: list) -> object:
        self.params[name] = choices[0]
        return choices[0]

    def suggest_float(self, name: str, low: float, high: float, log: bool = False) -> float:
        self.params[name] = low
        return low


def test_search_samples_only_what_was_not_given() -> None:
    """(Needs no Optuna: the trial is a stand-in.)"""
    from models.meta.search import SEARCHED, suggest
    from models.meta.trainer import MetaTrainConfig

    base = MetaTrainConfig(algorithm="protonet", learning_rate=0.123, ways=7,
                           inner_loop={"steps": 3, "learning_rate": 0.5, "proximal": 0.2, "scale": 9.0})
    trial = _Trial()
    config = suggest(trial, base, fixed=frozenset({"learning_rate", "ways", "inner_steps"}))
    assert (config.learning_rate, config.ways, config.inner_loop["steps"], config.calibrate_steps) == (0.123, 7, 3, (3,))
    assert set(trial.params) == {"inner_learning_rate", "inner_proximal", "inner_scale", "lora_rank", "episode_mode"}
    assert config.inner_loop["learning_rate"] == 1e-3 and config.lora_rank == 4 and config.episode_mode == "uniform"
    everything = _Trial()
    suggest(everything, replace(base, algorithm="reptile"))
    assert set(everything.params) == set(SEARCHED) - {"calibrate_ways"}


def test_search_keeps_the_best_trial(tiny: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    out = tmp_path / "searched"
    assert _meta_train(tiny, out, "--algorithm", "metasgd", "--search", "random", "--trials", "2") == 0
    record = json.loads((out / "search.json").read_text())
    assert len(record["trials"]) == 2 and record["best_score"] == max(t["score"] for t in record["trials"])
    # options given on the command line are kept, not sampled: _meta_train sets --inner-steps, --calibrate-ways, --ways
    assert record["fixed"] == ["calibrate_ways", "inner_steps", "ways"]
    assert all(set(t["params"]) == {"inner_learning_rate", "inner_proximal", "inner_scale"} for t in record["trials"])
    assert json.loads((out / "manifest.json").read_text())["hyperparameters"]["calibrate_ways"] == 3
    assert json.loads((out / "manifest.json").read_text())["search"]["sampler"] == "random"


def _leaky_checkpoint(path: Path, name: str, data_dir: Path, sha: str | None = None) -> Path:
    path.mkdir(parents=True)
    splits = {"train": {"split": "train", "sha256": sha or "f" * 64}}
    (path / "manifest.json").write_text(json.dumps({"trained_on": [{"name": name, "path": str(data_dir), "splits": splits}]}))
    return path


def test_evaluate_refuses_a_data_set_the_checkpoint_was_trained_on(tiny: dict[str, Path], tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from models.meta.data import file_sha256

    by_name = _leaky_checkpoint(tmp_path / "by-name", "alpha", tmp_path / "elsewhere")
    assert main(["evaluate", "--data", str(tiny["alpha"]), "--checkpoint", str(by_name), "--no-record"]) == 2
    assert "leak" in capsys.readouterr().err
    # a renamed copy is caught by the files' sha256
    copy = tmp_path / "renamed"
    copy.mkdir()
    (copy / "train.jsonl").write_bytes((tiny["alpha"] / "train.jsonl").read_bytes())
    by_hash = _leaky_checkpoint(tmp_path / "by-hash", "alpha", tiny["alpha"], file_sha256(tiny["alpha"] / "train.jsonl"))
    assert main(["evaluate", "--data", str(copy), "--checkpoint", str(by_hash), "--no-record"]) == 2
    assert "meta-trained on 'alpha'" in capsys.readouterr().err


def test_evaluate_in_distribution_needs_a_run_that_left_out_the_fixed_splits(
        tiny: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--in-distribution`` evaluates a checkpoint on a data set it trained on only when its
    fixed few-shot rows were excluded from training; it still refuses one trained with them."""
    with_rows = _leaky_checkpoint(tmp_path / "with-rows", "alpha", tiny["alpha"])
    assert main(["evaluate", "--data", str(tiny["alpha"]), "--checkpoint", str(with_rows), "--no-record",
                 "--in-distribution", "--no-progress", "--episodes", "2", "--ways", "3", "--out", str(tmp_path / "a")]) == 2
    assert "--exclude-fixed-splits" in capsys.readouterr().err
    trained = tmp_path / "excluded"
    assert _meta_train(tiny, trained, "--algorithm", "protonet", "--exclude-fixed-splits", "--no-calibrate") == 0
    out = tmp_path / "eval"
    args = ["evaluate", "--data", str(tiny["alpha"]), "--checkpoint", str(trained), "--no-record", "--no-progress",
            "--episodes", "2", "--ways", "3", "--queries", "2", "--out", str(out), "--encoder-dir", str(tiny["encoder"]),
            "--device", "cpu", "--cache-dir", str(tiny["root"] / "cache")]
    assert main(args) == 2  # held out by default: refused
    assert main([*args, "--in-distribution"]) == 0
    assert json.loads((out / "results.json").read_text())["in_distribution"] is True


def test_meta_train_a_layer_mix_then_evaluate(tiny: dict[str, Path], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """``--layer-mix``: the encoder stays frozen, the mix goes in the manifest, evaluate serves it."""
    unchanged = tmp_path / "unchanged"
    assert _meta_train(tiny, unchanged, "--algorithm", "protonet", "--layer-mix", "--lr", "0.5", "--no-calibrate") == 0
    manifest = json.loads((unchanged / "manifest.json").read_text())
    # the toy data's last layer already wins meta-validation: nothing is changed, nothing recorded
    assert manifest["meta_validation"]["best_step"] == 0 and "layer_mix" not in manifest
    # A run whose trained mix wins (made so here: a known mix, reported as the best step)
    import models.meta.trainer

    train = models.meta.trainer.meta_train

    def winning(config, datasets, model, out, **kwargs):  # noqa: ANN001, ANN003, ANN202
        metrics = train(config, datasets, model, out, **kwargs)
        with torch.no_grad():
            model.layer_mix_logits.copy_(torch.tensor([0.0, -9.0, -0.5, 0.0]).log1p().nan_to_num(-9.0))
        return {**metrics, "best_step": 1}

    monkeypatch.setattr(models.meta.trainer, "meta_train", winning)
    out = tmp_path / "mix"
    assert _meta_train(tiny, out, "--algorithm", "protonet", "--layer-mix", "--lr", "0.5", "--no-calibrate") == 0
    monkeypatch.setattr(models.meta.trainer, "meta_train", train)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["hyperparameters"]["layer_mix"] is True and not (out / "encoder.safetensors").exists()
    weights = manifest["layer_mix"]["weights"]
    assert len(weights) == 4 and max(weights) == 1.0 and weights[0] == 1.0 and weights[1] < 1e-3
    results = tmp_path / "eval"
    assert main(["evaluate", "--data", str(tiny["beta"]), "--checkpoint", str(out), "--episodes", "3", "--ways", "3",
                 "--queries", "2", "--out", str(results), "--encoder-dir", str(tiny["encoder"]), "--device", "cpu",
                 "--cache-dir", str(tiny["root"] / "cache"), "--no-progress", "--no-record"]) == 0
    figures = json.loads((results / "results.json").read_text())["results"]
    assert [row["name"] for row in figures] == ["bare", "mix"]
    from models.checkpoint import load_checkpoint

    assert list(load_checkpoint(out).layer_mix) == pytest.approx(weights)  # what evaluate and the server mix with
    # "default" means the shipped checkpoint, as for the server (here: this one), with all classes per episode
    import models.checkpoint

    monkeypatch.setattr(models.checkpoint, "SHIPPED_CHECKPOINT", out)
    assert main(["evaluate", "--data", str(tiny["beta"]), "--checkpoint", "default", "--episodes", "2", "--ways", "0",
                 "--queries", "2", "--shots", "2", "--out", str(results), "--encoder-dir", str(tiny["encoder"]),
                 "--device", "cpu", "--cache-dir", str(tiny["root"] / "cache"), "--no-progress"]) == 0
    assert [row["name"] for row in json.loads((results / "results.json").read_text())["results"]] == ["bare", "default"]
    assert "all-class 2-shot episodes" in (results / "results.md").read_text()
    monkeypatch.setattr(models.checkpoint, "SHIPPED_CHECKPOINT", tmp_path / "nothing-shipped")
    assert main(["evaluate", "--data", str(tiny["beta"]), "--checkpoint", "default", "--no-progress"]) == 2


def test_exclude_fixed_splits_trains_without_the_benchmark_support_sets(tiny: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "ckpt"
    assert _meta_train(tiny, out, "--algorithm", "protonet", "--exclude-fixed-splits", "--oos-weight", "1.0",
                       "--select-on", "accuracy+oos", "--no-calibrate") == 0
    trained = json.loads((out / "manifest.json").read_text())["trained_on"][0]
    # toy_dataset_dir: train_10 holds the first 10 of each class's 14 training rows (train_5 is inside it)
    assert trained["excluded_fixed_splits"] == {"splits": ["train_10.jsonl", "train_5.jsonl"], "rows": 6 * 10}
    assert trained["splits"]["train"]["rows"] == 6 * 4
    history = json.loads((out / "metrics.json").read_text())["history"]
    first = history[0]["val"]
    assert 0 <= first["oos_auroc"] <= 1 and first["mean"] == pytest.approx(first["alpha"] + first["oos_auroc"])


def test_select_on_real_out_of_scope_validation_texts(tiny: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    data = tmp_path / "alpha-oos"
    shutil.copytree(tiny["alpha"], data)
    (data / "oos_valid.jsonl").write_text("".join(json.dumps({"text": f"w{40 + i} w{50 + i} w{45 + i}", "label": "oos"}) + "\n"
                                                  for i in range(8)))
    (data / "oos_train.jsonl").write_text("".join(json.dumps({"text": f"w{30 + i} w{55 + i}", "label": "oos"}) + "\n"
                                                  for i in range(3)))
    out = tmp_path / "ckpt"
    code = main(["meta-train", "--train-data", str(data), "--out", str(out), "--encoder-dir", str(tiny["encoder"]),
                 "--encoder-name", "tiny", "--cache-dir", str(tiny["root"] / "cache"), "--device", "cpu", "--no-progress",
                 "--episodes", "2", "--meta-batch", "2", "--ways", "3", "--shots", "2", "--queries", "2", "--lora-layers", "1",
                 "--val-every", "1", "--val-episodes", "1", "--inner-steps", "3", "--algorithm", "protonet",
                 "--select-on", "accuracy+oos", "--no-calibrate"])
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    splits = manifest["trained_on"][0]["splits"]
    assert [s["rows"] for s in splits["valid_out_of_scope"]] == [8, 3] and splits["valid"]["rows"] == 6 * 12
    assert "out-of-scope AUROC" in manifest["meta_validation"]["score"]
    first = json.loads((out / "metrics.json").read_text())["history"][0]["val"]
    assert 0 <= first["alpha-oos/oos_auroc"] <= 1 and first["mean"] == pytest.approx(first["alpha-oos"] + first["oos_auroc"])
    # Such a checkpoint evaluates on another data set (its manifest lists the out-of-scope
    # files, which the leakage check reads too) and is refused on its own.
    evaluate = ["evaluate", "--checkpoint", str(out), "--episodes", "2", "--ways", "3", "--queries", "2",
                "--encoder-dir", str(tiny["encoder"]), "--device", "cpu", "--cache-dir", str(tiny["root"] / "cache"),
                "--no-progress"]
    assert main([*evaluate, "--data", str(tiny["beta"]), "--out", str(tmp_path / "eval")]) == 0
    renamed = tmp_path / "renamed"
    renamed.mkdir()
    shutil.copy(data / "oos_valid.jsonl", renamed / "oos_valid.jsonl")
    shutil.copy(tiny["beta"] / "train.jsonl", renamed / "train.jsonl")
    shutil.copy(tiny["beta"] / "test.jsonl", renamed / "test.jsonl")
    assert main([*evaluate, "--data", str(renamed), "--out", str(tmp_path / "eval2")]) == 2  # oos_valid's sha256


def test_unusable_input_is_one_line_and_exit_2(tiny: dict[str, Path], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--data", str(tmp_path / "nope"), "--no-progress"]) == 2
    assert main(["meta-train", "--train-data", str(tmp_path / "nope"), "--out", str(tmp_path / "o"),
                 "--encoder-dir", str(tiny["encoder"]), "--device", "cpu", "--no-progress"]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2 and all(line.startswith("error: ") and "nope" in line for line in errors)
    assert not (tmp_path / "o").exists()  # no empty checkpoint folder left behind
    with pytest.raises(SystemExit):  # argparse refuses a budget of zero before anything runs
        main(["evaluate", "--data", str(tiny["beta"]), "--episodes", "0"])


def _half_copy(encoder: Path, to: Path) -> Path:
    """The encoder directory with its float weights rounded to fp16 (what a GPU machine may carry)."""
    import shutil

    from safetensors.torch import load_file, save_file

    shutil.copytree(encoder, to)
    for file in to.glob("*.safetensors"):
        tensors = load_file(str(file))
        save_file({k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}, str(file))
    return to


def test_rebase_checkpoint_from_an_fp16_copy_onto_the_original(tiny: dict[str, Path], tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from models.checkpoint import build_encoder, load_checkpoint
    from models.encoder import weights_sha256

    half = _half_copy(tiny["encoder"], tmp_path / "half")
    out = tmp_path / "ckpt"
    assert main(["meta-train", "--train-data", str(tiny["alpha"]), "--out", str(out), "--encoder-dir", str(half),
                 "--encoder-name", "tiny", "--cache-dir", str(tmp_path / "cache"), "--device", "cpu", "--no-progress",
                 "--episodes", "2", "--meta-batch", "1", "--ways", "3", "--shots", "2", "--queries", "2",
                 "--lora-layers", "1", "--val-every", "1", "--val-episodes", "1", "--inner-steps", "3",
                 "--algorithm", "protonet", "--no-calibrate"]) == 0
    assert load_checkpoint(out).manifest["base_encoder_sha256"] == weights_sha256(half)
    other = _half_copy(tiny["encoder"], tmp_path / "other")  # a copy that is not a rounding of the original
    from safetensors.torch import load_file, save_file

    for file in other.glob("*.safetensors"):
        tensors = load_file(str(file))
        save_file({k: v + 1 if v.is_floating_point() else v for k, v in tensors.items()}, str(file))
    assert main(["rebase-checkpoint", str(out), "--trained-on", str(half), "--onto", str(other)]) == 2
    assert "is not" in capsys.readouterr().err

    assert main(["rebase-checkpoint", str(out), "--trained-on", str(half), "--onto", str(tiny["encoder"])]) == 0
    rebased = load_checkpoint(out)
    assert rebased.manifest["rebased"]["tensors_checked"] > 0 and "torch.float16" in rebased.manifest["rebased"]["dtypes"]
    assert rebased.manifest["base_encoder_sha256"] == weights_sha256(tiny["encoder"])
    build_encoder(str(tiny["encoder"]), rebased, device="cpu")  # accepted on the original weights
    assert main(["rebase-checkpoint", str(out), "--trained-on", str(half), "--onto", str(tiny["encoder"])]) == 2  # already done


def test_finetune_selected_on_a_held_out_set_then_evaluated_on_it(tiny: dict[str, Path], tmp_path: Path) -> None:
    """--finetune writes the top layers' weights; --val-data selects on a set that stays fair to evaluate on."""
    out = tmp_path / "ckpt"
    assert _meta_train(tiny, out, "--finetune", "--l2-sp", "0.01", "--lr", "0.05", "--val-data", str(tiny["beta"]),
                       "--episodes", "8", "--early-stopping-patience", "100") == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["selected_on"][0]["name"] == "beta" and [d["name"] for d in manifest["trained_on"]] == ["alpha"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert all(set(row["val"]) == {"beta", "mean"} for row in metrics["history"])
    if metrics["best_step"] > 0:
        assert manifest["finetuned_layers"] == [2] and "lora" not in manifest
        assert (out / "encoder.safetensors").is_file()
    code = main(["evaluate", "--data", str(tiny["beta"]), "--checkpoint", str(out), "--episodes", "3", "--ways", "3",
                 "--queries", "2", "--out", str(tmp_path / "eval"), "--encoder-dir", str(tiny["encoder"]), "--device", "cpu",
                 "--cache-dir", str(tiny["root"] / "cache"), "--no-progress"])
    assert code == 0  # selected on beta's valid split, never trained on beta: not a leak


def test_torchrun_two_processes_train_one_checkpoint(tiny: dict[str, Path], tmp_path: Path) -> None:
    """Two gloo processes under torchrun share the episodes of each step and write one checkpoint."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(port), "-m", "app.cli",
               "meta-train", "--train-data", str(tiny["alpha"]), "--out", str(out), "--encoder-dir", str(tiny["encoder"]),
               "--encoder-name", "tiny", "--cache-dir", str(tmp_path / "cache"), "--device", "cpu", "--no-progress",
               "--episodes", "8", "--meta-batch", "2", "--ways", "3", "--shots", "2", "--queries", "2", "--lora-layers", "1",
               "--val-every", "1", "--val-episodes", "1", "--no-calibrate", "--finetune", "--lr", "0.05",
               "--early-stopping-patience", "100"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["processes"] == 2 and metrics["trained_episodes"] == 8
    assert [row["step"] for row in metrics["history"]] == [0, 1, 2]  # 8 episodes = 2 steps of 2 x 2 episodes
    assert run.stdout.count("checkpoint written") == 1
