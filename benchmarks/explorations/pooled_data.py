"""Shared by the zero-shot explorations: the bare encoder's pooled layers of a data split,
cached on disk, with each text's label index and the labels' name embeddings."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from models.data import read_jsonl
from models.encoder import TransformerEncoder, weights_sha256
from models.meta.layer_mix import cached_pooled_layers

Pooled = Callable[[Sequence[str]], torch.Tensor]


def pooled_layers(cache: str) -> Pooled:
    """texts -> ``[n, layers + 1, dim]`` pooled states of the packaged encoder (cached under ``cache``)."""
    encoder = TransformerEncoder(device="cpu")
    sha = weights_sha256(encoder.model_dir)
    return lambda texts: cached_pooled_layers(encoder, list(texts), sha, cache, progress=True)


def named_split(pooled: Pooled, file: Path, labels: list[str] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, list[str], torch.Tensor]:
    """(texts' pooled states, label indices, labels, names' pooled states) of a JSONL split;
    a name is its label with underscores as spaces. ``labels`` fixes the label order."""
    rows = read_jsonl(file)
    labels = labels or sorted({r.label for r in rows})
    targets = torch.tensor([labels.index(r.label) for r in rows])
    return pooled([r.text for r in rows]), targets, labels, pooled([n.replace("_", " ") for n in labels])


def data_parser(doc: str | None) -> argparse.ArgumentParser:
    """The explorations' common options: ``--data`` (the shared data folder) and ``--cache``."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--cache", default="runs/cache")
    return parser
