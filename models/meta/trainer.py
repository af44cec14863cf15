"""The outer loop: episodes in, LoRA factors and inner-loop settings out.

Deterministic for a seed (episode ``i`` depends only on the seed and ``i``; the LoRA
init is seeded), resumable (model, best model and optimiser state are saved as
safetensors plus a JSON file at every meta-validation), early-stopped on
meta-validation accuracy (plus the out-of-scope AUROC with ``select_on="accuracy+oos"``),
time-boxed, with mixed precision (bf16 autocast) on CUDA.
"""

from __future__ import annotations

import math
import random
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from models.episodes import EpisodeSampler, class_prototypes
from models.meta.algorithms import make_algorithm
from models.meta.data import MetaDataset
from models.meta.distributed import average_gradients, rank_and_size
from models.meta.model import MetaModel
from models.meta.state import STATE_TENSORS, load_state, save_state, trainable_state
from models.meta.validation import calibrate_inner_loop, score, validation_sets



@dataclass
class MetaTrainConfig:
    algorithm: str = "protonet"
    episodes: int = 400  # training episodes in total (outer steps = episodes / meta_batch)
    meta_batch: int = 2
    ways: int = 20
    shots: tuple[int, ...] = (5, 10)
    queries: int = 5
    episode_mode: str = "hard"
    hard_pool: int = 2
    learning_rate: float = 5e-4  # outer learning rate of the LoRA factors
    inner_learning_rate: float = 0.01  # outer learning rate of the learned inner loop (maml-head)
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_layers: int = 2
    layer_mix: bool = False  # learn a mix of the frozen encoder's layers instead of LoRA (models.meta.layer_mix)
    finetune: bool = False  # train every weight of the top lora_layers layers instead of LoRA factors
    l2_sp: float = 0.0  # fine-tuning: strength of the pull toward the pretrained weights (MetaModel.pull_to_start)
    reptile_steps: int = 3
    reptile_lr: float = 1e-3
    oos_weight: float = 0.0  # > 0: held-out classes of each episode train out-of-scope ranking (models.meta.oos_loss)
    select_on: str = "accuracy"  # or "accuracy+oos": early stopping also counts the out-of-scope AUROC (models.meta.validation)
    val_every: int = 25  # outer steps between meta-validations
    val_episodes: int = 2  # per data set and shot count
    val_ways: int = 0  # 0: all classes of the valid split
    val_shots: tuple[int, ...] = (5, 10)
    patience: int = 4  # meta-validations without improvement before stopping
    max_minutes: float = 12.0
    seed: int = 0
    calibrate: bool = True
    calibrate_steps: tuple[int, ...] = (10, 25, 50, 100)
    calibrate_episodes: int = 60
    calibrate_ways: int = 40
    calibrate_per_class: int = 30
    inner_loop: dict = field(default_factory=dict)  # starting inner-loop settings


# Steps skipped for a non-finite meta-gradient before the run stops: second-order MAML
# through many inner steps can overflow float32 on every episode, and a run that only
# skipped would spend its whole budget without training.
MAX_SKIPPED_IN_A_ROW = 20


def _subset(rows: list, per_class: int, seed: int) -> list[int]:
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(row.label, []).append(i)
    rng = random.Random(seed)
    return sorted(i for idx in groups.values() for i in rng.sample(idx, min(per_class, len(idx))))


def meta_train(config: MetaTrainConfig, datasets: Sequence[MetaDataset], model: MetaModel, out: Path,
               resume: bool = False, progress: bool = True, device: torch.device | None = None,
               val_datasets: Sequence[MetaDataset] | None = None) -> dict:
    """Meta-train ``model`` in place (ending at its best meta-validation state) and return metrics.

    Episodes come from ``datasets``' train splits; meta-validation (early stopping, the
    inner-loop calibration) uses the valid splits of ``val_datasets`` when given (data sets
    the run does not train on, so that selection rewards what transfers), else ``datasets``'.
    """
    from tqdm.auto import tqdm

    device = device or torch.device("cpu")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    started = time.monotonic()
    algorithm = make_algorithm(config.algorithm, config.reptile_steps, config.reptile_lr, config.oos_weight)

    def amp():  # a fresh context each time: bf16 autocast on CUDA, nothing on the CPU
        return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()

    states = {d.name: d.train_states for d in datasets}

    def embed(episode, rows: Sequence[int]) -> torch.Tensor:
        """Episode embeddings with a graph to the LoRA factors; bf16 autocast only here, on CUDA."""
        with amp():
            return model.embed(states[episode.source], rows).float()

    selecting = list(val_datasets) if val_datasets else list(datasets)

    def embed_valid() -> dict[str, torch.Tensor]:
        with amp():
            return {d.name: model.embed_all(d.valid_states).float() for d in selecting}

    samplers = []
    for d in datasets:
        vectors = None
        if config.episode_mode != "uniform":  # class prototypes from the encoder as it starts
            rows = _subset(d.train_rows, 20, config.seed)
            with torch.no_grad(), amp():
                vectors = class_prototypes([d.train_rows[i] for i in rows], model.embed(d.train_states, rows).float())
        samplers += [EpisodeSampler(d.train_rows, config.ways, shot, config.queries, config.seed, config.episode_mode,
                                    vectors, config.hard_pool, source=d.name) for shot in config.shots]
    vsets = validation_sets(selecting, config.val_shots, config.val_episodes, config.val_ways, config.seed + 1)
    groups = [{"params": model.encoder_parameters(), "lr": config.learning_rate}] if algorithm.trains_encoder else []
    if algorithm.learns_inner and algorithm.trains_encoder:
        model.inner.requires_grad_(True)
        groups.append({"params": model.inner_parameters(), "lr": config.inner_learning_rate})
    optimiser = torch.optim.Adam(groups or [{"params": [torch.zeros(1, requires_grad=True)]}])
    rank, world = rank_and_size()  # under torchrun: each rank takes its share of every outer step's episodes
    total_steps = math.ceil(config.episodes / (config.meta_batch * world)) if algorithm.trains_encoder else 0
    info = {"step": 0, "best_score": -1.0, "best_step": 0, "bad_validations": 0, "history": [], "stopped": "budget",
            "skipped_steps": 0, "skipped_in_a_row": 0}
    best = trainable_state(model)
    if resume and (out / STATE_TENSORS).is_file():
        best, info = load_state(out, model, optimiser)
    losses: list[float] = []
    bar = tqdm(total=total_steps, initial=info["step"], desc=f"meta-train {config.algorithm}", disable=not progress or rank > 0)

    def validate() -> None:
        result = score(embed_valid(), vsets, model.inner.export(), config.select_on == "accuracy+oos")
        row = {"step": info["step"], "episodes": info["step"] * config.meta_batch * world, "val": result,
               "train_loss": sum(losses) / len(losses) if losses else None, "elapsed_s": round(time.monotonic() - started, 1)}
        info["history"].append(row)
        losses.clear()
        if result["mean"] > info["best_score"]:
            info.update(best_score=result["mean"], best_step=info["step"], bad_validations=0)
            best.clear()
            best.update(trainable_state(model))
        else:
            info["bad_validations"] += 1
        bar.set_postfix(val=f"{result['mean']:.4f}", best=f"{info['best_score']:.4f}")
        if rank == 0:
            save_state(out, model, best, optimiser, info)

    if not info["history"]:
        validate()  # step 0: the starting encoder, so "no change" can win
    while info["step"] < total_steps:
        if info["bad_validations"] > config.patience:
            info["stopped"] = "early stopping"
            break
        if time.monotonic() - started > config.max_minutes * 60:
            info["stopped"] = "time limit"
            break
        if info.get("skipped_in_a_row", 0) >= MAX_SKIPPED_IN_A_ROW:
            info["stopped"] = f"meta-gradient not finite in {MAX_SKIPPED_IN_A_ROW} steps in a row"
            break
        optimiser.zero_grad(set_to_none=True)
        for b in range(config.meta_batch):
            index = (info["step"] * world + rank) * config.meta_batch + b
            episode = samplers[index % len(samplers)].episode(index // len(samplers))
            losses.append(algorithm.accumulate(model, episode, embed, 1.0 / config.meta_batch))
        average_gradients(p for g in groups for p in g["params"])
        if config.l2_sp > 0:
            model.pull_to_start(config.l2_sp)
        if torch.isfinite(torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], 1.0)):
            optimiser.step()
            info["skipped_in_a_row"] = 0
        else:  # a non-finite meta-gradient (or its norm) skips the step rather than poisoning the weights
            info["skipped_steps"] = info.get("skipped_steps", 0) + 1
            info["skipped_in_a_row"] = info.get("skipped_in_a_row", 0) + 1
        info["step"] += 1
        bar.update(1)
        if info["step"] % config.val_every == 0 or info["step"] == total_steps:
            validate()
    bar.close()
    model.load_state_dict(best, strict=False)
    metrics = {"config": asdict(config), "stopped": info["stopped"], "best_step": info["best_step"],
               "trained_episodes": info["step"] * config.meta_batch * world,
               "best_episodes": info["best_step"] * config.meta_batch * world, "processes": world,
               "best_val": info["best_score"], "skipped_steps": info.get("skipped_steps", 0), "history": info["history"]}
    if config.calibrate or not algorithm.trains_encoder:
        train = {}
        for d in datasets:
            rows = _subset(d.train_rows, config.calibrate_per_class, config.seed)
            with torch.no_grad(), amp():
                train[d.name] = ([d.train_rows[i] for i in rows], model.embed(d.train_states, rows).float())
        calibrated, table = calibrate_inner_loop(train, embed_valid(), vsets, model.inner.export(), config.calibrate_steps,
                                                 config.calibrate_episodes, config.calibrate_ways, config.shots, seed=config.seed,
                                                 progress=progress, out_of_scope=config.select_on == "accuracy+oos")
        metrics["calibration"] = table
        metrics["inner_loop"] = calibrated.to_dict()
    else:
        metrics["inner_loop"] = model.inner.export().to_dict()
    metrics["final_val"] = max(row["mean"] for row in metrics.get("calibration", [{"mean": info["best_score"]}]))
    metrics["wall_s"] = round(time.monotonic() - started, 1)
    return metrics
