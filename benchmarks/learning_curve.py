"""Learning curve: accuracy against examples per label (1, 2, 5, 10, 20 shots) on BANKING77
and CLINC150, with the service's adaptation, for the bare encoder and shipped checkpoints.

For each shot count k there are ``--draws`` seeded support sets drawn from ``train``: draw d
shuffles each label's examples with seed ``seed + d`` and takes the first k, so a draw's
smaller support sets are part of its larger ones and every encoder adapts on the same texts.
Each support set adapts a head with :func:`models.meta.evaluation.accuracy` (the service's
``fit_adapter`` with the checkpoint's inner loop) and is scored on all of ``test``; the
figure is the mean over draws with a 95% interval (Student's t over the draws, since there
are few; 1.96 standard errors where scipy is missing). Published anchors
are drawn as points. Embeddings come from one pass of the base encoder that keeps every
layer (cached under ``--cache-dir``, so a second run skips the encoder): the bare
embedding is its last layer, a layer-mix checkpoint's is its weighted sum of layers.

    nice -n 5 python benchmarks/learning_curve.py --data-root runs/data --cache-dir runs/cache
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path
from typing import Sequence

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.results import write_result  # noqa: E402
from models.checkpoint import Checkpoint, build_encoder, resolve_checkpoint  # noqa: E402
from models.data import LabelledText, read_jsonl  # noqa: E402
from models.encoder import mix_pooled, weights_sha256  # noqa: E402
from models.inner_loop import InnerLoopConfig  # noqa: E402
from models.meta.evaluation import accuracy, embed_texts, mean_ci  # noqa: E402
from models.meta.layer_mix import cached_pooled_layers  # noqa: E402

# Published few-shot accuracies (%) by data set and shots: ICDA, Lin et al., EACL 2023.
ANCHORS = {"banking77": {5: 84.0, 10: 89.8}, "clinc150": {5: 92.6, 10: 94.8}}
# A shipped leave-one-out checkpoint that never saw the data set: the layer mix trained on CLINC150
# alone for BANKING77, the top-3 fine-tune trained on BANKING77 + SNIPS + ATIS for CLINC150.
HELD_OUT = {"banking77": "clinc150-mix", "clinc150": "clinc150-ft"}
CHECKPOINTS = Path(__file__).resolve().parent.parent / "models" / "checkpoints"


def embed_splits(splits: Sequence[Sequence[str]], checkpoints: Sequence[Checkpoint | None],
                 cache_dir: str | None) -> list[list[torch.Tensor]]:
    """Per checkpoint (None: bare), the embeddings of each split. Bare and layer-mix
    checkpoints share one cached all-layers pass per split; any other checkpoint goes
    through :func:`models.meta.evaluation.embed_texts`."""
    bare = build_encoder(None, None, device="cpu")
    sha = weights_sha256(bare.model_dir)
    layers = [cached_pooled_layers(bare, list(texts), sha, cache_dir, progress=True) for texts in splits]
    out = []
    for checkpoint in checkpoints:
        if checkpoint is None:
            out.append([pooled[:, -1] for pooled in layers])  # unit norm, as TextEncoder.encode gives
        elif checkpoint.layer_mix is not None and not checkpoint.changed_parameters():
            out.append([mix_pooled(pooled, torch.tensor(checkpoint.layer_mix)) for pooled in layers])
        else:
            joined = embed_texts(splits, [checkpoint], None, "cpu", cache_dir)[0]
            out.append(list(joined.split([len(texts) for texts in splits])))
    return out


def support_draw(rows: Sequence[LabelledText], shots: int, seed: int) -> list[int]:
    """Indices of ``shots`` examples per label (all of a label that has fewer): the first
    ``shots`` of that label's examples shuffled with ``seed``, so draws are nested in shots."""
    by_label: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_label.setdefault(row.label, []).append(i)
    chosen = []
    for label in sorted(by_label):
        members = by_label[label][:]
        random.Random(f"{seed}|{label}").shuffle(members)
        chosen += members[:shots]
    return chosen


def interval(scores: Sequence[float]) -> tuple[float, float, str]:
    """Mean, 95% half-width and its method: Student's t with n - 1 degrees of freedom (five
    draws make the normal approximation of :func:`mean_ci` 29% too narrow), else 1.96 SE."""
    mean, normal = mean_ci(scores)
    try:
        from scipy.stats import t
    except ImportError:
        return mean, normal, "normal"
    return mean, normal / 1.96 * float(t.ppf(0.975, len(scores) - 1)), "student-t"


def curve(train_emb: torch.Tensor, train: list[LabelledText], test_emb: torch.Tensor, test: list[LabelledText],
          config: InnerLoopConfig, shots: Sequence[int], draws: int, seed: int) -> dict[str, dict]:
    """Per shot count: the accuracy (%) of every draw, their mean and the 95% half-width."""
    result = {}
    for k in shots:
        scores = []
        for d in range(draws):
            index = support_draw(train, k, seed + d)
            scores.append(100 * accuracy(train_emb[index], [train[i] for i in index], test_emb, test, config))
        mean, half, method = interval(scores)
        result[str(k)] = {"draws": [round(s, 2) for s in scores], "mean": round(mean, 2), "ci95": round(half, 2),
                          "interval": method}
        print(f"  {k:>2} shots: {mean:.2f} ± {half:.2f}", flush=True)
    return result


def plot(results: dict[str, dict], shots: Sequence[int], path: Path) -> None:
    """One panel per data set: mean accuracy with its 95% interval per encoder, anchors as points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.3), squeeze=False)
    for axis, (name, encoders) in zip(axes[0], results.items()):
        for i, (label, points) in enumerate(encoders.items()):
            means = [points[str(k)]["mean"] for k in shots]
            nudged = [k * 1.03 ** (i - (len(encoders) - 1) / 2) for k in shots]  # error bars side by side
            axis.errorbar(nudged, means, yerr=[points[str(k)]["ci95"] for k in shots], marker="o", capsize=3,
                          label=label.replace("`", ""))
        anchor = ANCHORS.get(name, {})
        axis.plot(list(anchor), list(anchor.values()), "k*", markersize=11, label="ICDA (EACL 2023), published")
        axis.set_xscale("log")
        axis.set_xticks(list(shots), [str(k) for k in shots])
        axis.set(xlabel="examples per label (log scale)", ylabel="accuracy on test (%)", title=name.upper())
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summary_rows(data: dict) -> list[dict[str, str]]:
    """The report's accuracy rows: one per data set and encoder, every shot count in one value."""
    shots, rows = data["shots"], []
    for name, encoders in data["results"].items():
        anchor = ANCHORS.get(name, {})
        for label, points in encoders.items():
            rows.append({"topic": "accuracy",
                         "figure": f"{name.upper()} learning curve, {label}: {' / '.join(map(str, shots))} shots "
                                   f"({data['draws']} support draws, all of `test`)",
                         "value": " / ".join(f"{points[str(k)]['mean']:.2f}" for k in shots) + "%",
                         "note": "95% interval ± " + " / ".join(f"{points[str(k)]['ci95']:.2f}" for k in shots)
                                 + (f"; ICDA {' / '.join(f'{v}' for v in anchor.values())} at "
                                    f"{' / '.join(map(str, anchor))} shots" if label == "bare encoder" else "")})
    return rows


def first_interval(data: dict) -> str:
    """The interval method the result used (the same for every point of a run)."""
    encoders = next(iter(data["results"].values()))
    return next(iter(next(iter(encoders.values())).values()))["interval"]


def body(data: dict, plot_name: str) -> str:
    """The section: conditions, the table of means and intervals, and what the checkpoints saw."""
    shots = data["shots"]
    lines = [f"Support sets: {data['draws']} seeded draws of k examples per label from `train` per shot count "
             f"(nested: a draw's smaller sets are part of its larger ones), the same texts for every encoder; "
             f"each adapts the service's head (`fit_adapter`, the checkpoint's inner loop) and is scored on all of "
             f"`test` ({', '.join(f'{n.upper()} {c}' for n, c in data['test_texts'].items())} texts). "
             "Mean accuracy (%) over draws ± the half-width of its 95% interval "
             f"({'Student t' if first_interval(data) == 'student-t' else '1.96 standard errors'} over the draws).", "",
             "| data set | encoder | " + " | ".join(f"{k}-shot" for k in shots) + " |",
             "|---|---|" + "---|" * len(shots)]
    for name, encoders in data["results"].items():
        for label, points in encoders.items():
            lines.append(f"| {name.upper()} | {label} | "
                         + " | ".join(f"{points[str(k)]['mean']:.2f} ± {points[str(k)]['ci95']:.2f}" for k in shots) + " |")
        anchor = ANCHORS.get(name, {})
        lines.append(f"| {name.upper()} | ICDA (EACL 2023), published | "
                     + " | ".join(str(anchor.get(k, "")) for k in shots) + " |")
    lines += ["", "Each checkpoint minus the bare encoder, paired over the same support draws (points, mean ± 95% "
              "interval of the per-draw differences):", "",
              "| data set | encoder | " + " | ".join(f"{k}-shot" for k in shots) + " |", "|---|---|" + "---|" * len(shots)]
    for name, encoders in data["results"].items():
        bare = encoders["bare encoder"]
        for label, points in encoders.items():
            if label != "bare encoder":
                paired = [interval([a - b for a, b in zip(points[str(k)]["draws"], bare[str(k)]["draws"])]) for k in shots]
                lines.append(f"| {name.upper()} | {label} | " + " | ".join(f"{m:+.2f} ± {h:.2f}" for m, h, _ in paired) + " |")
    lines += ["", "`default` was meta-trained on the `train` splits of both data sets (and SNIPS and ATIS; never on "
              "`test`; its fixed `train_5` / `train_10` rows left out), so most support draws here are texts it has "
              "seen: an in-distribution figure. The leave-one-out checkpoints never saw the data set they are scored "
              "on (`clinc150-mix`, a layer mix, was trained on CLINC150 only; `clinc150-ft`, the top three layers "
              "fine-tuned, on BANKING77, SNIPS and ATIS), which is what a new customer's data gets. The published "
              "anchors come from their paper's own protocol and support sets.", "", f"![learning curve]({plot_name})"]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default="runs/data", help="folder with <data set>/train.jsonl and test.jsonl")
    parser.add_argument("--sets", nargs="+", default=["banking77", "clinc150"])
    parser.add_argument("--shots", nargs="+", type=int, default=[1, 2, 5, 10, 20])
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", default="default", help="the checkpoint beside the bare encoder")
    parser.add_argument("--cache-dir", default="runs/cache", help="embedding cache ('' for none)")
    parser.add_argument("--plot", default="docs/learning_curve.png")
    parser.add_argument("--no-doc", action="store_true", help="do not write docs/results/")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    data: dict = {"shots": args.shots, "draws": args.draws, "seed": args.seed, "checkpoint": args.checkpoint,
                  "anchors": ANCHORS, "test_texts": {}, "results": {}}
    for name in args.sets:
        folder = Path(args.data_root) / name
        train, test = read_jsonl(folder / "train.jsonl"), read_jsonl(folder / "test.jsonl")
        encoders: dict[str, Checkpoint | None] = {"bare encoder": None,
                                                  f"`{args.checkpoint}` checkpoint": resolve_checkpoint(args.checkpoint)}
        if name in HELD_OUT:
            encoders[f"held-out checkpoint `{HELD_OUT[name]}`"] = resolve_checkpoint(str(CHECKPOINTS / HELD_OUT[name]))
        embedded = embed_splits([[r.text for r in train], [r.text for r in test]], list(encoders.values()),
                                args.cache_dir or None)
        data["test_texts"][name], data["results"][name] = len(test), {}
        for (label, checkpoint), (train_emb, test_emb) in zip(encoders.items(), embedded):
            print(f"{name}, {label}:", flush=True)
            config = checkpoint.inner_loop if checkpoint is not None else InnerLoopConfig()
            data["results"][name][label] = curve(train_emb, train, test_emb, test, config, args.shots, args.draws,
                                                 args.seed)
    plot(data["results"], args.shots, Path(args.plot))
    if not args.no_doc:
        write_result("learning_curve", "Learning curve: accuracy against shots", body(data, Path(args.plot).name), data,
                     summary=summary_rows(data), plots=[{"file": Path(args.plot).name, "caption": "learning curve"}],
                     order=12)
    return 0


if __name__ == "__main__":
    sys.exit(main())
