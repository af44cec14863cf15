"""Exploration: can a little LoRA training on the CPU move the targets?

LoRA (rank 8, alpha 16) on encoder layers 4 and 5; layers 0-3 run once per text and are
cached (``models.meta.features``). Sentence embedding: mean pooling of the last layer.
Two probes, each printing its figures every 50 steps:

``names``: zero-shot by label names. Batches of 32 CLINC150 classes x 8 training
utterances; loss: cross-entropy of each utterance against the 32 names' embeddings
(scale 20), plus ``--proto-weight`` x a prototypical loss (4 support, 4 query) that keeps
the few-shot geometry. 30 CLINC150 classes are held out of training; printed: zero-shot
accuracy on their ``valid`` utterances (where a stopping point would be chosen), zero-shot
on BANKING77 ``test`` (the target, 65%), and BANKING77 10-shot nearest-prototype accuracy.

``oos``: out-of-scope rejection. 20-way episodes (5 support, 5 queries per class)
alternating CLINC150 and BANKING77 ``train`` without the rows of ``train_5``/``train_10``;
loss: prototypical on 15 classes plus ``--oos-weight`` x the ranking term of
``models.meta.oos_loss`` with the other 5 classes as out-of-scope queries. Printed: the
service's relative Mahalanobis score fitted on CLINC150 ``train_10`` (150 labels),
AUROC / rejected / recall on ``valid`` + ``oos_valid`` + ``oos_train`` and on ``test`` +
``oos_test``, and the nearest-prototype accuracy on ``test``.

    python benchmarks/explorations/lora_probes.py names --proto-weight 0 --lr 1e-3
    python benchmarks/explorations/lora_probes.py oos --oos-weight 1 --lr 3e-4
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.explorations.oos_features import SPLITS, figures, scores_for  # noqa: E402
from models.data import read_jsonl  # noqa: E402
from models.encoder import TransformerEncoder, weights_sha256  # noqa: E402
from models.head import prototypes  # noqa: E402
from models.inner_loop import InnerLoopConfig  # noqa: E402
from models.lora import apply_lora  # noqa: E402
from models.meta.algorithms import protonet_loss  # noqa: E402
from models.meta.data import without_fixed_splits  # noqa: E402
from models.meta.features import cached_token_states, compute_token_states, embed_states  # noqa: E402
from models.meta.oos_loss import with_out_of_scope  # noqa: E402

LOWER = 4  # layers 0-3 cached, LoRA on 4 and 5


def accuracy(scores: torch.Tensor, targets: torch.Tensor) -> float:
    return round(100 * scores.argmax(1).eq(targets).float().mean().item(), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("probe", choices=("names", "oos"))
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--cache", default="runs/cache")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--proto-weight", type=float, default=0.0)
    parser.add_argument("--oos-weight", type=float, default=1.0)
    args = parser.parse_args()
    torch.manual_seed(0)
    rng = random.Random(0)
    encoder = TransformerEncoder(device="cpu")
    sha = weights_sha256(encoder.model_dir)
    states = lambda texts: cached_token_states(encoder.model, encoder.tokenizer, texts, LOWER, sha, args.cache,  # noqa: E731
                                                encoder.max_length, True)
    data = Path(args.data)
    layers = list(encoder.model.encoder.layer[LOWER:])
    for parameter in encoder.model.parameters():
        parameter.requires_grad_(False)
    wrapped = apply_lora(layers, [4, 5], rank=8, alpha=16)
    optimiser = torch.optim.Adam([p for m in wrapped.values() for p in (m.lora_A, m.lora_B)], lr=args.lr)
    embed = lambda s, rows, chunk=128: embed_states(layers, s, list(rows), chunk=chunk)  # noqa: E731
    step_fn, evaluate = (names_probe if args.probe == "names" else oos_probe)(args, encoder, data, states, embed, rng)
    print("step 0", evaluate(), flush=True)
    started = time.time()
    for step in range(1, args.steps + 1):
        loss = step_fn(step)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % 50 == 0:
            print(f"step {step} loss {loss.item():.3f} {time.time() - started:.0f}s", evaluate(), flush=True)


def names_probe(args, encoder: TransformerEncoder, data: Path, states, embed, rng: random.Random):
    clinc_train, clinc_valid = read_jsonl(data / "clinc150/train.jsonl"), read_jsonl(data / "clinc150/valid.jsonl")
    bank_test, bank_10 = read_jsonl(data / "banking77/test.jsonl"), read_jsonl(data / "banking77/train_10.jsonl")
    clinc_labels, bank_labels = sorted({r.label for r in clinc_train}), sorted({r.label for r in bank_test})
    held = sorted(random.Random(0).sample(clinc_labels, 30))
    fit = [label for label in clinc_labels if label not in held]
    s_train, s_valid = states([r.text for r in clinc_train]), states([r.text for r in clinc_valid])
    s_test, s_10 = states([r.text for r in bank_test]), states([r.text for r in bank_10])
    name_states = lambda labels: compute_token_states(encoder.model, encoder.tokenizer,  # noqa: E731
                                                      [label.replace("_", " ") for label in labels], LOWER)
    s_clinc_names, s_bank_names = name_states(clinc_labels), name_states(bank_labels)
    by_class: dict[str, list[int]] = {}
    for i, row in enumerate(clinc_train):
        if row.label in fit:
            by_class.setdefault(row.label, []).append(i)
    bank_targets = torch.tensor([bank_labels.index(r.label) for r in bank_test])
    bank_10_targets = torch.tensor([bank_labels.index(r.label) for r in bank_10])
    held_rows = [i for i, r in enumerate(clinc_valid) if r.label in held]
    held_targets = torch.tensor([held.index(clinc_valid[i].label) for i in held_rows])

    def step(_: int) -> torch.Tensor:
        classes = rng.sample(fit, 32)
        rows = [i for label in classes for i in rng.sample(by_class[label], 8)]
        utterances = embed(s_train, rows, 64)
        names = embed(s_clinc_names, [clinc_labels.index(label) for label in classes])
        loss = F.cross_entropy(20 * utterances @ names.T, torch.arange(32).repeat_interleave(8))
        if args.proto_weight:
            grouped = utterances.view(32, 8, -1)
            halves = torch.arange(32).repeat_interleave(4)
            loss = loss + args.proto_weight * protonet_loss(grouped[:, :4].reshape(-1, grouped.shape[-1]), halves,
                                                            grouped[:, 4:].reshape(-1, grouped.shape[-1]), halves, 32, 20.0)
        return loss

    @torch.no_grad()
    def evaluate() -> dict:
        queries = embed(s_test, range(len(bank_test)))
        held_names = embed(s_clinc_names, [clinc_labels.index(label) for label in held])
        return {"held-out CLINC150 zero-shot": accuracy(embed(s_valid, held_rows) @ held_names.T, held_targets),
                "BANKING77 zero-shot": accuracy(queries @ embed(s_bank_names, range(len(bank_labels))).T, bank_targets),
                "BANKING77 10-shot": accuracy(queries @ prototypes(embed(s_10, range(len(bank_10))), bank_10_targets,
                                                                     len(bank_labels)).T, bank_targets)}

    return step, evaluate


def oos_probe(args, encoder: TransformerEncoder, data: Path, states, embed, rng: random.Random):
    train = {name: read_jsonl(data / name / "train.jsonl") for name in ("clinc150", "banking77")}
    by_class: dict[str, dict[str, list[int]]] = {}
    train_states = {}
    for name, rows in train.items():
        kept, _ = without_fixed_splits(rows, data / name, "train")
        kept_texts = {r.text for r in kept}
        train_states[name] = states([r.text for r in rows])
        by_class[name] = {}
        for i, row in enumerate(rows):
            if row.text in kept_texts:
                by_class[name].setdefault(row.label, []).append(i)
    rows = {split: read_jsonl(data / "clinc150" / f"{split}.jsonl") for split in SPLITS}
    split_states = {split: states([r.text for r in rows[split]]) for split in SPLITS}
    labels = sorted({r.label for r in rows["train_10"]})
    support_targets = torch.tensor([labels.index(r.label) for r in rows["train_10"]])
    test_targets = torch.tensor([labels.index(r.label) for r in rows["test"]])
    ways, shots, queries = 20, 5, 5
    # prototypical loss on 15 classes, the ranking term with the other 5 (a quarter) as out-of-scope queries;
    # with weight 0 the same 15 classes and no term (the control)
    episode_loss = with_out_of_scope(lambda s, ys, q, yq, k, config: protonet_loss(s, ys, q, yq, k, 20.0), args.oos_weight)

    def step(index: int) -> torch.Tensor:
        name = "clinc150" if index % 2 else "banking77"
        classes = rng.sample(sorted(by_class[name]), ways)
        support, query = [], []
        for label in classes:
            picked = rng.sample(by_class[name][label], shots + queries)
            support += picked[:shots]
            query += picked[shots:]
        embedded = embed(train_states[name], support + query, 64)
        s, q = embedded[: len(support)], embedded[len(support):]
        ys, yq = torch.arange(ways).repeat_interleave(shots), torch.arange(ways).repeat_interleave(queries)
        return episode_loss(s, ys, q, yq, ways, InnerLoopConfig())

    @torch.no_grad()
    def evaluate() -> dict:
        features = {split: embed(split_states[split], range(len(rows[split]))) for split in SPLITS}
        score, loo = scores_for(features, support_targets, len(labels))
        protos = prototypes(features["train_10"], support_targets, len(labels))
        return {"valid": figures(score, loo, "valid", ["oos_valid", "oos_train"], 0.05),
                "test": figures(score, loo, "test", ["oos_test"], 0.05),
                "test accuracy": accuracy(features["test"] @ protos.T, test_targets)}

    return step, evaluate


if __name__ == "__main__":
    main()
