"""Customer-service readiness, over HTTP against a real `fewshot serve` (the service's own adaptation).

A. Out of scope and calibration (CLINC150): a task from `train_10` with no out-of-scope
   examples; predict `test` + `oos_test`. Reports AUROC of the in-scope score, out-of-scope
   recall/precision at the default (support-calibrated) threshold, in-scope accuracy with
   and without rejection, and the expected calibration error on in-scope texts.
B. Zero shot (BANKING77): a task from the label names alone (underscores as spaces), then
   1, 1 and 3 more examples per label appended (1, 2, 5 shots): accuracy on `test` at each.
   Side by side, the same with unlabelled texts posted with the task (BANKING77 `train`
   texts with their labels dropped, never `test`): all of them, and 1,000 drawn at random.
C. Continual update vs full re-adaptation (BANKING77 and CLINC150): `train_5` then the rest
   of `train_10` appended, against a task made from `train_10` at once.

The result replaces ``docs/results/customer_service.json`` and re-renders docs/benchmarks.md.

    python benchmarks/customer_service.py --data ../shared/data --checkpoint default
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import httpx
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import ROOT, free_port, in_distribution_note, running_server  # noqa: E402
from benchmarks.readiness_plot import plot_readiness  # noqa: E402
from benchmarks.results import write_result  # noqa: E402
from models.calibration import top1_calibration_error  # noqa: E402
from models.data import LabelledText, read_jsonl  # noqa: E402
from models.metrics import roc_auc  # noqa: E402

ADMIN = "benchmark-admin-key-0123456789abcdef"
DOC_DIR = (ROOT / "docs").resolve()


class Api:
    def __init__(self, client: httpx.Client, headers: dict) -> None:
        self.client, self.headers = client, headers

    def post(self, path: str, body: dict) -> dict:
        response = self.client.post(path, json=body, headers=self.headers)
        if response.status_code >= 400:
            raise RuntimeError(f"{path}: {response.status_code} {response.text[:300]}")
        return response.json()

    def predict(self, task_id: str, texts: list[str], batch: int = 256) -> list[dict]:
        out: list[dict] = []
        for start in range(0, len(texts), batch):
            out += self.post(f"/v1/tasks/{task_id}/predict", {"texts": texts[start : start + batch], "top_k": 1})["predictions"]
        return out


def examples(rows: list[LabelledText]) -> list[dict]:
    return [{"text": r.text, "label": r.label} for r in rows]


def accuracy(predictions: list[dict], rows: list[LabelledText]) -> float:
    return 100 * sum(p["top_k"][0]["label"] == r.label for p, r in zip(predictions, rows)) / len(rows)


def top1_ece(predictions: list[dict], rows: list[LabelledText]) -> float:
    """Expected calibration error of the top-1 scores."""
    confidence = torch.tensor([p["score"] for p in predictions])
    correct = torch.tensor([p["top_k"][0]["label"] == r.label for p, r in zip(predictions, rows)])
    return top1_calibration_error(confidence, correct)


def out_of_scope(api: Api, data: Path) -> tuple[dict, dict]:
    """The figures, and the per-text values the plot needs."""
    support, test, oos = (read_jsonl(data / f) for f in ("train_10.jsonl", "test.jsonl", "oos_test.jsonl"))
    task = api.post("/v1/tasks", {"name": "clinc150-oos", "examples": examples(support)})
    inside, outside = api.predict(task["id"], [r.text for r in test]), api.predict(task["id"], [r.text for r in oos])
    base = accuracy(inside, test)
    kept = 100 * sum(p["label"] == r.label for p, r in zip(inside, test)) / len(test)
    rejected_out = sum(p["out_of_scope"] for p in outside)
    rejected_in = sum(p["out_of_scope"] for p in inside)
    ece = top1_ece(inside, test)
    raw = {"confidence": torch.tensor([p["score"] for p in inside]),
           "correct": torch.tensor([p["top_k"][0]["label"] == r.label for p, r in zip(inside, test)]),
           "in_scores": torch.tensor([p["in_scope_score"] for p in inside]),
           "out_scores": torch.tensor([p["in_scope_score"] for p in outside]),
           "threshold": task["oos_threshold"], "ece": ece}
    summary = {
        "threshold": task["oos_threshold"], "temperature": task["temperature"],
        "auroc": round(roc_auc([-p["in_scope_score"] for p in outside], [-p["in_scope_score"] for p in inside]), 4),
        "oos_recall": round(100 * rejected_out / len(oos), 2),
        "oos_precision": round(100 * rejected_out / max(1, rejected_out + rejected_in), 2),
        "in_scope_accuracy_no_rejection": round(base, 2),
        "in_scope_accuracy_with_rejection": round(kept, 2),
        "accuracy_drop": round(base - kept, 2),
        "in_scope_rejected": round(100 * rejected_in / len(test), 2),
        "ece_in_scope": round(ece, 4),
        "ambiguous_share": round(100 * sum(p["ambiguous"] for p in inside) / len(inside), 2),
    }
    return summary, raw


def zero_shot(api: Api, data: Path, unlabelled: list[str], chunk: int = 5000) -> dict:
    """Accuracy by shots from label names alone; ``unlabelled`` texts go with the task
    (in requests of at most ``chunk`` texts, the default per-request limit)."""
    test, support = read_jsonl(data / "test.jsonl"), read_jsonl(data / "train_5.jsonl")
    by_label: dict[str, list[LabelledText]] = defaultdict(list)
    for row in support:
        by_label[row.label].append(row)
    labels = [{"name": name} for name in sorted(by_label)]
    task = api.post("/v1/tasks", {"name": "banking77-zero-shot", "labels": labels, "unlabelled": unlabelled[:chunk]})
    for start in range(chunk, len(unlabelled), chunk):
        task = api.post(f"/v1/tasks/{task['id']}/examples", {"unlabelled": unlabelled[start : start + chunk]})
    texts = [r.text for r in test]
    curve: dict[str, float] = {}
    ece: dict[str, float] = {}
    shots = 0
    for add in (0, 1, 1, 3):
        if add:
            batch = [row for rows in by_label.values() for row in rows[shots : shots + add]]
            shots += add
            api.post(f"/v1/tasks/{task['id']}/examples", {"examples": examples(batch)})
        predictions = api.predict(task["id"], texts)
        curve[str(shots)] = round(accuracy(predictions, test), 2)
        ece[str(shots)] = round(top1_ece(predictions, test), 4)
    values = list(curve.values())
    return {"unlabelled": len(unlabelled), "accuracy_by_shots": curve, "ece_by_shots": ece,
            "monotonic": all(a < b for a, b in zip(values, values[1:]))}


def continual(api: Api, data: Path) -> dict:
    five, ten, test = (read_jsonl(data / f) for f in ("train_5.jsonl", "train_10.jsonl", "test.jsonl"))
    first = {r.text for r in five}
    rest = [r for r in ten if r.text not in first]
    texts = [r.text for r in test]
    full = api.post("/v1/tasks", {"name": "full", "examples": examples(ten)})
    grown = api.post("/v1/tasks", {"name": "grown", "examples": examples(five)})
    grown = api.post(f"/v1/tasks/{grown['id']}/examples", {"examples": examples(rest)})
    full_acc, grown_acc = accuracy(api.predict(full["id"], texts), test), accuracy(api.predict(grown["id"], texts), test)
    return {"full_accuracy": round(full_acc, 2), "continual_accuracy": round(grown_acc, 2),
            "difference": round(grown_acc - full_acc, 2), "full_create_ms": full["adapted_ms"],
            "continual_append_ms": grown["adapted_ms"], "appended_examples": len(rest)}


def summary_rows(result: dict) -> list[dict[str, str]]:
    """The report's summary rows: out of scope, calibration, zero shot and continual updates."""
    o, z, pools = result["out_of_scope_clinc150"], result["zero_shot_banking77"], result["zero_shot_banking77_unlabelled"]
    curve = lambda c: " → ".join(str(v) for v in c["accuracy_by_shots"].values()) + "%"  # noqa: E731
    shots = " / ".join(z["accuracy_by_shots"])
    c = result["continual"]
    checkpoint = result["checkpoint"]
    clinc, banking = in_distribution_note(checkpoint, ["clinc150"]), in_distribution_note(checkpoint, ["banking77"])
    return [
        {"topic": "out of scope", "figure": "out-of-scope AUROC, CLINC150 `train_10` (no out-of-scope examples given; `test` + `oos_test`)",
         "value": str(o["auroc"]), "note": "target 0.97" + clinc},
        {"topic": "out of scope", "figure": "out-of-scope recall at the default threshold, and the in-scope accuracy it costs",
         "value": f"{o['oos_recall']}% recall, {o['accuracy_drop']}-point drop ({o['in_scope_rejected']}% of in-scope texts rejected, 5% asked)",
         "note": "target 85% within 3 points" + clinc},
        {"topic": "calibration", "figure": "expected calibration error (top-1, 15 bins), CLINC150 in-scope texts",
         "value": str(o["ece_in_scope"]), "note": "target 0.05" + clinc},
        {"topic": "calibration", "figure": f"ECE, BANKING77 task from label names + {shots} examples per label",
         "value": " / ".join(str(v) for v in z["ece_by_shots"].values()), "note": banking.removeprefix("; ")},
        {"topic": "zero shot", "figure": "BANKING77 from label names only, then examples appended (" + shots + " per label)",
         "value": curve(z), "note": "target 65% at 0 shots; monotonic: " + str(z["monotonic"]) + banking},
        {"topic": "zero shot", "figure": "the same with " + " / ".join(f"{p['unlabelled']:,}" for p in pools)
         + " unlabelled BANKING77 `train` texts posted with the task", "value": " / ".join(curve(p) for p in pools),
         "note": "unlabelled texts from the task's own traffic" + banking},
        {"topic": "continual updates", "figure": "`train_5` then the rest of `train_10` appended, against one task from `train_10`",
         "value": ", ".join(f"{v['difference']:+.2f} ({k})" for k, v in c.items()) + " points; append vs create "
         + ", ".join(f"{v['continual_append_ms'] / 1000:.1f} s vs {v['full_create_ms'] / 1000:.1f} s" for v in c.values()),
         "note": "target: within 0.5 points, faster" + in_distribution_note(checkpoint, list(c))},
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--checkpoint", default="none", help="FEWSHOT_CHECKPOINT for the server")
    parser.add_argument("--plot", default=str(ROOT / "docs" / "customer_service.png"), help="figure path ('' for none)")
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    data = Path(args.data)
    env = {"FEWSHOT_DATABASE_URL": f"sqlite:///{Path(tempfile.mkdtemp()) / 'cs.db'}",
           "FEWSHOT_ADMIN_KEY": ADMIN, "FEWSHOT_CHECKPOINT": args.checkpoint}
    with running_server(env, free_port()) as url, httpx.Client(base_url=url, timeout=900) as client:
        key = client.post("/v1/tenants", json={"name": "bench"}, headers={"Authorization": f"Bearer {ADMIN}"}).json()["api_key"]
        api = Api(client, {"Authorization": f"Bearer {key}"})
        oos_summary, oos_raw = out_of_scope(api, data / "clinc150")
        result = {"checkpoint": args.checkpoint, "out_of_scope_clinc150": oos_summary}
        print(json.dumps(result["out_of_scope_clinc150"]), flush=True)
        result["zero_shot_banking77"] = zero_shot(api, data / "banking77", [])
        print(json.dumps(result["zero_shot_banking77"]), flush=True)
        pool = [r.text for r in read_jsonl(data / "banking77" / "train.jsonl")]
        drawn = [pool[i] for i in torch.randperm(len(pool), generator=torch.Generator().manual_seed(0))[:1000].tolist()]
        result["zero_shot_banking77_unlabelled"] = [zero_shot(api, data / "banking77", texts) for texts in (drawn, pool)]
        print(json.dumps(result["zero_shot_banking77_unlabelled"]), flush=True)
        result["continual"] = {name: continual(api, data / name) for name in ("banking77", "clinc150")}
        print(json.dumps(result["continual"]), flush=True)
    if args.plot:
        curves = {f"names + {c['unlabelled']:,} unlabelled texts" if c["unlabelled"] else "names only": c["accuracy_by_shots"]
                  for c in [result["zero_shot_banking77"]] + result["zero_shot_banking77_unlabelled"]}
        plot_readiness(oos_raw["confidence"], oos_raw["correct"], oos_raw["in_scores"], oos_raw["out_scores"],
                       oos_raw["threshold"], oos_raw["ece"], curves, Path(args.plot))
        print(f"figure: {args.plot}", flush=True)
    if not args.no_doc:
        o, z = result["out_of_scope_clinc150"], result["zero_shot_banking77"]
        rows = "\n".join(f"| {name} | {c['full_accuracy']} | {c['continual_accuracy']} | {c['difference']:+.2f} | "
                         f"{c['full_create_ms']:.0f} | {c['continual_append_ms']:.0f} |" for name, c in result["continual"].items())
        plots = ([{"file": Path(args.plot).name, "caption": "reliability, rejection and zero-shot curves"}]
                 if args.plot and Path(args.plot).parent.resolve() == DOC_DIR else [])
        body = (
            f"Checkpoint `{args.checkpoint}`{in_distribution_note(args.checkpoint, ['banking77', 'clinc150'])}.\n\n"
            "**Out of scope, CLINC150** (`train_10`, no out-of-scope examples given; `test` + `oos_test`):\n\n"
            "| AUROC | OOS recall % | OOS precision % | in-scope acc. no rejection % | with rejection % | drop | in-scope rejected % | ECE (in-scope) |\n"
            "|---|---|---|---|---|---|---|---|\n"
            f"| {o['auroc']} | {o['oos_recall']} | {o['oos_precision']} | {o['in_scope_accuracy_no_rejection']} | "
            f"{o['in_scope_accuracy_with_rejection']} | {o['accuracy_drop']} | {o['in_scope_rejected']} | {o['ece_in_scope']} |\n\n"
            "**Zero shot, BANKING77** (label names only, then examples appended): "
            + ", ".join(f"{k} shots {v}%" for k, v in z["accuracy_by_shots"].items())
            + f"; monotonic: {z['monotonic']}.\n\n"
            "With unlabelled texts posted with the task (`train` texts, labels dropped):\n\n"
            "| unlabelled texts | 0 shots % | 1 | 2 | 5 | monotonic | ECE at 0 / 1 / 2 / 5 shots |\n|---|---|---|---|---|---|---|\n"
            + "".join(f"| {c['unlabelled']} | " + " | ".join(str(v) for v in c["accuracy_by_shots"].values())
                      + f" | {c['monotonic']} | " + " / ".join(str(v) for v in c["ece_by_shots"].values()) + " |\n"
                      for c in [z] + result["zero_shot_banking77_unlabelled"])
            + "\n"
            "**Continual update** (`train_5`, then the rest of `train_10` appended) vs a task from `train_10` at once:\n\n"
            "| data | full % | continual % | difference | full create ms | continual append ms |\n|---|---|---|---|---|---|\n" + rows
        )
        write_result("customer_service", "Customer-service readiness: out of scope, calibration, zero shot, continual updates",
                     body, result, summary=summary_rows(result), plots=plots, order=20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
