"""Seeded fixed few-shot splits (``train_5``, ``train_10``) for data sets published without them.

BANKING77 and CLINC150 come with fixed few-shot training files that papers report on;
SNIPS and ATIS do not. :func:`fixed_split` draws them the same way every time: for each
label (in sorted order) ``shots`` rows of ``train`` picked by ``random.Random(seed)`` from
that label's rows in file order (all of them when a label has fewer, as some ATIS intents
do), and the larger split contains the smaller one's rows (the first ``k`` picks of the same
draw), so 10-shot results extend 5-shot ones. :func:`prepare_data_dir` assembles a folder
that ``fewshot evaluate`` and ``fewshot meta-train`` read: every file of the source folder
linked, plus the drawn splits where the source has none.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Sequence

from models.data import LabelledText, read_jsonl

SEED = 0
SHOTS = (5, 10)


def fixed_split(rows: Sequence[LabelledText], shots: int, seed: int = SEED) -> list[LabelledText]:
    """Up to ``shots`` rows per label, the same for the same rows and seed (see the module doc)."""
    by_label: dict[str, list[LabelledText]] = {}
    for row in rows:
        by_label.setdefault(row.label, []).append(row)
    picked: list[LabelledText] = []
    for label in sorted(by_label):
        order = list(range(len(by_label[label])))
        random.Random(f"{seed}|{label}").shuffle(order)
        picked += [by_label[label][i] for i in sorted(order[:shots])]
    return picked


def write_jsonl(path: Path, rows: Sequence[LabelledText]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps({"text": row.text, "label": row.label}, ensure_ascii=False) + "\n")


def prepare_data_dir(source: Path, out: Path, shots: Sequence[int] = SHOTS, seed: int = SEED) -> list[str]:
    """Link ``source``'s files into ``out`` and draw the ``train_<k>`` splits it lacks (unless drawn
    already); returns the names of the files drawn now."""
    out.mkdir(parents=True, exist_ok=True)
    for file in sorted(source.glob("*.jsonl")):
        link = out / file.name
        if not link.exists():
            link.symlink_to(file.resolve())
    drawn = []
    train = read_jsonl(source / "train.jsonl")
    for k in shots:
        target = out / f"train_{k}.jsonl"
        if (source / target.name).is_file() or target.is_file():
            continue
        write_jsonl(target, fixed_split(train, k, seed))
        drawn.append(target.name)
    return drawn
