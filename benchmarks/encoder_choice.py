"""Which encoder to serve: MiniLM (default) beside mpnet, bare, same code, one run.

Each measurement runs in its own process, so resident memory is the encoder's alone;
the costs of both encoders are measured first, back to back, so that they share the
machine's load of the moment, then the accuracies:
- accuracy with the service's adaptation (``models.meta.evaluation.accuracy``, the code
  ``fewshot evaluate`` runs for its fixed splits): adapt on ``train_5`` / ``train_10``,
  score on ``test`` (all of it, or the same ``--limit`` seeded texts for every encoder);
- out-of-scope AUROC on CLINC150: adapter from ``train_10`` (150 labels), its in-scope
  score on ``test`` against ``oos_test``;
- ready time for BANKING77 ``train_10`` (770 texts): embed in length-sorted chunks of 256
  and fit the calibrated adapter on one thread, as ``app/services/engine.py`` does;
- predict texts/s: 64-text batches of BANKING77 ``test``, encoder plus ranking, in-process;
- resident memory: RSS after loading the encoder and one batch, less RSS before loading.

    nice -n 5 python benchmarks/encoder_choice.py --data-root runs/data

Writes ``docs/results/encoder_choice.json`` and prints a markdown table. Embeddings are
cached under ``runs/cache/encoder_choice`` (per encoder fingerprint and texts), so a rerun
re-measures the costs and reuses the embeddings.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.results import write_result  # noqa: E402
from benchmarks.common import ROOT, command_line, environment  # noqa: E402

DATASETS = ("banking77", "clinc150", "snips", "atis")
ENCODERS = ("all-MiniLM-L6-v2", "all-mpnet-base-v2")


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load(name: str):
    from models.encoder import TransformerEncoder
    from models.encoder_registry import resolve_encoder

    return TransformerEncoder(resolve_encoder(name), device="cpu")


def measure_costs(name: str, data_root: Path, predict_batches: int) -> dict:
    """Load time, resident memory, ready time for 770 texts and predict texts/s of one encoder."""
    import torch

    from models.classifier import fit_adapter, rank
    from models.data import read_jsonl
    from models.inner_loop import InnerLoopConfig

    before, started = rss_mb(), time.perf_counter()
    encoder = load(name)
    load_s = time.perf_counter() - started
    banking_test = [r.text for r in read_jsonl(data_root / "banking77" / "test.jsonl")]
    encoder.encode(banking_test[:64])
    row: dict = {"dim": encoder.dim, "load_s": round(load_s, 2), "encoder_rss_mb": round(rss_mb() - before, 1)}
    train = read_jsonl(data_root / "banking77" / "train_10.jsonl")
    texts = [r.text for r in train]
    started = time.perf_counter()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    chunks = [encoder.encode([texts[i] for i in order[s : s + 256]]) for s in range(0, len(texts), 256)]
    embedded = torch.cat(chunks)[torch.argsort(torch.tensor(order))]
    embed_s = time.perf_counter() - started
    with ThreadPoolExecutor(1, initializer=torch.set_num_threads, initargs=(1,)) as worker:
        adapter = worker.submit(fit_adapter, embedded, [r.label for r in train], InnerLoopConfig(),
                                encoder.fingerprint, calibrated=True).result()
    row.update(ready_770_s=round(time.perf_counter() - started, 2), ready_embed_s=round(embed_s, 2))
    batches = [banking_test[s : s + 64] for s in range(0, 64 * predict_batches, 64)]
    started = time.perf_counter()
    for batch in batches:
        rank(adapter, encoder.encode(batch), top_k=1)
    row["predict_texts_per_s"] = round(64 * len(batches) / (time.perf_counter() - started), 1)
    row["load_average_after_costs"] = [round(x, 2) for x in os.getloadavg()]
    return row


def cached_encode(encoder, texts: list[str], cache: Path):
    """``encoder.encode(texts)``, kept on disk per encoder fingerprint and texts."""
    import hashlib

    import torch

    file = cache / encoder.fingerprint / (hashlib.sha256("\n".join(texts).encode()).hexdigest()[:24] + ".pt")
    if file.is_file():
        return torch.load(file)
    embedded = encoder.encode(texts)
    file.parent.mkdir(parents=True, exist_ok=True)
    torch.save(embedded, file)
    return embedded


def measure_accuracy(name: str, data_root: Path, limit: int, seed: int, cache: Path) -> dict:
    """Fixed-split accuracies on the four sets and CLINC150 out-of-scope AUROC of one encoder, bare."""
    from models.classifier import fit_adapter
    from models.data import read_jsonl
    from models.inner_loop import InnerLoopConfig
    from models.meta.evaluation import accuracy
    from models.metrics import roc_auc

    encoder, config, row = load(name), InnerLoopConfig(), {}
    for data in DATASETS:
        folder = data_root / data
        test = read_jsonl(folder / "test.jsonl")
        if limit and len(test) > limit:
            test = random.Random(seed).sample(test, limit)
        test_emb = cached_encode(encoder, [r.text for r in test], cache)
        for shots in (5, 10):
            support = read_jsonl(folder / f"train_{shots}.jsonl")
            support_emb = cached_encode(encoder, [r.text for r in support], cache)
            row[f"{data}_{shots}"] = round(100 * accuracy(support_emb, support, test_emb, test, config), 2)
            if data == "clinc150" and shots == 10:
                outside = read_jsonl(folder / "oos_test.jsonl")
                if limit and len(outside) > limit:
                    outside = random.Random(seed).sample(outside, limit)
                oos = fit_adapter(support_emb, [r.label for r in support], config, encoder.fingerprint)
                s_in = oos.in_scope_scores(test_emb)
                s_out = oos.in_scope_scores(cached_encode(encoder, [r.text for r in outside], cache))
                row["clinc150_oos_auroc"] = round(roc_auc((-s_out).tolist(), (-s_in).tolist()), 4)
        row[f"{data}_test_texts"] = len(test)
    row["mean_5"] = round(sum(row[f"{d}_5"] for d in DATASETS) / len(DATASETS), 2)
    row["mean_10"] = round(sum(row[f"{d}_10"] for d in DATASETS) / len(DATASETS), 2)
    return row


def markdown(rows: list[dict]) -> str:
    head = ["encoder", *[f"{d} 5 / 10" for d in DATASETS], "mean 5 / 10", "CLINC150 OOS AUROC",
            "ready, 770 texts (s)", "predict texts/s", "encoder RSS (MB)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["encoder"], *[f"{r[f'{d}_5']:.2f} / {r[f'{d}_10']:.2f}" for d in DATASETS],
                 f"{r['mean_5']:.2f} / {r['mean_10']:.2f}", f"{r['clinc150_oos_auroc']:.4f}",
                 f"{r['ready_770_s']:.1f}", f"{r['predict_texts_per_s']:.1f}", f"{r['encoder_rss_mb']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default="runs/data", help="folder with banking77, clinc150, snips, atis")
    parser.add_argument("--encoders", nargs="+", default=list(ENCODERS))
    parser.add_argument("--limit", type=int, default=0, help="test texts per data set (0: all); same texts per encoder")
    parser.add_argument("--seed", type=int, default=0, help="which texts --limit keeps")
    parser.add_argument("--predict-batches", type=int, default=8, help="64-text batches timed for predict texts/s")
    parser.add_argument("--cache-dir", default="runs/cache/encoder_choice", help="cached embeddings")
    parser.add_argument("--child", nargs=2, default=None, help=argparse.SUPPRESS)  # costs|accuracy NAME
    args = parser.parse_args()
    if args.child:
        what, name = args.child
        row = (measure_costs(name, Path(args.data_root), args.predict_batches) if what == "costs"
               else measure_accuracy(name, Path(args.data_root), args.limit, args.seed, Path(args.cache_dir)))
        print(json.dumps(row))
        return 0
    env = environment()  # the commit measured is the one at the start
    rows = {name: {"encoder": name} for name in args.encoders}
    for what in ("costs", "accuracy"):  # the costs of all encoders back to back, then the slow part
        for name in args.encoders:
            child = subprocess.run([sys.executable, __file__, "--child", what, name, "--data-root", args.data_root,
                                    "--limit", str(args.limit), "--seed", str(args.seed), "--cache-dir", args.cache_dir,
                                    "--predict-batches", str(args.predict_batches)],
                                   capture_output=True, text=True, check=True)
            rows[name].update(json.loads(child.stdout.strip().splitlines()[-1]))
            print(what, json.dumps(rows[name]), file=sys.stderr, flush=True)
    rows = list(rows.values())
    result = {"command": command_line(), "git_commit": env["commit"], "date": env["date"],
              "hardware": {"cpu": env["cpu"], "gpu": env["gpu"], "torch_threads": "torch default (all visible cores)"},
              "versions": {k: env[k] for k in ("python", "torch", "transformers")},
              "test_limit": args.limit or "all", "rows": rows}
    print(markdown(rows))
    write_result("encoder_choice", TITLE, body(result), result, summary=summary_rows(rows), order=30)
    return 0


TITLE = "Choosing the encoder: MiniLM beside mpnet (bare)"


def body(result: dict) -> str:
    return (f"Both encoders bare (no checkpoint), the service's adaptation on each data set's fixed splits against "
            f"{'all of' if result['test_limit'] == 'all' else str(result['test_limit']) + ' texts of'} `test`; costs "
            "measured back to back in their own processes on the same machine; figures from "
            "`docs/results/encoder_choice.json`'s `data`.\n\n" + markdown(result["rows"]))


def summary_rows(rows: list[dict]) -> list[dict[str, str]]:
    by_name = {row["encoder"]: row for row in rows}
    mini, mpnet = by_name.get("all-MiniLM-L6-v2"), by_name.get("all-mpnet-base-v2")
    if not (mini and mpnet):
        return []
    return [{"topic": "encoder choice", "figure": "mean fixed 5 / 10-shot accuracy over four data sets, bare MiniLM / bare mpnet",
             "value": f"{mini['mean_5']:.2f} / {mini['mean_10']:.2f}%; {mpnet['mean_5']:.2f} / {mpnet['mean_10']:.2f}%",
             "note": f"mpnet {mpnet['predict_texts_per_s'] / max(mini['predict_texts_per_s'], 1e-9):.2f}x the predict speed, "
                     f"{mpnet['encoder_rss_mb']:.0f} vs {mini['encoder_rss_mb']:.0f} MB"}]


if __name__ == "__main__":
    raise SystemExit(main())
