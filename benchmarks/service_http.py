"""Accuracy, time to ready, restarts and tenant isolation, measured from outside over HTTP
against a real `fewshot serve`.

For each support split (default BANKING77 train_10 and train_5): create a task from it,
time the POST (the adapter is ready when it answers), predict the whole test split,
and report accuracy. Then restart the server over the same SQLite file and check the
predictions are identical, and that another tenant gets 404 for the task. The result
replaces ``docs/results/service_http_<data set>.json`` and re-renders docs/benchmarks.md.

    python benchmarks/service_http.py --data ../shared/data/banking77 --checkpoint default
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import free_port, in_distribution_note, running_server  # noqa: E402
from benchmarks.results import write_result  # noqa: E402
from models.data import read_jsonl  # noqa: E402

ADMIN = "benchmark-admin-key-0123456789abcdef"


def predict_all(client: httpx.Client, task_id: str, headers: dict, texts: list[str], batch: int) -> list[dict]:
    out: list[dict] = []
    for start in range(0, len(texts), batch):
        response = client.post(
            f"/v1/tasks/{task_id}/predict", json={"texts": texts[start : start + batch], "top_k": 3}, headers=headers
        )
        response.raise_for_status()
        out.extend(response.json()["predictions"])
    return out


def summary_rows(name: str, checkpoint: str, splits: dict[str, dict]) -> list[dict[str, str]]:
    """The report's summary rows: accuracy and time to ready per split, restart and tenant checks."""
    names, runs = " / ".join(f"`{s}`" for s in splits), list(splits.values())
    encoder = "bare encoder" if checkpoint == "none" else f"`{checkpoint}` checkpoint"
    join = lambda key, fmt: " / ".join(format(r[key], fmt) for r in runs)  # noqa: E731
    return [
        {"topic": "accuracy", "figure": f"{name.upper()} {names} over HTTP, {encoder} (all of `test`)",
         "value": f"{join('accuracy', '.2f')}% top-1",
         "note": f"{join('accuracy_with_default_rejection', '.2f')}% counting the default out-of-scope rejections as "
                 f"errors ({join('rejected_as_out_of_scope', '.1f')}% of texts rejected)"
                 + in_distribution_note(checkpoint, [name])},
        {"topic": "time to ready", "figure": f"task ready after the POST, {name.upper()} {names} "
                                             f"({' / '.join(str(r['support_examples']) for r in runs)} examples)",
         "value": " / ".join(f"{r['ready_s_client']:.2f} s" for r in runs),
         "note": "client-side time until the answer, out-of-scope model fitted too"},
        {"topic": "restart and tenants", "figure": f"{name.upper()}: predictions after a server restart; another tenant's GET",
         "value": ("identical" if all(r["identical_after_restart"] for r in runs) else "DIFFERENT")
                  + "; " + " / ".join(str(r["other_tenant_status"]) for r in runs), "note": ""},
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/banking77", help="folder with train_*.jsonl and test.jsonl")
    parser.add_argument("--splits", nargs="+", default=["train_10", "train_5"])
    parser.add_argument("--batch", type=int, default=256, help="texts per predict call")
    parser.add_argument("--checkpoint", default="none", help="FEWSHOT_CHECKPOINT for the server (none: bare encoder)")
    parser.add_argument("--no-doc", action="store_true", help="do not write docs/results/")
    args = parser.parse_args()
    data = Path(args.data)
    test = read_jsonl(data / "test.jsonl")
    texts = [row.text for row in test]
    workdir = Path(tempfile.mkdtemp(prefix="fewshot-bench-"))
    env = {
        "FEWSHOT_DATABASE_URL": f"sqlite:///{workdir / 'bench.db'}",
        "FEWSHOT_ADMIN_KEY": ADMIN,
        "FEWSHOT_CHECKPOINT": args.checkpoint,
    }
    port = free_port()
    results: dict = {"data": str(data), "test_texts": len(texts), "splits": {}}
    with running_server(env, port) as url, httpx.Client(base_url=url, timeout=600) as client:
        admin = {"Authorization": f"Bearer {ADMIN}"}
        owner = {"Authorization": "Bearer " + client.post("/v1/tenants", json={"name": "owner"}, headers=admin).json()["api_key"]}
        other = {"Authorization": "Bearer " + client.post("/v1/tenants", json={"name": "other"}, headers=admin).json()["api_key"]}
        for split in args.splits:
            support = read_jsonl(data / f"{split}.jsonl")
            body = {"name": f"{data.name}-{split}", "examples": [{"text": r.text, "label": r.label} for r in support]}
            started = time.perf_counter()
            created = client.post("/v1/tasks", json=body, headers=owner)
            ready_s = time.perf_counter() - started
            created.raise_for_status()
            task = created.json()
            started = time.perf_counter()
            predictions = predict_all(client, task["id"], owner, texts, args.batch)
            predict_s = time.perf_counter() - started
            # Top-1 label (pure classification) and the answer's
            # `label`, which is null where the default out-of-scope rule rejects the text.
            accuracy = sum(p["top_k"][0]["label"] == row.label for p, row in zip(predictions, test)) / len(test)
            answered = sum(p["label"] == row.label for p, row in zip(predictions, test)) / len(test)
            results["splits"][split] = {
                "task_id": task["id"],
                "support_examples": len(support),
                "labels": len(task["labels"]),
                "ready_s_client": round(ready_s, 3),
                "adapted_ms_server": task["adapted_ms"],
                "accuracy": round(accuracy * 100, 2),
                "accuracy_with_default_rejection": round(answered * 100, 2),
                "rejected_as_out_of_scope": round(100 * sum(p["out_of_scope"] for p in predictions) / len(test), 2),
                "predict_texts_per_s": round(len(texts) / predict_s, 1),
                "other_tenant_status": client.get(f"/v1/tasks/{task['id']}", headers=other).status_code,
                "_predictions": predictions,
            }
            print(f"{split}: accuracy {accuracy * 100:.2f}% ({answered * 100:.2f}% with default rejection), "
                  f"ready in {ready_s:.2f} s", flush=True)
    with running_server(env, free_port()) as url, httpx.Client(base_url=url, timeout=600) as client:
        for split, result in results["splits"].items():
            started = time.perf_counter()
            after = predict_all(client, result["task_id"], owner, texts, args.batch)
            result["first_predict_after_restart_s"] = round(time.perf_counter() - started, 3)
            before = result.pop("_predictions")
            result["identical_after_restart"] = [p["top_k"] for p in before] == [p["top_k"] for p in after]
            print(f"{split}: identical after restart: {result['identical_after_restart']}", flush=True)
    print(json.dumps(results, indent=1))
    if not args.no_doc:
        rows = "\n".join(
            f"| {split} | {r['support_examples']} | {r['accuracy']:.2f} | {r['accuracy_with_default_rejection']:.2f} "
            f"({r['rejected_as_out_of_scope']:.1f}% rejected) | {r['ready_s_client']:.2f} | {r['adapted_ms_server']:.0f} "
            f"| {r['predict_texts_per_s']:.0f} | {r['identical_after_restart']} | {r['other_tenant_status']} |"
            for split, r in results["splits"].items()
        )
        table = (
            f"Task from each support split of `{data.name}`, predict on all {len(texts)} test texts over HTTP "
            f"(batches of {args.batch}), `FEWSHOT_CHECKPOINT={args.checkpoint}`, SQLite.\n\n"
            "| support | examples | accuracy % (top-1) | `label` accuracy % with default out-of-scope rejection | ready s (client) "
            "| adapted ms (server) | predict texts/s | identical after restart | other tenant GET |\n"
            "|---|---|---|---|---|---|---|---|---|\n" + rows
        )
        write_result(f"service_http_{data.name}", f"Service over HTTP: {data.name.upper()}", table, results,
                     summary=summary_rows(data.name, args.checkpoint, results["splits"]),
                     order=10 if data.name == "banking77" else 11)
    return 0


if __name__ == "__main__":
    sys.exit(main())
