"""Exploration: label names expanded with retrieved utterances.

A zero-shot label is its name's embedding ("card arrival") and a query takes the nearest
name: BANKING77 ``test`` 62.14% with the shipped ``default`` mix (target 65%). Names and
utterances differ in style ("When will my card arrive?"), so a name sits away from its
own utterances. Pseudo-relevance feedback (Rocchio 1971; the retrieval view of query
expansion) moves each name toward the utterances nearest to it in a *bank of texts from
another domain*, which a product could ship (it is not the customer's data):

    mu_c = normalise(n_c + w * sum_x softmax_top-k(scale * cos(n_c, x)) x)

Chosen on CLINC150 ``valid`` (150 names) with BANKING77 ``train`` as the bank; read on
BANKING77 ``test`` with CLINC150 ``train`` as the bank (each data set never banks itself).

    python benchmarks/explorations/zero_shot_style_bank.py --data ../shared/data
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.explorations.pooled_data import data_parser, named_split, pooled_layers  # noqa: E402
from models.checkpoint import resolve_checkpoint  # noqa: E402
from models.encoder import mix_pooled  # noqa: E402


def accuracy(queries: torch.Tensor, names: torch.Tensor, targets: torch.Tensor) -> float:
    predicted = (F.normalize(queries, dim=-1) @ F.normalize(names, dim=-1).T).argmax(-1)
    return round(100 * (predicted == targets).float().mean().item(), 2)


def expand(names: torch.Tensor, bank: torch.Tensor, k: int, scale: float, weight: float) -> torch.Tensor:
    """Each name plus ``weight`` x the softmax-weighted mean of its ``k`` nearest bank texts."""
    n, b = F.normalize(names, dim=-1), F.normalize(bank, dim=-1)
    similarity, index = (n @ b.T).topk(k, dim=-1)
    attention = torch.softmax(scale * similarity, dim=-1)
    retrieved = F.normalize((attention.unsqueeze(-1) * b[index]).sum(1), dim=-1)
    return F.normalize(n + weight * retrieved, dim=-1)


def main() -> None:
    parser = data_parser(__doc__)
    args = parser.parse_args()
    pooled = pooled_layers(args.cache)
    mix = torch.tensor(resolve_checkpoint("default").layer_mix)
    bank_dir, clinc_dir = Path(args.data) / "banking77", Path(args.data) / "clinc150"
    b_test, b_targets, b_labels, b_names = named_split(pooled, bank_dir / "test.jsonl")
    b_train, _, _, _ = named_split(pooled, bank_dir / "train.jsonl", b_labels)
    c_valid, c_targets, c_labels, c_names = named_split(pooled, clinc_dir / "valid.jsonl")
    c_train, _, _, _ = named_split(pooled, clinc_dir / "train.jsonl", c_labels)
    b_test, b_train, b_names, c_valid, c_train, c_names = (
        mix_pooled(x, mix) for x in (b_test, b_train, b_names, c_valid, c_train, c_names))
    print(f"names only: CLINC150 valid {accuracy(c_valid, c_names, c_targets)}, "
          f"BANKING77 test {accuracy(b_test, b_names, b_targets)}", flush=True)
    rows = []
    for k, scale, weight in itertools.product((1, 5, 20, 100), (0.0, 20.0), (0.25, 0.5, 1.0, 2.0)):
        if k == 1 and scale:
            continue
        valid = accuracy(c_valid, expand(c_names, b_train, k, scale, weight), c_targets)
        test = accuracy(b_test, expand(b_names, c_train, k, scale, weight), b_targets)
        rows.append((valid, k, scale, weight, test))
        print(f"k {k}, scale {scale}, weight {weight}: CLINC150 valid {valid}, BANKING77 test {test}", flush=True)
    best = max(rows)
    print(f"chosen on CLINC150 valid: k {best[1]}, scale {best[2]}, weight {best[3]} -> "
          f"CLINC150 valid {best[0]}, BANKING77 test {best[4]}")


if __name__ == "__main__":
    main()
