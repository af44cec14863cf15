"""Many stored tasks in one server: memory and cold adapter loads.

Creates `--real` tasks over HTTP (BANKING77 label subsets, 5 shots), then clones their
rows in the database until `--tasks` tasks are stored (each clone a task of its own,
with its own examples and version row: what matters here is storage and loading, not
how the adapter was made). Then, against a restarted `fewshot serve`:
- predict latency for a task whose adapter is not in memory (cold: one database read
  and a safetensors parse) against the same task again (warm), one text each;
- the server's resident memory before and after every task's adapter is loaded once.

The result replaces ``docs/results/many_tasks.json`` and re-renders docs/benchmarks.md.

    python benchmarks/many_tasks.py --data ../shared/data/banking77 --tasks 10000
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import free_port, running_server, server_metric  # noqa: E402
from benchmarks.predict_load import percentiles  # noqa: E402
from benchmarks.results import write_result  # noqa: E402
from models.data import read_jsonl  # noqa: E402

ADMIN = "benchmark-admin-key-0123456789abcdef"


def rss_mb(url: str) -> float:
    """Resident memory of the server process, read from /proc via its listening port."""
    port = url.rsplit(":", 1)[1]
    import subprocess

    pid = subprocess.run(["bash", "-c", f"ss -ltnp 'sport = :{port}' | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2"],
                         capture_output=True, text=True).stdout.strip()
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _copy(db, table: str, row: dict, **changes) -> int | str:  # noqa: ANN001 - a SQLAlchemy connection
    """Insert ``row`` (every column but ``id`` unless changed) into ``table`` with ``changes``; the new id."""
    values = {k: v for k, v in row.items() if k != "id"} | changes
    values = {k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in values.items()}
    columns = ", ".join(values)
    sql = f"INSERT INTO {table} ({columns}) VALUES ({', '.join(':' + c for c in values)}) RETURNING id"
    return db.execute(text(sql), values).scalar_one()


def clone_tasks(database_url: str, total: int) -> int:
    """Copy the stored tasks (every column of their task, example and adapter rows, so the
    copy follows the schema) until there are ``total``: storage, not HTTP, makes the crowd."""
    engine = create_engine(database_url)
    with engine.begin() as db:
        tasks = db.execute(text("SELECT * FROM tasks")).mappings().fetchall()
        made = len(tasks)
        while made < total:
            source = tasks[made % len(tasks)]
            new_id = uuid.uuid4().hex
            _copy(db, "tasks", dict(source), id=new_id, name=f"{source['name']}-copy")
            mapping = {}
            for example in db.execute(text("SELECT * FROM examples WHERE task_id = :s ORDER BY id"),
                                      {"s": source["id"]}).mappings():
                mapping[example["id"]] = _copy(db, "examples", dict(example), task_id=new_id)
            for adapter in db.execute(text("SELECT * FROM adapter_versions WHERE task_id = :s"),
                                      {"s": source["id"]}).mappings().fetchall():
                ids = adapter["example_ids"]
                ids = json.loads(ids) if isinstance(ids, str) else ids
                _copy(db, "adapter_versions", dict(adapter), task_id=new_id,
                      example_ids=None if ids is None else [mapping[i] for i in ids])
            made += 1
    return made


def report(result: dict) -> tuple[str, list[dict[str, str]]]:
    """The section's body and the summary rows of a ``many_tasks`` result."""
    stored, labels, loaded = result["stored_tasks"], result["labels_per_task"], int(result["cache_entries"])
    c, w = result["cold_predict"], result["warm_predict"]
    per_task_kb = (result["rss_mb_all_loaded"] - result["rss_mb_start"]) * 1000 / max(loaded, 1)
    cached = (f"all {loaded:,} adapters" if loaded >= stored else
              f"{loaded:,} of the {stored:,} adapters (the cache, `FEWSHOT_ADAPTER_CACHE_BYTES`, was full; the rest load cold)")
    body = (f"{stored:,} stored tasks ({labels} labels each) in SQLite, one server process, CPU.\n\n"
            "| | p50 ms | p95 ms | p99 ms |\n|---|---|---|---|\n"
            f"| predict, adapter cold (database read + parse) | {c['p50_ms']} | {c['p95_ms']} | {c['p99_ms']} |\n"
            f"| predict, same task warm | {w['p50_ms']} | {w['p95_ms']} | {w['p99_ms']} |\n\n"
            f"Cold load adds {result['cold_minus_warm_p50_ms']} ms at the median. Resident memory: "
            f"{result['rss_mb_start']} MB after start, {result['rss_mb_all_loaded']} MB with {cached} in memory "
            f"(touching every task took {result['load_all_s']} s). Most of an adapter is its out-of-scope model: "
            "the class means and two 384 x 64 low-rank bases (relative Mahalanobis) beside a head of one weight row per label.")
    summary = [
        {"topic": "memory", "figure": f"{stored:,} stored tasks ({labels} labels each) in one server process: resident memory",
         "value": f"{result['rss_mb_start']} MB after start, {result['rss_mb_all_loaded']} MB with {loaded:,} adapters "
                  f"in memory (about {per_task_kb:.0f} KB per task)",
         "note": "" if loaded >= stored else f"the default 512 MiB adapter cache holds {loaded:,}; the others load cold"},
        {"topic": "memory", "figure": "predict with the task's adapter cold (database read + parse) / warm, p50",
         "value": f"{c['p50_ms']} / {w['p50_ms']} ms", "note": f"cold load adds {result['cold_minus_warm_p50_ms']} ms; target < 5 ms"},
    ]
    return body, summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/banking77")
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--real", type=int, default=20, help="tasks made over HTTP before cloning")
    parser.add_argument("--labels", type=int, default=20, help="labels per task")
    parser.add_argument("--samples", type=int, default=200, help="cold/warm latency samples")
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    rows = read_jsonl(Path(args.data) / "train_5.jsonl")
    texts = [r.text for r in read_jsonl(Path(args.data) / "test.jsonl")]
    labels = sorted({r.label for r in rows})
    database_url = f"sqlite:///{Path(tempfile.mkdtemp()) / 'many.db'}"
    env = {"FEWSHOT_DATABASE_URL": database_url, "FEWSHOT_ADMIN_KEY": ADMIN, "FEWSHOT_CHECKPOINT": "none"}
    rng = random.Random(0)
    with running_server(env, free_port()) as url, httpx.Client(base_url=url, timeout=300) as client:
        key = client.post("/v1/tenants", json={"name": "many"}, headers={"Authorization": f"Bearer {ADMIN}"}).json()["api_key"]
        for i in range(args.real):
            chosen = set(rng.sample(labels, args.labels))
            body = {"name": f"real-{i}", "examples": [{"text": r.text, "label": r.label} for r in rows if r.label in chosen]}
            client.post("/v1/tasks", json=body, headers={"Authorization": f"Bearer {key}"}).raise_for_status()
    started = time.perf_counter()
    stored = clone_tasks(database_url, args.tasks)
    clone_s = time.perf_counter() - started
    headers = {"Authorization": f"Bearer {key}"}
    result: dict = {"stored_tasks": stored, "labels_per_task": args.labels, "clone_s": round(clone_s, 1)}
    with running_server(env, free_port()) as url, httpx.Client(base_url=url, timeout=300) as client:
        ids = [row[0] for row in create_engine(database_url).connect().execute(text("SELECT id FROM tasks"))]
        result["rss_mb_start"] = round(rss_mb(url), 1)
        sample = rng.sample(ids, min(args.samples, len(ids)))
        cold, warm = [], []
        for task_id in sample:
            for bucket in (cold, warm):
                t0 = time.perf_counter()
                client.post(f"/v1/tasks/{task_id}/predict", json={"texts": [rng.choice(texts)], "top_k": 1},
                            headers=headers).raise_for_status()
                bucket.append((time.perf_counter() - t0) * 1000)
        result["cold_predict"], result["warm_predict"] = percentiles(cold), percentiles(warm)
        result["cold_minus_warm_p50_ms"] = round(result["cold_predict"]["p50_ms"] - result["warm_predict"]["p50_ms"], 2)
        t0 = time.perf_counter()
        for task_id in ids:
            client.post(f"/v1/tasks/{task_id}/predict", json={"texts": ["hello"], "top_k": 1},
                        headers=headers).raise_for_status()
        result["load_all_s"] = round(time.perf_counter() - t0, 1)
        result["rss_mb_all_loaded"] = round(rss_mb(url), 1)
        result["cache_entries"] = server_metric(client, "fewshot_adapter_cache_entries")
    print(json.dumps(result, indent=1))
    if not args.no_doc:
        body, summary = report(result)
        write_result("many_tasks", "Many tasks: memory and cold adapter loads", body, result, summary=summary, order=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
