"""Exploration: does another pooling of the tokens help the out-of-scope score?

The service pools the mean of all token states ([CLS] and [SEP] included). Here the same
relative Mahalanobis score and leave-one-out threshold (support: CLINC150 ``train_10``)
on: the mean of the content tokens only, the max over content tokens, and
concatenations (one 768-d vector) of two poolings or of two layers; for the bare last
layer and the shipped layer mix. Chosen on ``valid`` + ``oos_valid`` + ``oos_train``,
``test`` + ``oos_test`` beside it. Token poolings of every layer are computed in one pass
(about 2 minutes on 2 CPU cores) and kept under ``--cache``.

    python benchmarks/explorations/oos_pooling.py --data ../shared/data/clinc150
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.explorations.oos_features import SPLITS, figures, scores_for  # noqa: E402
from models.checkpoint import resolve_checkpoint  # noqa: E402
from models.data import read_jsonl  # noqa: E402
from models.encoder import TransformerEncoder, mix_pooled  # noqa: E402

POOLINGS = ("mean of all tokens", "mean of content tokens", "max over content tokens")


def poolings(encoder: TransformerEncoder, texts: list[str]) -> torch.Tensor:
    """``[n, layers + 1, 3, dim]``: each :data:`POOLINGS` of every hidden state, unit norm."""
    out = torch.empty(len(texts), 7, len(POOLINGS), encoder.dim)
    with torch.inference_mode():
        for index, batch in encoder._batches(texts):
            hidden = torch.stack(encoder.model(**batch, output_hidden_states=True).hidden_states, 1)  # b, 7, t, d
            mask = batch["attention_mask"]
            content = mask.clone()
            content[:, 0] = 0
            content[torch.arange(len(content)), mask.sum(1) - 1] = 0
            mean_all = (hidden * mask[:, None, :, None]).sum(2) / mask.sum(1)[:, None, None]
            mean_content = (hidden * content[:, None, :, None]).sum(2) / content.sum(1).clamp_min(1)[:, None, None]
            max_content = hidden.masked_fill(content[:, None, :, None] == 0, -1e4).max(2).values
            out[torch.tensor(index)] = torch.stack([F.normalize(v, dim=-1) for v in (mean_all, mean_content, max_content)], 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/clinc150")
    parser.add_argument("--cache", default="runs/cache")
    args = parser.parse_args()
    cache = Path(args.cache) / "oos-poolings.safetensors"
    if cache.is_file():
        pooled = load_file(str(cache))
    else:
        encoder = TransformerEncoder(device="cpu", batch_size=128)
        pooled = {s: poolings(encoder, [r.text for r in read_jsonl(Path(args.data) / f"{s}.jsonl")]) for s in SPLITS}
        cache.parent.mkdir(parents=True, exist_ok=True)
        save_file({s: v.contiguous() for s, v in pooled.items()}, str(cache))
    rows = read_jsonl(Path(args.data) / "train_10.jsonl")
    labels = sorted({r.label for r in rows})
    targets = torch.tensor([labels.index(r.label) for r in rows])
    mix = torch.tensor(resolve_checkpoint("default").layer_mix)

    def report(name: str, feature) -> None:
        score, loo = scores_for({s: feature(pooled[s]) for s in SPLITS}, targets, len(labels))
        valid = figures(score, loo, "valid", ["oos_valid", "oos_train"], 0.05)
        test = figures(score, loo, "test", ["oos_test"], 0.05)
        print(f"{name:48s} valid {valid}  test {test}", flush=True)

    for k, pooling in enumerate(POOLINGS):
        for mix_name, weights in (("shipped mix", mix), ("last layer", torch.eye(7)[6])):
            report(f"{pooling}, {mix_name}", lambda p, k=k, w=weights: mix_pooled(p[:, :, k], w))
    concat = lambda a, b: F.normalize(torch.cat([a, b], -1), dim=-1)  # noqa: E731
    report("concat: mean all + mean content (mix)", lambda p: concat(mix_pooled(p[:, :, 0], mix), mix_pooled(p[:, :, 1], mix)))
    report("concat: mean all + 0.5 max content (mix)", lambda p: concat(mix_pooled(p[:, :, 0], mix), 0.5 * mix_pooled(p[:, :, 2], mix)))
    report("concat: last layer + 0.7 layer 3 (mean all)", lambda p: concat(p[:, 6, 0], 0.7 * p[:, 3, 0]))
    report("sum: mean all + 0.5 max content (mix)",
           lambda p: F.normalize(mix_pooled(p[:, :, 0], mix) + 0.5 * mix_pooled(p[:, :, 2], mix), dim=-1))


if __name__ == "__main__":
    main()
