"""Encoder ceiling: texts/s at batch sizes 1..1024, the naive Hugging Face loop beside
the project's path (models.encoder.TransformerEncoder), in the same run.

Naive loop: tokenise each batch in arrival order, pad to the batch's longest text,
autocast (bf16 on GPU), mean-pool. Project path: length-sorted buckets; on the CPU
packed passes (models.packed: no work on padding) of at most 2,048 real tokens, on GPU
half precision weights; same pooling. Texts are the BANKING77 test split.

The result replaces ``docs/results/encoder_throughput_<device>.json`` and re-renders
docs/benchmarks.md.

    python benchmarks/encoder_throughput.py --data ../shared/data/banking77/test.jsonl --min-seconds 3
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.results import write_result  # noqa: E402
from models.data import read_jsonl  # noqa: E402
from models.encoder import TransformerEncoder, pool  # noqa: E402


def naive_encode(encoder: TransformerEncoder, model: torch.nn.Module, texts: list[str], batch: int) -> None:
    dtype = torch.bfloat16 if encoder.device.type == "cuda" else torch.float32
    for start in range(0, len(texts), batch):
        tokens = encoder.tokenizer(texts[start : start + batch], padding=True, truncation=True, max_length=64,
                                   return_tensors="pt").to(encoder.device)
        with torch.inference_mode(), torch.autocast(encoder.device.type, dtype=dtype, enabled=encoder.device.type == "cuda"):
            pool(model(**tokens).last_hidden_state, tokens["attention_mask"]).cpu()


def rate(fn, n_texts: int, min_seconds: float) -> float:
    fn()  # warm-up
    runs, started = 0, time.perf_counter()
    while True:
        fn()
        runs += 1
        elapsed = time.perf_counter() - started
        if elapsed >= min_seconds:
            return runs * n_texts / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/banking77/test.jsonl")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 64, 256, 1024])
    parser.add_argument("--texts", type=int, default=1024, help="texts per measurement (batch 1 uses --texts-b1)")
    parser.add_argument("--texts-b1", type=int, default=64)
    parser.add_argument("--min-seconds", type=float, default=3.0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    all_texts = [row.text for row in read_jsonl(args.data)]
    encoder = TransformerEncoder(device=args.device, max_length=64)
    naive_model = TransformerEncoder(device=args.device, max_length=64).model.float()  # the plain fp32 weights
    rows = []
    for batch in args.batches:
        texts = all_texts[: args.texts_b1 if batch == 1 else max(args.texts, batch)]
        encoder.batch_size = batch
        ours = rate(lambda: encoder.encode(texts), len(texts), args.min_seconds)
        naive = rate(lambda: naive_encode(encoder, naive_model, texts, batch), len(texts), args.min_seconds)
        rows.append({"batch": batch, "naive_texts_per_s": round(naive, 1), "ours_texts_per_s": round(ours, 1),
                     "speedup": round(ours / naive, 2)})
        print(json.dumps(rows[-1]), flush=True)
    result = {"device": str(encoder.device), "threads": torch.get_num_threads(), "rows": rows}
    if not args.no_doc:
        table = (f"Encoder texts/s on {encoder.device} ({torch.get_num_threads()} torch threads), BANKING77 test texts, max 64 tokens. "
                 "Project path: length-sorted buckets"
                 + ("; packed passes (`models.packed`) of at most 2,048 real tokens" if encoder.packed else "")
                 + ".\n\n"
                 "| batch | naive HF loop | project path | speed-up |\n|---|---|---|---|\n"
                 + "\n".join(f"| {r['batch']} | {r['naive_texts_per_s']:.0f} | {r['ours_texts_per_s']:.0f} | {r['speedup']:.2f}x |" for r in rows))
        at64 = next((r for r in rows if r["batch"] == 64), None)
        summary = [{"topic": "latency and throughput", "figure": f"raw encoder texts/s on {encoder.device}, batch 64 "
                    "(project path / naive Hugging Face loop)", "value": f"{at64['ours_texts_per_s']:.0f} / "
                    f"{at64['naive_texts_per_s']:.0f}", "note": ""}] if at64 else []
        device = str(encoder.device).split(":")[0]
        write_result(f"encoder_throughput_{device}", f"Encoder throughput ceiling ({device})", table, result,
                     summary=summary, order=55)
    return 0


if __name__ == "__main__":
    sys.exit(main())
