"""Single-client predict and time to ready over HTTP, beside the best simple encoder loop.

Against a real ``fewshot serve`` on loopback with a BANKING77 ``train_10`` task:

1. one client sends the test texts in sequential requests of 1, 8, 64 and 256 texts
   (texts/s; for 1 text also latency percentiles), then 4 and 16 clients with 64-text
   requests;
2. tasks of 385, 770 and 1,500 examples are created: time to ready split into the
   adaptation (``adapted_ms`` of the answer) and the rest (embedding, storage, HTTP);
3. the reference in the same run and process family: a plain transformers loop over the
   same texts (same model files, max_length, torch threads), length-sorted over the whole
   text list, in batches of the request size (at most 64), and single-text forwards; for
   requests of 8 and 64 texts also the loop over the requests' own batches, unsorted.

Rounds alternate the server and the reference and the best round of each is kept, which
makes the comparison robust to other load on a shared machine.

    python benchmarks/predict_single.py --data runs/data/banking77
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import ROOT, free_port, running_server, server_metric  # noqa: E402
from benchmarks.predict_reference import RawLoop, percentiles  # noqa: E402
from benchmarks.results import write_result  # noqa: E402
from models.data import read_jsonl  # noqa: E402

ADMIN = "benchmark-admin-key-0123456789abcdef"
ENCODER_SUM = "fewshot_encoder_pass_seconds_sum"  # seconds spent in encoder passes since start


def sequential_rate(client: httpx.Client, path: str, headers: dict, texts: list[str], size: int) -> dict:
    """One client, requests of ``size`` texts one after another over all ``texts``."""
    latencies: list[float] = []
    started = time.perf_counter()
    for start in range(0, len(texts), size):
        sent = time.perf_counter()
        client.post(path, json={"texts": texts[start : start + size], "top_k": 1}, headers=headers).raise_for_status()
        latencies.append((time.perf_counter() - sent) * 1000)
    return {"texts_per_s": len(texts) / (time.perf_counter() - started), **percentiles(latencies)}


def concurrent_rate(url: str, path: str, headers: dict, texts: list[str], size: int, clients: int) -> dict:
    """``clients`` threads, each with its own connection, share the request list."""
    chunks = [texts[start : start + size] for start in range(0, len(texts), size)]
    latencies: list[float] = []

    def work(worker: int) -> None:
        with httpx.Client(base_url=url, timeout=300) as client:
            for chunk in chunks[worker::clients]:
                sent = time.perf_counter()
                client.post(path, json={"texts": chunk, "top_k": 1}, headers=headers).raise_for_status()
                latencies.append((time.perf_counter() - sent) * 1000)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(work, range(clients)))
    return {"texts_per_s": len(texts) / (time.perf_counter() - started), **percentiles(latencies)}


def ready_times(client: httpx.Client, headers: dict, train: list, sizes: list[int]) -> list[dict]:
    """Per size: the POST's wall time over HTTP, split into the server's encoder passes
    for the support set (its metrics, read before and after) and the adaptation (the
    answer's ``adapted_ms``, the version's build, less those passes)."""
    rows = []
    rng = random.Random(0)
    for size in sizes:
        chosen = rng.sample(train, size)
        examples = [{"text": row.text, "label": row.label} for row in chosen]
        encoded_before = server_metric(client, ENCODER_SUM)
        sent = time.perf_counter()
        response = client.post("/v1/tasks", json={"name": f"ready-{size}", "examples": examples}, headers=headers)
        response.raise_for_status()
        total_ms = (time.perf_counter() - sent) * 1000
        embed_ms = (server_metric(client, ENCODER_SUM) - encoded_before) * 1000
        server_ms = float(response.json()["adapted_ms"])  # the version's build: embedding and adaptation
        adapt_ms = max(0.0, server_ms - embed_ms)
        rows.append({"examples": size, "ready_ms": round(total_ms, 1), "server_ms": server_ms,
                     "embed_ms": round(embed_ms, 1), "adapt_ms": round(adapt_ms, 1),
                     "texts": [row.text for row in chosen]})
    return rows


def best(rounds: list[dict], key: str = "texts_per_s") -> dict:
    return max(rounds, key=lambda row: row[key])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="runs/data/banking77")
    parser.add_argument("--texts", type=int, default=768, help="test texts sent per measurement")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 8, 64, 256])
    parser.add_argument("--clients", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--ready-sizes", type=int, nargs="+", default=[385, 770, 1500])
    parser.add_argument("--single-requests", type=int, default=200, help="1-text requests for latency")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--checkpoint", default="default")
    parser.add_argument("--plot", default=str(ROOT / "docs" / "predict_single.png"))
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    data = Path(args.data)
    texts = [row.text for row in read_jsonl(data / "test.jsonl")][: args.texts]
    support = read_jsonl(data / "train_10.jsonl")
    train = read_jsonl(data / "train.jsonl")
    env = {"FEWSHOT_DATABASE_URL": f"sqlite:///{Path(tempfile.mkdtemp()) / 'single.db'}",
           "FEWSHOT_ADMIN_KEY": ADMIN, "FEWSHOT_CHECKPOINT": args.checkpoint}
    raw = RawLoop()
    server: dict[str, list[dict]] = {}
    reference: dict[str, list[dict]] = {}
    in_order: dict[str, list[dict]] = {}  # the raw loop over the requests' own batches
    ready_rounds: list[list[dict]] = []
    with running_server(env, free_port()) as url, httpx.Client(base_url=url, timeout=600) as client:
        admin = {"Authorization": f"Bearer {ADMIN}"}
        key = client.post("/v1/tenants", json={"name": "single"}, headers=admin).json()["api_key"]
        headers = {"Authorization": f"Bearer {key}"}
        examples = [{"text": row.text, "label": row.label} for row in support]
        task = client.post("/v1/tasks", json={"name": "banking", "examples": examples}, headers=headers)
        task.raise_for_status()
        path = f"/v1/tasks/{task.json()['id']}/predict"
        sequential_rate(client, path, headers, texts[:128], 64)  # warm-up
        raw.rate(texts[:128], 64)
        for round_ in range(args.rounds):
            for size in args.sizes:
                sample = texts[: args.single_requests] if size == 1 else texts
                server.setdefault(f"1x{size}", []).append(sequential_rate(client, path, headers, sample, size))
                reference.setdefault(f"1x{size}", []).append(
                    raw.single(sample) if size == 1 else raw.rate(sample, min(size, 64)))
                if 1 < size <= 64:
                    in_order.setdefault(f"1x{size}", []).append(raw.rate(sample, size, length_sorted=False))
            for clients in args.clients:
                server.setdefault(f"{clients}x64", []).append(concurrent_rate(url, path, headers, texts, 64, clients))
            ready_rounds.append(ready_times(client, headers, train, args.ready_sizes))
            print(json.dumps({"round": round_, **{k: round(v[-1]["texts_per_s"], 1) for k, v in server.items()},
                              **{"raw " + k: round(v[-1]["texts_per_s"], 1) for k, v in reference.items()}}), flush=True)
    result = summarise(args, server, reference, in_order, ready_rounds, raw)
    print(json.dumps({k: v for k, v in result.items() if k != "rounds"}, indent=1))
    from benchmarks.predict_report import markdown, plot, summary_rows

    plot(result, Path(args.plot))
    if not args.no_doc:
        write_result("predict_single", "Predict for one client and time to ready, beside the raw encoder loop",
                     markdown(result, Path(args.plot).name), result, summary=summary_rows(result),
                     plots=[Path(args.plot).name], order=40)
    return 0


def summarise(args: argparse.Namespace, server: dict, reference: dict, in_order: dict,
              ready_rounds: list[list[dict]], raw: RawLoop) -> dict:
    rows = []
    for name, rounds in server.items():
        ours = best(rounds)
        ref = best(reference[name]) if name in reference else None
        row = {"load": name, "texts_per_s": round(ours["texts_per_s"], 1), "p50_ms": ours["p50_ms"],
               "p99_ms": ours["p99_ms"]}
        if ref:
            row.update({"raw_texts_per_s": round(ref["texts_per_s"], 1), "raw_p50_ms": ref["p50_ms"],
                        "share_of_raw": round(ours["texts_per_s"] / ref["texts_per_s"], 3)})
        if name in in_order:
            same = best(in_order[name])["texts_per_s"]
            row.update({"raw_in_order_texts_per_s": round(same, 1),
                        "share_of_raw_in_order": round(ours["texts_per_s"] / same, 3)})
        rows.append(row)
    ready = []
    for index, size in enumerate(args.ready_sizes):
        measured = min((r[index] for r in ready_rounds), key=lambda row: row["embed_ms"])
        measured["ready_ms"] = min(r[index]["ready_ms"] for r in ready_rounds)
        raw_rate = max(raw.rate(measured["texts"], 64)["texts_per_s"] for _ in range(2))
        embed_rate = size / (measured["embed_ms"] / 1000)
        ready.append({**{k: v for k, v in measured.items() if k != "texts"}, "embed_texts_per_s": round(embed_rate, 1),
                      "raw_texts_per_s": round(raw_rate, 1), "embed_share_of_raw": round(embed_rate / raw_rate, 3)})
    return {"checkpoint": args.checkpoint, "data": str(args.data), "texts": args.texts, "rounds": args.rounds,
            "torch_threads": raw.threads, "predict": rows, "ready": ready,
            "median_round_share_64": round(statistics.median(
                s["texts_per_s"] / r["texts_per_s"] for s, r in zip(server["1x64"], reference["1x64"])), 3)
            if "1x64" in server else None}


if __name__ == "__main__":
    sys.exit(main())
