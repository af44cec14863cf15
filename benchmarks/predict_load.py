"""Predict latency and throughput over HTTP against a real `fewshot serve` on loopback.

1. Latency: one text per request, one request at a time: p50/p95/p99.
2. Load: a bounded asyncio load generator (fixed request count per level, time cap)
   at rising concurrency, with 1-text and 64-text requests, spread over 1 and 100
   tasks; texts/s and latency percentiles per level, plus a latency-against-load PNG.

The result replaces ``docs/results/predict_load.json`` and re-renders docs/benchmarks.md.

    python benchmarks/predict_load.py --data ../shared/data/banking77 --concurrency 1 4 16 64 --requests 200 --time-cap 15
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import ROOT, free_port, running_server  # noqa: E402
from benchmarks.predict_reference import percentiles  # noqa: E402
from benchmarks.results import write_result  # noqa: E402
from models.data import read_jsonl  # noqa: E402

ADMIN = "benchmark-admin-key-0123456789abcdef"


async def load_level(url: str, headers: dict, task_ids: list[str], texts: list[str], concurrency: int,
                     per_request: int, requests: int, time_cap_s: float) -> dict:
    latencies: list[float] = []
    errors = 0
    remaining = requests
    deadline = time.perf_counter() + time_cap_s
    rng = random.Random(concurrency * 1000 + per_request)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal remaining, errors
        while remaining > 0 and time.perf_counter() < deadline:
            remaining -= 1
            body = {"texts": rng.sample(texts, per_request), "top_k": 1}
            started = time.perf_counter()
            response = await client.post(f"/v1/tasks/{rng.choice(task_ids)}/predict", json=body, headers=headers)
            if response.status_code == 200:
                latencies.append((time.perf_counter() - started) * 1000)
            else:
                errors += 1

    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {"concurrency": concurrency, "texts_per_request": per_request, "tasks": len(task_ids),
            "requests": len(latencies), "errors": errors,
            "requests_per_s": round(len(latencies) / elapsed, 1),
            "texts_per_s": round(len(latencies) * per_request / elapsed, 1), **percentiles(latencies)}


def raw_encoder_rate(texts: list[str], seconds: float, batch: int = 64) -> float:
    """The same encoder as the server (same settings), called directly on random
    64-text batches in this process: the ceiling that batched predict is compared with."""
    from models.encoder import TransformerEncoder

    encoder = TransformerEncoder(device="cpu")
    rng = random.Random(1)
    encoder.encode(rng.sample(texts, batch))
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        encoder.encode(rng.sample(texts, batch))
        done += batch
    return round(done / (time.perf_counter() - started), 1)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for (per_request, tasks) in sorted({(r["texts_per_request"], r["tasks"]) for r in rows}):
        series = [r for r in rows if r["texts_per_request"] == per_request and r["tasks"] == tasks]
        label = f"{per_request} text(s)/request, {tasks} task(s)"
        axes[0].plot([r["texts_per_s"] for r in series], [r["p50_ms"] for r in series], "o-", label=label + " p50")
        axes[0].plot([r["texts_per_s"] for r in series], [r["p99_ms"] for r in series], "x--", label=label + " p99")
        axes[1].plot([r["concurrency"] for r in series], [r["texts_per_s"] for r in series], "o-", label=label)
    axes[0].set(xlabel="throughput (texts/s)", ylabel="latency (ms)", title="latency against load", yscale="log")
    axes[1].set(xlabel="concurrent clients", ylabel="texts/s", title="throughput", xscale="log")
    for axis in axes:
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def summary_rows(result: dict) -> list[dict[str, str]]:
    """The report's summary rows: sequential latency, batched and single-text throughput."""
    seq, rows = result["single_text_sequential"], result["load"]
    batched = [r for r in rows if r["texts_per_request"] > 1 and r["concurrency"] > 1]
    single = [r for r in rows if r["texts_per_request"] == 1]
    span = lambda values, fmt: f"{format(min(values), fmt)}–{format(max(values), fmt)}"  # noqa: E731
    out = [{"topic": "latency and throughput", "figure": "predict latency, one text per request, sequential",
            "value": f"p50 {seq['p50_ms']} ms, p95 {seq['p95_ms']} ms, p99 {seq['p99_ms']} ms", "note": "BANKING77 texts"}]
    if batched:
        out.append({"topic": "latency and throughput",
                    "figure": f"batched predict ({batched[0]['texts_per_request']} texts per request), "
                              f"{min(r['concurrency'] for r in batched)} to {max(r['concurrency'] for r in batched)} clients",
                    "value": f"{span([r['share_of_raw_encoder'] for r in batched], '.0%')} of the raw encoder's texts/s in the "
                             f"same run ({result['raw_encoder_texts_per_s']} texts/s), {sum(r['errors'] for r in batched)} errors",
                    "note": "target 80%"})
    if single:
        out.append({"topic": "latency and throughput", "figure": "single-text requests, "
                    f"{min(r['concurrency'] for r in single)} to {max(r['concurrency'] for r in single)} clients",
                    "value": f"{span([r['texts_per_s'] for r in single], '.0f')} texts/s, "
                             f"{span([r['share_of_raw_encoder'] for r in single], '.0%')} of the raw encoder", "note": ""})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/banking77")
    parser.add_argument("--latency-requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--requests", type=int, default=400, help="requests per load level (bounded)")
    parser.add_argument("--time-cap", type=float, default=30.0, help="seconds per load level at most")
    parser.add_argument("--task-labels", type=int, default=20, help="labels per task (5 shots each)")
    parser.add_argument("--raw-seconds", type=float, default=10.0, help="time for the raw-encoder reference")
    parser.add_argument("--plot", default=str(ROOT / "docs" / "predict_load.png"))
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    data = Path(args.data)
    support = read_jsonl(data / "train_5.jsonl")
    texts = [row.text for row in read_jsonl(data / "test.jsonl")]
    env = {"FEWSHOT_DATABASE_URL": f"sqlite:///{Path(tempfile.mkdtemp()) / 'load.db'}",
           "FEWSHOT_ADMIN_KEY": ADMIN, "FEWSHOT_CHECKPOINT": "none"}
    result: dict = {}
    with running_server(env, free_port()) as url, httpx.Client(base_url=url, timeout=300) as client:
        admin = {"Authorization": f"Bearer {ADMIN}"}
        key = client.post("/v1/tenants", json={"name": "load"}, headers=admin).json()["api_key"]
        headers = {"Authorization": f"Bearer {key}"}
        labels = sorted({r.label for r in support})
        rng = random.Random(0)
        task_ids = []
        for i in range(100):
            chosen = set(rng.sample(labels, min(args.task_labels, len(labels))))
            examples = [{"text": r.text, "label": r.label} for r in support if r.label in chosen]
            response = client.post("/v1/tasks", json={"name": f"t{i}", "examples": examples}, headers=headers)
            response.raise_for_status()
            task_ids.append(response.json()["id"])
        samples = []
        for i in range(args.latency_requests):
            started = time.perf_counter()
            client.post(f"/v1/tasks/{task_ids[0]}/predict", json={"texts": [texts[i % len(texts)]], "top_k": 3},
                        headers=headers).raise_for_status()
            samples.append((time.perf_counter() - started) * 1000)
        result["single_text_sequential"] = {**percentiles(samples), "mean_ms": round(statistics.fmean(samples), 2)}
        print(json.dumps(result["single_text_sequential"]), flush=True)
        rows = []
        for per_request in (1, 64):
            for tasks in (1, 100):
                for concurrency in args.concurrency:
                    row = asyncio.run(load_level(url, headers, task_ids[:tasks], texts, concurrency, per_request,
                                                 args.requests, args.time_cap))
                    rows.append(row)
                    print(json.dumps(row), flush=True)
        result["load"] = rows
    result["raw_encoder_texts_per_s"] = raw_encoder_rate(texts, args.raw_seconds)
    for row in rows:
        row["share_of_raw_encoder"] = round(row["texts_per_s"] / result["raw_encoder_texts_per_s"], 3)
    print(json.dumps({"raw_encoder_texts_per_s": result["raw_encoder_texts_per_s"]}), flush=True)
    plot(rows, Path(args.plot))
    if not args.no_doc:
        seq = result["single_text_sequential"]
        table = (f"One text per request, sequential: p50 {seq['p50_ms']} ms, p95 {seq['p95_ms']} ms, p99 {seq['p99_ms']} ms.\n\n"
                 f"Raw encoder (same settings, in-process, random 64-text batches, same run): "
                 f"{result['raw_encoder_texts_per_s']} texts/s.\n\n"
                 "| texts/request | tasks | clients | requests | texts/s | share of raw encoder | p50 ms | p95 ms | p99 ms | errors |\n"
                 "|---|---|---|---|---|---|---|---|---|---|\n"
                 + "\n".join(f"| {r['texts_per_request']} | {r['tasks']} | {r['concurrency']} | {r['requests']} | {r['texts_per_s']:.0f} "
                             f"| {r['share_of_raw_encoder']:.0%} "
                             f"| {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} | {r['errors']} |" for r in rows))
        in_docs = Path(args.plot).resolve().parent == (ROOT / "docs").resolve()
        write_result("predict_load", "Predict latency and load over HTTP", table, result, summary=summary_rows(result),
                     plots=[{"file": Path(args.plot).name, "caption": "latency against load"}] if in_docs else [], order=50)
    return 0


if __name__ == "__main__":
    sys.exit(main())
