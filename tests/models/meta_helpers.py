"""Tiny stand-ins for meta-training tests: a random 3-layer BERT on disk and toy data sets.

Nothing here downloads anything or reads /work/shared: the tokenizer vocabulary and
the model are made up, so every test stays fast and offline.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch

from models.data import LabelledText
from models.meta.features import TokenStates

WORDS = [f"w{i}" for i in range(60)]


def tiny_bert_dir(path: Path, seed: int = 0, layers: int = 3) -> Path:
    """Write a random BERT (hidden 16) with a word-level vocabulary to ``path``."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(path / "vocab.txt"), do_lower_case=True).save_pretrained(path)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    BertModel(config).eval().save_pretrained(path)
    return path


def toy_rows(classes: int, per_class: int, seed: int = 0, prefix: str = "c") -> list[LabelledText]:
    """Texts whose class shows in two class-specific words among random filler words."""
    rng = random.Random(seed)
    rows = []
    for c in range(classes):
        keys = WORDS[2 * c % 40], WORDS[(2 * c + 1) % 40]
        for _ in range(per_class):
            filler = rng.sample(WORDS[40:], 3)
            rows.append(LabelledText(" ".join([keys[rng.randrange(2)], *filler, keys[rng.randrange(2)]]), f"{prefix}{c}"))
    return rows


def write_jsonl(path: Path, rows: list[LabelledText]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"text": r.text, "label": r.label}) + "\n" for r in rows))


def toy_dataset_dir(path: Path, classes: int = 6, seed: int = 0, prefix: str = "c") -> Path:
    """A data set folder with train, train_5, train_10, valid and test splits."""
    train = toy_rows(classes, 14, seed, prefix)
    write_jsonl(path / "train.jsonl", train)
    by_label: dict[str, list[LabelledText]] = {}
    for row in train:
        by_label.setdefault(row.label, []).append(row)
    write_jsonl(path / "train_5.jsonl", [r for rows in by_label.values() for r in rows[:5]])
    write_jsonl(path / "train_10.jsonl", [r for rows in by_label.values() for r in rows[:10]])
    write_jsonl(path / "valid.jsonl", toy_rows(classes, 12, seed + 1, prefix))
    write_jsonl(path / "test.jsonl", toy_rows(classes, 8, seed + 2, prefix))
    return path


def toy_states(rows: list[LabelledText], dim: int = 16, seed: int = 0, signal: float = 0.6) -> TokenStates:
    """Random token states (3-6 tokens per text) carrying a weak class direction."""
    generator = torch.Generator().manual_seed(seed)
    labels = sorted({r.label for r in rows})
    directions = torch.randn(len(labels), dim, generator=generator)
    pieces, lengths = [], [0]
    for row in rows:
        length = 3 + int(torch.randint(0, 4, (1,), generator=generator))
        tokens = torch.randn(length, dim, generator=generator) + signal * directions[labels.index(row.label)]
        pieces.append(tokens)
        lengths.append(length)
    return TokenStates(torch.cat(pieces), torch.tensor(lengths).cumsum(0))


def tiny_layers(layers: int = 2, seed: int = 0):
    """Random BERT layers (hidden 16) as a ModuleList, in eval mode."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=10, hidden_size=16, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    return BertModel(config).eval().encoder.layer
