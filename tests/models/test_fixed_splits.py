"""Seeded fixed few-shot splits for data sets published without them."""

from __future__ import annotations

from pathlib import Path

from models.data import LabelledText, read_jsonl
from models.fixed_splits import fixed_split, prepare_data_dir, write_jsonl

ROWS = [LabelledText(f"text {label} {i}", label) for label in ("b", "a") for i in range(12)] + [LabelledText("rare", "c")]


def test_same_seed_same_split_and_the_smaller_inside_the_larger() -> None:
    five, ten = fixed_split(ROWS, 5), fixed_split(ROWS, 10)
    assert five == fixed_split(list(ROWS), 5)
    assert set(five) <= set(ten)
    counts = {label: sum(r.label == label for r in ten) for label in "abc"}
    assert counts == {"a": 10, "b": 10, "c": 1}  # a label with fewer rows keeps all it has
    assert fixed_split(ROWS, 5, seed=1) != five


def test_prepare_links_the_source_and_draws_only_missing_splits(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    write_jsonl(source / "train.jsonl", ROWS)
    write_jsonl(source / "test.jsonl", ROWS[:3])
    write_jsonl(source / "train_5.jsonl", ROWS[:2])  # published: kept as it is
    out = tmp_path / "out"
    assert prepare_data_dir(source, out) == ["train_10.jsonl"]
    assert (out / "test.jsonl").is_symlink() and read_jsonl(out / "train_5.jsonl") == ROWS[:2]
    assert read_jsonl(out / "train_10.jsonl") == fixed_split(ROWS, 10)
    assert prepare_data_dir(source, out) == []  # again: nothing new
