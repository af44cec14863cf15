"""The encoder in fp32 beside dynamic int8 (``FEWSHOT_ENCODER_QUANTIZE=int8``), in one run.

Accuracy: the service's adaptation (``models.meta.evaluation.accuracy``: ``fit_adapter``
with the checkpoint's inner loop) on the fixed ``train_5`` / ``train_10`` splits of each
data set, against all of ``test``. Speed: texts/s of ``encode`` in 64-text requests over
the same test texts, fp32 and int8 alternating, best of ``--rounds``. The decision rule:
int8 becomes the default only if it loses less than 0.3 points on every figure and is at
least 1.3x faster.

    python benchmarks/int8.py --data runs/data/banking77 runs/data/clinc150
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import in_distribution_note  # noqa: E402
from benchmarks.results import write_result  # noqa: E402
from models.checkpoint import build_encoder, resolve_checkpoint  # noqa: E402
from models.data import read_jsonl  # noqa: E402
from models.inner_loop import InnerLoopConfig  # noqa: E402
from models.meta.evaluation import accuracy  # noqa: E402


def requests_rate(encoder, texts: list[str], size: int = 64) -> float:
    started = time.perf_counter()
    for start in range(0, len(texts), size):
        encoder.encode(texts[start : start + size])
    return len(texts) / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", default=["runs/data/banking77", "runs/data/clinc150"])
    parser.add_argument("--checkpoint", default="default")
    parser.add_argument("--speed-texts", type=int, default=768)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    checkpoint = resolve_checkpoint(args.checkpoint)
    config = checkpoint.inner_loop if checkpoint else InnerLoopConfig()
    encoders = {mode: build_encoder(None, checkpoint, device="cpu", quantize=mode) for mode in ("none", "int8")}
    rows = []
    for folder in map(Path, args.data):
        test = read_jsonl(folder / "test.jsonl")
        test_emb = {mode: encoder.encode([r.text for r in test]) for mode, encoder in encoders.items()}
        for shots in (5, 10):
            support = read_jsonl(folder / f"train_{shots}.jsonl")
            row = {"data": folder.name, "shots": shots}
            for mode, encoder in encoders.items():
                support_emb = encoder.encode([r.text for r in support])
                row[mode] = round(100 * accuracy(support_emb, support, test_emb[mode], test, config), 2)
            row["delta"] = round(row["int8"] - row["none"], 2)
            rows.append(row)
            print(json.dumps(row), flush=True)
    speed_texts = [r.text for r in read_jsonl(Path(args.data[0]) / "test.jsonl")][: args.speed_texts]
    rates: dict[str, list[float]] = {"none": [], "int8": []}
    for _ in range(args.rounds):
        for mode, encoder in encoders.items():
            rates[mode].append(requests_rate(encoder, speed_texts))
    speed = {mode: round(max(values), 1) for mode, values in rates.items()}
    speedup = round(speed["int8"] / speed["none"], 2)
    worst = min(row["delta"] for row in rows)
    adopt = worst > -0.3 and speedup >= 1.3
    result = {"checkpoint": args.checkpoint, "accuracy": rows, "texts_per_s": speed, "rounds": rates,
              "speedup": speedup, "worst_delta": worst, "default_int8": adopt, "torch_threads": torch.get_num_threads()}
    print(json.dumps(result, indent=1))
    if not args.no_doc:
        note = in_distribution_note(args.checkpoint, [Path(path).name for path in args.data])
        lines = [f"Checkpoint `{args.checkpoint}`{note} (the comparison is fp32 against int8 of the same "
                 "checkpoint); accuracy on the fixed splits against all of `test` (the service's adaptation); "
                 "encoder passes over packed tokens (`models.packed`) in both; speed: 64-text `encode` calls over "
                 f"{len(speed_texts)} {Path(args.data[0]).name} test texts, best of {args.rounds} alternating rounds, "
                 f"torch threads {result['torch_threads']}.", "",
                 "| data set | shots | fp32 | int8 | Δ |", "|---|---|---|---|---|"]
        lines += [f"| {r['data']} | {r['shots']} | {r['none']:.2f} | {r['int8']:.2f} | {r['delta']:+.2f} |" for r in rows]
        lines += ["", f"Speed: fp32 {speed['none']:.0f} texts/s, int8 {speed['int8']:.0f} texts/s ({speedup:.2f}x).", "",
                  f"Decision (default int8 only if every Δ > -0.3 and speed ≥ 1.3x): "
                  f"**{'int8 is the default' if adopt else 'fp32 stays the default'}**; "
                  "`FEWSHOT_ENCODER_QUANTIZE=int8` switches it on."]
        summary = [{"topic": "speed", "figure": "int8 encoder (CPU) beside fp32",
                    "value": f"{speedup:.2f}x speed, worst Δ {worst:+.2f} points",
                    "note": "default" if adopt else "not the default (rule: Δ > -0.3 and ≥ 1.3x)"}]
        write_result("int8", "Dynamic int8 encoder beside fp32 (CPU)", "\n".join(lines), result, summary=summary,
                     order=45)
    return 0


if __name__ == "__main__":
    sys.exit(main())
