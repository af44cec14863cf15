"""Meta-training data: a data set's train/valid rows with their cached lower-layer states."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from models.data import LabelledText, read_jsonl
from models.meta.features import TokenStates, cached_token_states


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class MetaDataset:
    """One data set for meta-training: episodes from ``train``, meta-validation from ``valid``."""

    name: str
    train_rows: list[LabelledText]
    train_states: TokenStates | Any  # or pooled per-layer vectors, see models.meta.layer_mix
    valid_rows: list[LabelledText]
    valid_states: TokenStates | Any
    provenance: dict = field(default_factory=dict)  # for the manifest: path, splits, sha256


def load_meta_dataset(
    directory: str | Path, encoder, upto: int, base_sha256: str, cache_dir: str | Path | None,
    train_split: str = "train", valid_split: str = "valid", progress: bool = False,
    featurize: Callable[[list[str]], Any] | None = None,
) -> MetaDataset:
    """Read ``<dir>/<train_split>.jsonl`` and ``<dir>/<valid_split>.jsonl`` and cache their states.

    ``encoder`` is a bare :class:`models.encoder.TransformerEncoder`; its layers
    ``[0, upto)`` are run once per text (memoised on disk under ``cache_dir``), unless
    ``featurize`` (texts -> cached features) is given.
    """
    directory = Path(directory)
    splits: dict[str, dict] = {}
    loaded = {}
    for role, split in (("train", train_split), ("valid", valid_split)):
        file = directory / f"{split}.jsonl"
        if not file.is_file():
            raise FileNotFoundError(f"{file} not found (meta-training needs {train_split} and {valid_split} splits)")
        rows = read_jsonl(file)
        texts = [r.text for r in rows]
        states = featurize(texts) if featurize else cached_token_states(
            encoder.model, encoder.tokenizer, texts, upto, base_sha256, cache_dir, encoder.max_length, progress)
        loaded[role] = (rows, states)
        splits[role] = {"split": split, "file": file.name, "rows": len(rows), "sha256": file_sha256(file)}
    provenance = {"name": directory.name, "path": str(directory), "splits": splits}
    return MetaDataset(directory.name, *loaded["train"], *loaded["valid"], provenance=provenance)
