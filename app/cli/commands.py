"""The ``fewshot`` command: its parser, ``serve`` and ``migrate``; the other commands live beside it."""

from __future__ import annotations

import argparse
import os
import sys

from app.cli import meta as cli_meta


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {value}")
    return value


class _DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where there is none to show (unset, a flag)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _given_options(command: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """The destinations of the options written on the command line (not left at their defaults)."""
    quiet = argparse.ArgumentParser(add_help=False)
    for action in command._actions:  # the same options, each defaulting to "absent"
        if action.option_strings and not isinstance(action, argparse._HelpAction):
            quiet._add_action(_copy_without_default(action))
    given, _ = quiet.parse_known_args(argv)
    return set(vars(given))


def _copy_without_default(action: argparse.Action) -> argparse.Action:
    import copy

    clone = copy.copy(action)
    clone.default, clone.required = argparse.SUPPRESS, False
    return clone


def _serve(args: argparse.Namespace) -> int:
    import uvicorn
    from pydantic import ValidationError

    from app.settings import Settings

    try:  # the app reads them again in each worker; refuse bad ones here with one line, not a traceback
        settings = Settings()
    except ValidationError as error:
        problems = "; ".join((f"FEWSHOT_{str(e['loc'][0]).upper()}: " if e["loc"] else "") + e["msg"].removeprefix("Value error, ")
                             for e in error.errors())
        print(f"error: {problems}", file=sys.stderr)
        return 2
    if args.workers > 1 and settings.admin_key is None:  # from the environment or .env
        print("error: with --workers > 1 set FEWSHOT_ADMIN_KEY (each worker would otherwise make its own key)",
              file=sys.stderr)
        return 2

    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        limit_concurrency=args.limit_concurrency,
        timeout_graceful_shutdown=args.graceful_timeout,
        server_header=False,
    )
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from app.db.migrate import upgrade_head
    from app.settings import Settings

    url = args.database_url or Settings().database_url
    upgrade_head(url)
    print(f"database at head: {url.split('@')[-1]}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fewshot", description="Few-shot intent classification service")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP server (settings from FEWSHOT_* variables)")
    serve.add_argument("--host", default=os.environ.get("FEWSHOT_HOST", "127.0.0.1"),
                       help="address to listen on (default: FEWSHOT_HOST or 127.0.0.1; 0.0.0.0 for every interface)")
    serve.add_argument("--port", type=int, default=int(os.environ.get("FEWSHOT_PORT", "8000")),
                       help="port (default: FEWSHOT_PORT or 8000)")
    serve.add_argument("--workers", type=_positive_int, default=1,
                       help="worker processes, each with its own encoder (default: 1)")
    serve.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug", "trace"),
                       help="uvicorn's log level (default: info)")
    serve.add_argument("--limit-concurrency", type=_positive_int, default=None, metavar="N",
                       help="answer 503 beyond N open connections and requests per worker (default: no limit; "
                            "behind a reverse proxy its limits and timeouts apply, see README 'Deploying')")
    serve.add_argument("--graceful-timeout", type=_positive_float, default=None, metavar="S",
                       help="on SIGTERM, wait at most S seconds for requests in flight (default: until they finish; "
                            "give the container as long a stop timeout, see README 'Deploying')")
    serve.set_defaults(run=_serve)

    migrate = commands.add_parser("migrate", help="upgrade the database schema to the latest version")
    migrate.add_argument("--database-url", default=None, help="default: FEWSHOT_DATABASE_URL")
    migrate.set_defaults(run=_migrate)

    algorithms = ("protonet", "fomaml", "reptile", "maml-head", "metasgd")
    meta = commands.add_parser("meta-train", formatter_class=_DefaultsHelp, help="meta-train a checkpoint (a layer mix or LoRA on the encoder, and the inner loop)")
    meta.add_argument("--train-data", action="append", required=True, metavar="DIR",
                      help="data set folder with train.jsonl and valid.jsonl (repeat to mix data sets)")
    meta.add_argument("--algorithm", choices=algorithms, default="protonet",
                      help="protonet: prototypical networks; fomaml: first-order MAML; reptile; maml-head: MAML on the "
                           "head only; metasgd: learned inner learning rates (see models/meta/algorithms.py)")
    meta.add_argument("--out", required=True, help="checkpoint folder to write (e.g. models/checkpoints/<name>)")
    meta.add_argument("--episodes", type=_positive_int, default=400, help="training episodes in total")
    meta.add_argument("--meta-batch", type=_positive_int, default=2, help="episodes per outer step")
    meta.add_argument("--ways", type=_positive_int, default=20, help="classes per training episode")
    meta.add_argument("--shots", type=_positive_int, nargs="+", default=[5, 10], help="training episodes cycle through these")
    meta.add_argument("--queries", type=_positive_int, default=5, help="query examples per class")
    meta.add_argument("--episode-mode", choices=("uniform", "hard", "mixed"), default="hard",
                      help="hard: classes are nearest neighbours of a random seed class (see models/episodes.py)")
    meta.add_argument("--hard-pool", type=_positive_int, default=2,
                      help="hard episodes draw from the seed class's ways x this many nearest classes")
    meta.add_argument("--lr", type=float, default=5e-4, help="outer learning rate of the LoRA factors")
    meta.add_argument("--lora-rank", type=_positive_int, default=8, help="rank of the LoRA factors")
    meta.add_argument("--lora-alpha", type=_positive_float, default=16.0, help="LoRA scaling (alpha / rank)")
    meta.add_argument("--lora-layers", type=int, default=2, help="top encoder layers that get LoRA (lower ones are cached)")
    meta.add_argument("--finetune", action="store_true",
                      help="train every weight of the top --lora-layers layers (full fine-tuning) instead of LoRA factors")
    meta.add_argument("--l2-sp", type=float, default=0.0, metavar="S",
                      help="--finetune: pull of strength S toward the pretrained weights (L2-SP)")
    meta.add_argument("--val-data", action="append", default=None, metavar="DIR",
                      help="select (early stopping, inner-loop calibration) on this data set's valid split instead of "
                           "the training sets' (repeatable); it is not trained on")
    meta.add_argument("--layer-mix", action="store_true",
                      help="learn a weighted mix of the frozen encoder's layers instead of LoRA factors (see models/meta/layer_mix.py)")
    meta.add_argument("--reptile-steps", type=_positive_int, default=3, help="Reptile: inner steps per episode")
    meta.add_argument("--reptile-lr", type=_positive_float, default=1e-3, help="Reptile: inner learning rate")
    meta.add_argument("--oos-weight", type=float, default=0.0,
                      help="> 0: a quarter of each episode's classes play out-of-scope texts and their queries must "
                           "score below in-scope ones (models/meta/oos_loss.py); loss-based algorithms only")
    meta.add_argument("--select-on", choices=("accuracy", "accuracy+oos"), default="accuracy",
                      help="early-stopping score: meta-validation accuracy, or accuracy plus the out-of-scope AUROC "
                           "against the data set's oos_valid.jsonl + oos_train.jsonl texts (else held-out classes of the "
                           "validation episodes; models/meta/validation.py)")
    meta.add_argument("--exclude-fixed-splits", action="store_true",
                      help="train without the rows of the data sets' fixed few-shot splits (train_5, train_10), "
                           "which evaluate and the benchmarks use as support sets")
    defaults = {"steps": 50, "lr": 0.01, "proximal": 0.01, "scale": 20.0}
    meta.add_argument("--inner-steps", type=int, default=defaults["steps"], help="starting inner-loop steps")
    meta.add_argument("--inner-lr", type=float, default=defaults["lr"], help="starting inner-loop learning rate")
    meta.add_argument("--inner-proximal", type=float, default=defaults["proximal"], help="starting proximal strength")
    meta.add_argument("--inner-scale", type=float, default=defaults["scale"], help="starting logit scale")
    meta.add_argument("--val-every", type=_positive_int, default=25, help="outer steps between meta-validations")
    meta.add_argument("--val-episodes", type=_positive_int, default=2, help="validation episodes per data set and shot count")
    meta.add_argument("--val-ways", type=_non_negative_int, default=0, help="0: all classes of the valid split")
    meta.add_argument("--early-stopping-patience", type=int, default=4, help="validations without improvement")
    meta.add_argument("--max-minutes", type=_positive_float, default=12.0, help="time box for the training loop")
    meta.add_argument("--seed", type=int, default=0, help="seed of episodes and initial weights")
    meta.add_argument("--resume", action="store_true", help="continue from the trainer state in --out")
    meta.add_argument("--keep-trainer-state", action="store_true",
                      help="keep the resume state (optimiser, best weights) in --out after a finished run")
    meta.add_argument("--no-calibrate", action="store_true", help="skip the Meta-SGD calibration of the inner loop")
    meta.add_argument("--calibrate-steps", type=int, nargs="+", default=[10, 25, 50, 100],
                      help="candidate inner-loop step counts (the steps are chosen by search)")
    meta.add_argument("--calibrate-episodes", type=_positive_int, default=60, help="episodes of the inner-loop calibration")
    meta.add_argument("--calibrate-ways", type=_positive_int, default=40, help="classes per calibration episode")
    meta.add_argument("--search", choices=("random", "tpe"), default=None, help="Optuna hyperparameter search")
    meta.add_argument("--trials", type=_positive_int, default=8, help="--search: meta-training runs to try")
    meta.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    meta.add_argument("--encoder-dir", default=None, metavar="NAME|DIR",
                      help="base encoder: all-MiniLM-L6-v2, all-mpnet-base-v2 or a folder (unset: the packaged MiniLM)")
    meta.add_argument("--encoder-name", default=None, help="the base encoder's name, for the manifest (unset: from --encoder-dir)")
    meta.add_argument("--cache-dir", default="runs/cache", help="cached lower-layer token states")
    meta.add_argument("--no-progress", action="store_true", help="no progress bars")
    meta.set_defaults(run=cli_meta.meta_train, command_parser=meta)

    rebase = commands.add_parser("rebase-checkpoint", help="tie a checkpoint trained on an fp16 copy of the encoder "
                                 "to the original (checked tensor by tensor)")
    rebase.add_argument("checkpoint", metavar="DIR")
    rebase.add_argument("--trained-on", required=True, metavar="DIR", help="the encoder copy it was trained on")
    rebase.add_argument("--onto", default=None, metavar="DIR", help="default: the packaged MiniLM")
    rebase.set_defaults(run=cli_meta.rebase)

    evaluate = commands.add_parser("evaluate", formatter_class=_DefaultsHelp, help="bare encoder vs checkpoints on a held-out data set")
    evaluate.add_argument("--data", required=True, metavar="DIR", help="folder with train, train_5, train_10, test .jsonl")
    evaluate.add_argument("--checkpoint", action="append", metavar="DIR|default|none",
                          help="repeatable; default: the shipped checkpoint; the bare encoder is always included")
    evaluate.add_argument("--episodes", type=_positive_int, default=200, help="random episodes per shot count")
    evaluate.add_argument("--ways", type=_non_negative_int, default=20, help="classes per random episode (0: all)")
    evaluate.add_argument("--shots", type=_positive_int, nargs="+", default=[5, 10], help="examples per class in the support sets")
    evaluate.add_argument("--queries", type=_positive_int, default=10, help="test queries per class and episode")
    evaluate.add_argument("--seed", type=int, default=0, help="episode sampling seed")
    evaluate.add_argument("--out", default=None, help="results folder (unset: runs/eval/<data set>)")
    evaluate.add_argument("--record", action="store_true",
                          help="also add the figures to each checkpoint's manifest.json (rewrites that file)")
    evaluate.add_argument("--no-record", dest="record", action="store_false", help=argparse.SUPPRESS)  # the default
    evaluate.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    evaluate.add_argument("--encoder-dir", default=None, metavar="NAME|DIR",
                          help="base encoder: all-MiniLM-L6-v2, all-mpnet-base-v2 or a folder (unset: the packaged MiniLM)")
    evaluate.add_argument("--cache-dir", default="runs/cache", help="cached embeddings")
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bars")
    evaluate.add_argument("--in-distribution", action="store_true",
                          help="allow checkpoints trained on this data set's train split (run with "
                               "--exclude-fixed-splits, never on test): an in-distribution check, not a held-out one")
    evaluate.set_defaults(run=cli_meta.evaluate)

    from app.cli.tasks import add_client_commands  # tasks, tenants, health: the HTTP API via app.client

    add_client_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    if args.command == "meta-train":  # --search keeps what was given explicitly
        args.given_options = _given_options(args.command_parser, argv[argv.index("meta-train") + 1:])
    if args.command in ("tasks", "tenants", "health", "serve"):  # these report their own errors
        return args.run(args)
    try:
        return args.run(args)
    except (ValueError, OSError, RuntimeError) as error:
        # Unusable input to the offline tools (a missing folder or file, a malformed JSONL
        # line, too few rows for the asked episodes, a checkpoint without a manifest): one
        # line, exit 2, as the task commands do; a programming error still shows its traceback.
        print(f"error: {error}", file=sys.stderr)
        return 2

