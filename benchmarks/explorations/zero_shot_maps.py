"""Exploration: can a fixed transform of name embeddings lift zero-shot BANKING77?

A zero-shot label is the embedding of its name (underscores as spaces); a query takes the
label of the nearest name (cosine). Two families of fixes, none needing BANKING77 labels
except where stated:

- centring: subtract a mean query embedding (of CLINC150 ``train``; of BANKING77 ``train``,
  which a product would not have; or of the test queries themselves, transductive)
  from queries and/or names, the hubness fix of Mu and Viswanath 2018 ("All-but-the-top");
- hubness scaling (CSLS, Conneau et al. 2018, "Word Translation Without Parallel Data"):
  cosine minus ``a`` times the name's mean cosine to its ``k`` nearest texts of a reference
  corpus (CLINC150 ``train``), or to its ``k`` nearest other names, so that names close
  to everything stop attracting every query;
- a learned map name -> prototype: ridge regression from CLINC150's 150 name embeddings to
  the mean embedding of their training queries (residual form ``name + name @ B``),
  checked on CLINC150 classes held out of the fit, then applied to BANKING77 names.

Both for the bare encoder and the shipped ``default`` layer mix; accuracy on all of
BANKING77 ``test``. Pooled layers are cached under ``--cache``.

    python benchmarks/explorations/zero_shot_maps.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.explorations.pooled_data import data_parser, named_split, pooled_layers  # noqa: E402
from models.checkpoint import resolve_checkpoint  # noqa: E402
from models.data import read_jsonl  # noqa: E402
from models.encoder import mix_pooled  # noqa: E402
from models.out_of_scope import class_means  # noqa: E402


def accuracy(queries: torch.Tensor, names: torch.Tensor, targets: torch.Tensor) -> float:
    predicted = (F.normalize(queries, dim=-1) @ F.normalize(names, dim=-1).T).argmax(-1)
    return round(100 * (predicted == targets).float().mean().item(), 2)


def csls_accuracy(similarity: torch.Tensor, hubness: torch.Tensor, weight: float, targets: torch.Tensor) -> float:
    """Accuracy of the nearest name after subtracting ``weight`` x each name's hubness."""
    return round(100 * ((similarity - weight * hubness).argmax(-1) == targets).float().mean().item(), 2)


def ridge_residual(x: torch.Tensor, target: torch.Tensor, lam: float) -> torch.Tensor:
    """``B`` minimising ``|x + x B - target|^2 + lam |B|^2``."""
    return torch.linalg.solve(x.T @ x + lam * torch.eye(x.shape[1]), x.T @ (target - x))


def main() -> None:
    parser = data_parser(__doc__)
    args = parser.parse_args()
    pooled = pooled_layers(args.cache)
    bank, clinc = Path(args.data) / "banking77", Path(args.data) / "clinc150"
    queries, targets, _, names = named_split(pooled, bank / "test.jsonl")
    bank_train = pooled([r.text for r in read_jsonl(bank / "train.jsonl")])
    clinc_rows = read_jsonl(clinc / "train.jsonl")
    clinc_labels = sorted({r.label for r in clinc_rows})
    clinc_train = pooled([r.text for r in clinc_rows])
    clinc_targets = torch.tensor([clinc_labels.index(r.label) for r in clinc_rows])
    clinc_names = pooled([name.replace("_", " ") for name in clinc_labels])
    valid_rows = read_jsonl(clinc / "valid.jsonl")
    clinc_valid = pooled([r.text for r in valid_rows])
    valid_targets = torch.tensor([clinc_labels.index(r.label) for r in valid_rows])
    mixes = {"bare": torch.eye(7)[6], "default mix": torch.tensor(resolve_checkpoint("default").layer_mix)}
    for mix_name, weights in mixes.items():
        q, n = mix_pooled(queries, weights), mix_pooled(names, weights)
        print(f"{mix_name}: names as they are {accuracy(q, n, targets)}")
        print(f"{mix_name}: names centred on their mean {accuracy(q, n - n.mean(0), targets)}")
        means = {"CLINC150 train": mix_pooled(clinc_train, weights).mean(0),
                 "BANKING77 train (not available to a product)": mix_pooled(bank_train, weights).mean(0),
                 "test queries (transductive)": q.mean(0)}
        for mean_name, mean in means.items():
            for a in (0.5, 1.0):
                print(f"{mix_name}: minus {a} x mean of {mean_name}: queries {accuracy(q - a * mean, n, targets)}, "
                      f"queries and names {accuracy(q - a * mean, n - a * mean, targets)}, "
                      f"queries + names centred {accuracy(q - a * mean, n - n.mean(0), targets)}")
        reference, unit_names = F.normalize(mix_pooled(clinc_train, weights), dim=-1), F.normalize(n, dim=-1)
        similarity = F.normalize(q, dim=-1) @ unit_names.T
        for k in (10, 50, 200):
            hub = (unit_names @ reference.T).topk(k, dim=-1).values.mean(-1)
            among_names = (unit_names @ unit_names.T).fill_diagonal_(-1).topk(min(k, 10), dim=-1).values.mean(-1)
            for a in (0.5, 1.0):
                print(f"{mix_name}: CSLS k={k} a={a}: CLINC150 train as reference "
                      f"{csls_accuracy(similarity, hub, a, targets)}, {min(k, 10)} nearest names "
                      f"{csls_accuracy(similarity, among_names, a, targets)}")
        x = mix_pooled(clinc_names, weights)
        prototypes = F.normalize(class_means(mix_pooled(clinc_train, weights), clinc_targets, len(clinc_labels)), dim=-1)
        v = mix_pooled(clinc_valid, weights)
        order = torch.randperm(len(clinc_labels), generator=torch.Generator().manual_seed(0))
        fit_on, held = order[: len(order) // 2], order[len(order) // 2:]
        remap = torch.full((len(clinc_labels),), -1)
        remap[held] = torch.arange(len(held))
        keep = torch.isin(valid_targets, held)
        for lam in (0.01, 0.1, 0.3, 1.0, 3.0):
            half = ridge_residual(x[fit_on], prototypes[fit_on], lam)
            before = accuracy(v[keep], x[held], remap[valid_targets[keep]])
            after = accuracy(v[keep], x[held] + x[held] @ half, remap[valid_targets[keep]])
            full = ridge_residual(x, prototypes, lam)
            print(f"{mix_name}: name->prototype map, ridge {lam}: CLINC150 held-out classes (valid) {before} -> "
                  f"{after}; BANKING77 test {accuracy(q, n + n @ full, targets)}", flush=True)


if __name__ == "__main__":
    main()
