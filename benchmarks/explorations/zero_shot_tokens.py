"""Exploration: token-level read-outs for zero-shot labels.

A zero-shot label is scored by the cosine between the query's and the name's sentence
embeddings (mean of all token states, [CLS] and [SEP] included, as sentence-transformers
pools). Two token-level alternatives, for the bare last layer and the shipped layer mix:

- mean pooling over the content tokens only (no [CLS]/[SEP]), for queries and/or names:
  a two-word name is half special tokens, which pull every name toward one direction;
- a BERTScore-like recall (Zhang et al. 2020): for each content token of the name, its
  best cosine to a query token, averaged; alone and added to the pooled cosine with a
  weight (to be chosen on CLINC150 ``valid``, then read on BANKING77 ``test``).

    python benchmarks/explorations/zero_shot_tokens.py --data ../shared/data
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from models.checkpoint import resolve_checkpoint  # noqa: E402
from models.data import read_jsonl  # noqa: E402
from models.encoder import TransformerEncoder  # noqa: E402


def token_states(encoder: TransformerEncoder, texts: list[str]) -> list[torch.Tensor]:
    """Per text: every hidden state's token vectors ``[states, tokens, dim]`` (padding dropped)."""
    out: list[torch.Tensor | None] = [None] * len(texts)
    with torch.inference_mode():
        for index, batch in encoder._batches(texts):
            hidden = torch.stack(encoder.model(**batch, output_hidden_states=True).hidden_states, 1)
            lengths = batch["attention_mask"].sum(1).tolist()
            for row, i in enumerate(index):
                out[i] = hidden[row, :, : lengths[row]].clone()
    return out  # type: ignore[return-value]


def pooled(tokens: list[torch.Tensor], content_only: bool, weights: torch.Tensor) -> torch.Tensor:
    rows = []
    for hidden in tokens:
        kept = hidden[:, 1:-1] if content_only and hidden.shape[1] > 2 else hidden
        per_layer = F.normalize(kept.mean(1), dim=-1)
        rows.append(F.normalize((per_layer * weights[:, None]).sum(0), dim=-1))
    return torch.stack(rows)


def mixed_tokens(tokens: list[torch.Tensor], weights: torch.Tensor) -> list[torch.Tensor]:
    return [F.normalize((F.normalize(h, dim=-1) * weights[:, None, None]).sum(0), dim=-1) for h in tokens]


def name_recall(queries: list[torch.Tensor], names: list[torch.Tensor]) -> torch.Tensor:
    """``[queries, names]``: mean over the name's content tokens of the best cosine to a query content token."""
    scores = torch.zeros(len(queries), len(names))
    for a, query in enumerate(queries):
        for b, name in enumerate(names):
            content = name[1:-1] if name.shape[0] > 2 else name
            scores[a, b] = (content @ query[1:-1].T).max(1).values.mean()
    return scores


def report(title: str, encoder: TransformerEncoder, rows: list, labels: list[str], mix: torch.Tensor) -> None:
    targets = torch.tensor([labels.index(r.label) for r in rows])
    accuracy = lambda s: round(100 * (s.argmax(1) == targets).float().mean().item(), 2)  # noqa: E731
    queries = token_states(encoder, [r.text for r in rows])
    names = token_states(encoder, [label.replace("_", " ") for label in labels])
    for mix_name, weights in (("last layer", torch.eye(7)[6]), ("shipped mix", mix)):
        for query_content in (False, True):
            for name_content in (False, True):
                s = pooled(queries, query_content, weights) @ pooled(names, name_content, weights).T
                print(f"{title} | {mix_name} | content-only queries {query_content}, names {name_content}: {accuracy(s)}")
        base = pooled(queries, False, weights) @ pooled(names, False, weights).T
        recall = name_recall(mixed_tokens(queries, weights), mixed_tokens(names, weights))
        print(f"{title} | {mix_name} | name-token recall alone: {accuracy(recall)}")
        for weight in (0.1, 0.25, 0.5, 1.0, 2.0):
            print(f"{title} | {mix_name} | pooled + {weight} x name-token recall: {accuracy(base + weight * recall)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data")
    args = parser.parse_args()
    encoder = TransformerEncoder(device="cpu", batch_size=128)
    mix = torch.tensor(resolve_checkpoint("default").layer_mix)
    clinc = read_jsonl(Path(args.data) / "clinc150" / "valid.jsonl")
    report("CLINC150 valid", encoder, clinc, sorted({r.label for r in clinc}), mix)
    bank = read_jsonl(Path(args.data) / "banking77" / "test.jsonl")
    report("BANKING77 test", encoder, bank, sorted({r.label for r in bank}), mix)


if __name__ == "__main__":
    main()
