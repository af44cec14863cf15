"""``fewshot meta-train``, ``evaluate`` and ``rebase-checkpoint``: the offline tools.

Their heavy imports (torch, the models, optuna) happen inside the functions, so that
``fewshot serve`` and the HTTP client commands start without them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _size(byte_count: int) -> str:
    return f"{byte_count / 1e6:.2f} MB" if byte_count >= 1e5 else f"{byte_count / 1e3:.1f} kB"


#: ``fewshot meta-train`` options named otherwise than the settings the search samples
#: (models.meta.search.SEARCHED); the others have the same name.
_OPTION_SETTING = {"inner_lr": "inner_learning_rate", "lr": "learning_rate"}


def rebase(args: argparse.Namespace) -> int:
    """Tie a checkpoint trained on another copy of the encoder (say fp16) to the packaged weights."""
    from models.checkpoint import rebase_checkpoint

    try:
        rebased = rebase_checkpoint(args.checkpoint, args.trained_on, args.onto)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"rebased {args.checkpoint}: {rebased['tensors_checked']} base tensors checked, trained on "
          f"{rebased['trained_on_sha256'][:12]}… ({', '.join(rebased['dtypes'])})")
    return 0


def meta_train(args: argparse.Namespace) -> int:
    """Meta-train a checkpoint (heavy imports stay here so ``serve`` starts fast)."""
    if args.search and args.resume:
        print("error: --resume cannot be combined with --search", file=sys.stderr)
        return 2
    out = Path(args.out)
    fresh_out = not out.exists()
    try:
        return _meta_train_into(args, out)
    finally:  # a run that failed before writing anything leaves no empty folder behind
        if fresh_out and out.is_dir() and not any(out.iterdir()):
            out.rmdir()


def _meta_train_into(args: argparse.Namespace, out: Path) -> int:
    from dataclasses import asdict, replace

    import torch

    from models.encoder import TransformerEncoder, weights_sha256
    from models.encoder_registry import resolve_encoder, source_name
    from models.inner_loop import InnerLoopConfig
    from models.meta.data import load_meta_dataset
    from models.meta.layer_mix import LayerMixModel, cached_pooled_layers
    from models.meta.model import MetaModel
    from models.meta.report import build_manifest, write_run
    from models.meta.state import STATE_JSON, STATE_TENSORS
    from models.meta.trainer import MetaTrainConfig
    from models.meta.trainer import meta_train as run_meta_training

    from models.meta.distributed import finish, init_from_environment, rank_and_size

    torch.manual_seed(args.seed)
    encoder = TransformerEncoder(resolve_encoder(args.encoder_dir), device=args.device)
    if init_from_environment(encoder.device) and args.search:
        print("error: --search runs its trials one after another; start it without torchrun", file=sys.stderr)
        finish()
        return 2
    rank = rank_and_size()[0]
    device, layers = encoder.device, len(encoder.model.encoder.layer)
    if not 1 <= args.lora_layers <= layers:
        print(f"error: --lora-layers must be between 1 and {layers}", file=sys.stderr)
        return 2
    upto, base_sha = layers - args.lora_layers, weights_sha256(encoder.model_dir)
    featurize = None
    if args.layer_mix:  # the encoder stays frozen: each text's pooled per-layer vectors, once
        featurize = lambda texts: cached_pooled_layers(encoder, texts, base_sha, args.cache_dir, not args.no_progress).to(device)  # noqa: E731
    datasets = [load_meta_dataset(d, encoder, upto, base_sha, args.cache_dir, progress=not args.no_progress,
                                  featurize=featurize, exclude_fixed_splits=args.exclude_fixed_splits)
                for d in args.train_data]
    val_datasets = [load_meta_dataset(d, encoder, upto, base_sha, args.cache_dir, progress=not args.no_progress,
                                      featurize=featurize) for d in args.val_data or []]
    for data in (datasets + val_datasets) if not args.layer_mix else []:
        data.train_states.states = data.train_states.states.to(device)
        data.valid_states.states = data.valid_states.states.to(device)
    start = InnerLoopConfig(args.inner_steps, args.inner_lr, args.inner_proximal, args.inner_scale)
    config = MetaTrainConfig(
        algorithm=args.algorithm, episodes=args.episodes, meta_batch=args.meta_batch, ways=args.ways, shots=tuple(args.shots),
        queries=args.queries, episode_mode=args.episode_mode, hard_pool=args.hard_pool, learning_rate=args.lr,
        lora_rank=args.lora_rank, lora_alpha=args.lora_alpha, lora_layers=args.lora_layers, layer_mix=args.layer_mix, finetune=args.finetune, l2_sp=args.l2_sp, reptile_steps=args.reptile_steps,
        reptile_lr=args.reptile_lr, oos_weight=args.oos_weight, select_on=args.select_on, val_every=args.val_every, val_episodes=args.val_episodes, val_ways=args.val_ways,
        patience=args.early_stopping_patience, max_minutes=args.max_minutes, seed=args.seed, calibrate=not args.no_calibrate,
        calibrate_steps=tuple(args.calibrate_steps), calibrate_episodes=args.calibrate_episodes,
        calibrate_ways=args.calibrate_ways, inner_loop=start.to_dict(),
    )

    def train(run: MetaTrainConfig, out: Path) -> dict:
        learn_inner = run.algorithm in ("maml-head", "metasgd")
        if run.layer_mix:
            model = LayerMixModel(layers + 1, InnerLoopConfig.from_dict(run.inner_loop), learn_inner).to(device)
        else:
            model = MetaModel(
                encoder.model.encoder.layer[upto:], upto, InnerLoopConfig.from_dict(run.inner_loop),
                rank=0 if run.algorithm == "metasgd" else run.lora_rank, alpha=run.lora_alpha,
                learn_inner=learn_inner, pooling=encoder.pooling, seed=run.seed, finetune=run.finetune,
            ).to(device).float()
        metrics = run_meta_training(run, datasets, model, out, resume=args.resume, progress=not args.no_progress, device=device,
                                    val_datasets=val_datasets or None)
        changed = model.trains_encoder and metrics["best_step"] > 0
        manifest = build_manifest(
            base_encoder=args.encoder_name or source_name(args.encoder_dir), base_sha256=base_sha, datasets=[d.provenance for d in datasets],
            algorithm=run.algorithm, hyperparameters=asdict(run), inner_loop=metrics["inner_loop"],
            lora=model.lora_manifest() if changed else None, metrics=metrics, max_length=encoder.max_length,
            layer_mix=model.layer_mix_manifest() if changed and run.layer_mix else None,
            selected_on=[d.provenance for d in val_datasets],
            finetuned_layers=[upto + i for i in range(len(model.layers))] if changed and run.finetune else None,
        )
        if rank > 0:  # under torchrun every rank holds the same weights; rank 0 writes them
            return metrics
        write_run(out, manifest, metrics, model.encoder_tensors() if changed else None)
        if not args.keep_trainer_state:  # resume state is for interrupted runs; keep shipped checkpoints small
            for name in (STATE_TENSORS, STATE_JSON):
                (out / name).unlink(missing_ok=True)
        return metrics

    if args.search:
        from models.meta.search import SEARCHED, run_search

        fixed = frozenset(_OPTION_SETTING.get(dest, dest) for dest in args.given_options) & frozenset(SEARCHED)
        if fixed:
            print(f"search: keeping your {', '.join(sorted(fixed))}; sampling the rest", file=sys.stderr)
        record = run_search(replace(config, max_minutes=args.max_minutes), train, args.search, args.trials, out, args.seed,
                            fixed=fixed)
        print(f"search ({args.search}, {args.trials} trials): best trial {record['best_trial']} "
              f"score {record['best_score']:.4f} params {record['best_params']}")
    else:
        metrics = train(config, out)
        finish()
        if rank > 0:
            return 0
        best = (f"best {metrics['best_val']:.4f} at step {metrics['best_step']}" if metrics["best_step"] > 0 else
                f"no step beat the start ({metrics['best_val']:.4f}): the encoder is left as it was")
        print(f"meta-validation: {best} ({metrics['stopped']}); final {metrics['final_val']:.4f}; "
              f"inner loop {metrics['inner_loop']}; {metrics['wall_s']:.0f} s")
        if metrics.get("skipped_steps"):
            print(f"warning: {metrics['skipped_steps']} of {metrics['trained_episodes'] // max(1, config.meta_batch * metrics.get('processes', 1))} "
                  "outer steps were skipped for a non-finite meta-gradient (second order through many inner steps "
                  "overflows: try fewer --inner-steps)", file=sys.stderr)
    size = sum(f.stat().st_size for f in out.iterdir() if f.name in ("manifest.json", "encoder.safetensors"))
    print(f"checkpoint written to {out} ({_size(size)})")
    return 0


def evaluate(args: argparse.Namespace) -> int:
    """Held-out evaluation of the bare encoder and checkpoints; refuses leaked data sets."""
    import json

    from models.checkpoint import checkpoint_for_encoder
    from models.encoder_registry import resolve_encoder
    from models.meta.evaluation import LeakageError, check_in_distribution, check_leakage
    from models.meta.evaluation import evaluate as evaluate_checkpoints
    from models.meta.tables import markdown_table, plot_results, summary

    data = Path(args.data)
    checkpoints: list = [("bare", None)]
    model_dir = resolve_encoder(args.encoder_dir)  # a name (all-mpnet-base-v2) or a folder
    for setting in args.checkpoint or []:
        checkpoint = checkpoint_for_encoder(setting, model_dir)  # "default": the shipped one, as the server resolves it
        if checkpoint is None and setting.lower() == "default":
            print(f"error: --checkpoint default: no checkpoint is shipped for the encoder {model_dir}", file=sys.stderr)
            return 2
        if checkpoint is not None:
            checkpoints.append(("default" if setting.lower() == "default" else Path(setting).name, checkpoint))
    try:
        for _, checkpoint in checkpoints[1:]:
            (check_in_distribution if args.in_distribution else check_leakage)(data, checkpoint)
    except LeakageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    results = evaluate_checkpoints(data, checkpoints, shots=args.shots, episodes=args.episodes, ways=args.ways, queries=args.queries,
                       seed=args.seed, encoder_dir=str(model_dir), device=args.device, cache_dir=args.cache_dir,
                       progress=not args.no_progress, in_distribution=args.in_distribution)
    rows = summary(results)
    out = Path(args.out or f"runs/eval/{data.name}")
    out.mkdir(parents=True, exist_ok=True)
    table = markdown_table(data.name, rows, args.ways)
    (out / "results.md").write_text(table)
    (out / "results.json").write_text(json.dumps({"data": str(data), "in_distribution": args.in_distribution, "ways": args.ways, "episodes": args.episodes,
                                                  "queries": args.queries, "seed": args.seed, "results": rows}, indent=1) + "\n")
    plot_results(data.name, rows, out / "results.png")
    if args.record:
        for (name, checkpoint), row in zip(checkpoints, rows):
            if checkpoint is None:
                continue
            manifest_file = checkpoint.path / "manifest.json"
            manifest = json.loads(manifest_file.read_text())
            manifest.setdefault("evaluation", {})[data.name] = {"ways": args.ways, "episodes": args.episodes, **row,
                                                               "bare": rows[0]}
            manifest_file.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    print(table)
    print(f"written: {out / 'results.md'}, {out / 'results.json'}, {out / 'results.png'}")
    return 0
