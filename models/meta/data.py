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
    valid_states: TokenStates | Any  # valid_rows, then valid_oos_count out-of-scope texts
    provenance: dict = field(default_factory=dict)  # for the manifest: path, splits, sha256
    valid_oos_count: int = 0  # out-of-scope texts (``oos_<valid_split>``, ``oos_<train_split>``) after the valid rows'

    def valid_oos_indices(self) -> list[int]:
        return list(range(len(self.valid_rows), len(self.valid_rows) + self.valid_oos_count))


def load_meta_dataset(
    directory: str | Path, encoder, upto: int, base_sha256: str, cache_dir: str | Path | None,
    train_split: str = "train", valid_split: str = "valid", progress: bool = False,
    featurize: Callable[[list[str]], Any] | None = None, exclude_fixed_splits: bool = False,
) -> MetaDataset:
    """Read ``<dir>/<train_split>.jsonl`` and ``<dir>/<valid_split>.jsonl`` and cache their states.

    ``encoder`` is a bare :class:`models.encoder.TransformerEncoder`; its layers
    ``[0, upto)`` are run once per text (memoised on disk under ``cache_dir``), unless
    ``featurize`` (texts -> cached features) is given. ``exclude_fixed_splits`` drops
    the training rows that also appear in the data set's fixed few-shot splits
    (``<train_split>_*.jsonl``, e.g. ``train_5``, ``train_10``): a checkpoint with enough
    capacity (LoRA) would otherwise have seen the very support sets that ``evaluate`` and
    the benchmarks fit, and those would look tighter than new texts of their class.
    A data set with out-of-scope texts (``oos_<valid_split>.jsonl`` and
    ``oos_<train_split>.jsonl``, as CLINC150 has; training never uses them) gets their
    states after the valid rows' (``valid_oos_count``), for selecting a checkpoint on real
    out-of-scope rejection (:mod:`models.meta.validation`); both files, because 100 texts
    alone make the AUROC too noisy to pick a step.
    """
    directory = Path(directory)
    splits: dict[str, dict] = {}
    loaded, excluded, oos_count = {}, None, 0
    for role, split in (("train", train_split), ("valid", valid_split)):
        file = directory / f"{split}.jsonl"
        if not file.is_file():
            raise FileNotFoundError(f"{file} not found (meta-training needs {train_split} and {valid_split} splits)")
        rows = read_jsonl(file)
        if role == "train" and exclude_fixed_splits:
            rows, excluded = without_fixed_splits(rows, directory, train_split)
        texts = [r.text for r in rows]
        oos_files = [directory / f"oos_{s}.jsonl" for s in (valid_split, train_split)]
        if role == "valid" and any(f.is_file() for f in oos_files):
            oos_rows = {f: read_jsonl(f) for f in oos_files if f.is_file()}
            oos_texts = [r.text for rows_of_file in oos_rows.values() for r in rows_of_file]
            texts, oos_count = texts + oos_texts, len(oos_texts)
            splits["valid_out_of_scope"] = [{"split": f.stem, "file": f.name, "rows": len(r), "sha256": file_sha256(f)}
                                            for f, r in oos_rows.items()]
        states = featurize(texts) if featurize else cached_token_states(
            encoder.model, encoder.tokenizer, texts, upto, base_sha256, cache_dir, encoder.max_length, progress)
        loaded[role] = (rows, states)
        splits[role] = {"split": split, "file": file.name, "rows": len(rows), "sha256": file_sha256(file)}
    provenance = {"name": directory.name, "path": str(directory.resolve()), "splits": splits}
    if excluded is not None:
        provenance["excluded_fixed_splits"] = excluded
    return MetaDataset(directory.name, *loaded["train"], *loaded["valid"], provenance=provenance, valid_oos_count=oos_count)


def without_fixed_splits(rows: list[LabelledText], directory: Path, train_split: str) -> tuple[list[LabelledText], dict]:
    """``rows`` minus those whose text is in a ``<train_split>_*.jsonl`` file, and what was dropped (for the manifest)."""
    fixed = sorted(directory.glob(f"{train_split}_*.jsonl"))
    texts = {row.text for file in fixed for row in read_jsonl(file)}
    kept = [row for row in rows if row.text not in texts]
    return kept, {"splits": [file.name for file in fixed], "rows": len(rows) - len(kept)}
