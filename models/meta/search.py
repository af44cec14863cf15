"""Hyperparameter search with Optuna (Akiba et al. 2019): random search or TPE.

Each trial is a complete (short) meta-training run with sampled settings, scored by
its final meta-validation accuracy (valid splits of the training data sets only, so
held-out data sets never influence the choice). The best trial's checkpoint is
kept. Optuna is an optional dependency (``pip install .[meta]``).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

from models.meta.trainer import MetaTrainConfig

SAMPLERS = ("random", "tpe")


#: Settings the search samples (``trial.params`` names); a caller may fix any of them.
SEARCHED = ("inner_steps", "inner_learning_rate", "inner_proximal", "inner_scale", "calibrate_ways", "learning_rate",
            "lora_rank", "ways", "episode_mode", "reptile_lr", "reptile_steps")


def suggest(trial, base: MetaTrainConfig, fixed: frozenset[str] = frozenset()) -> MetaTrainConfig:
    """Sample a configuration around ``base``: inner-loop start values always, encoder settings when trained.

    Names in ``fixed`` (from :data:`SEARCHED`; what the user set explicitly) keep ``base``'s value
    instead of being sampled, so a search never silently overrides a given option.
    """
    inner = dict(base.inner_loop)

    def pick(name: str, current, sample):
        return current if name in fixed else sample(name)

    inner["steps"] = steps = pick("inner_steps", inner["steps"], lambda n: trial.suggest_categorical(n, [10, 25, 50, 100]))
    inner["learning_rate"] = pick("inner_learning_rate", inner["learning_rate"], lambda n: trial.suggest_float(n, 1e-3, 1e-1, log=True))
    inner["proximal"] = pick("inner_proximal", inner["proximal"], lambda n: trial.suggest_float(n, 1e-4, 1.0, log=True))
    inner["scale"] = pick("inner_scale", inner["scale"], lambda n: trial.suggest_float(n, 8.0, 50.0, log=True))
    changes: dict = {"inner_loop": inner, "calibrate_steps": (steps,)}
    if base.algorithm == "metasgd":
        changes["calibrate_ways"] = pick("calibrate_ways", base.calibrate_ways, lambda n: trial.suggest_categorical(n, [20, 40, 77]))
        return replace(base, **changes)
    changes.update(
        learning_rate=pick("learning_rate", base.learning_rate, lambda n: trial.suggest_float(n, 1e-5, 3e-3, log=True)),
        lora_rank=pick("lora_rank", base.lora_rank, lambda n: trial.suggest_categorical(n, [4, 8, 16])),
        ways=pick("ways", base.ways, lambda n: trial.suggest_categorical(n, [10, 20, 40])),
        episode_mode=pick("episode_mode", base.episode_mode, lambda n: trial.suggest_categorical(n, ["uniform", "hard", "mixed"])),
    )
    if base.algorithm == "reptile":
        changes.update(reptile_lr=pick("reptile_lr", base.reptile_lr, lambda n: trial.suggest_float(n, 1e-4, 1e-2, log=True)),
                       reptile_steps=pick("reptile_steps", base.reptile_steps, lambda n: trial.suggest_categorical(n, [2, 3, 5])))
    return replace(base, **changes)


def run_search(base: MetaTrainConfig, train: Callable[[MetaTrainConfig, Path], dict], sampler: str, trials: int,
               out: Path, seed: int = 0, fixed: frozenset[str] = frozenset()) -> dict:
    """Run ``trials`` trials (each writes a checkpoint to ``out/../<name>-search/trial-N``) and copy
    the best one to ``out``; ``fixed`` settings are not sampled (see :func:`suggest`).
    Returns the search record (also written to ``out/search.json``)."""
    import optuna

    if sampler not in SAMPLERS:
        raise ValueError(f"--search must be one of {SAMPLERS}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    chosen = optuna.samplers.RandomSampler(seed=seed) if sampler == "random" else optuna.samplers.TPESampler(seed=seed)
    study = optuna.create_study(direction="maximize", sampler=chosen)
    work = out.parent / f"{out.name}-search"
    records: list[dict] = []

    def objective(trial) -> float:
        config = suggest(trial, base, fixed)
        metrics = train(config, work / f"trial-{trial.number}")
        records.append({"trial": trial.number, "params": trial.params, "score": metrics["final_val"], "wall_s": metrics["wall_s"]})
        return float(metrics["final_val"])

    study.optimize(objective, n_trials=trials)
    best = study.best_trial
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(work / f"trial-{best.number}", out)
    record = {"sampler": sampler, "trials": records, "best_trial": best.number, "best_params": best.params,
              "best_score": best.value, "fixed": sorted(fixed), "base_config": asdict(base)}
    (out / "search.json").write_text(json.dumps(record, indent=1, default=str) + "\n")
    manifest_file = out / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    manifest["search"] = {"sampler": sampler, "trials": trials, "best_trial": best.number, "best_score": best.value,
                          "fixed": sorted(fixed)}
    manifest_file.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return record
