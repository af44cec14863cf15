"""Evaluation on a held-out data set, with the service's adaptation, bare vs checkpoints.

(a) Fixed splits: adapt on ``train_5`` / ``train_10`` and score on the whole ``test``.
(b) Random N-way K-shot episodes: support from ``train``, queries from ``test``, the
    same episodes (same seed) for every encoder, mean accuracy with a 95% confidence
    interval (normal approximation, 1.96 standard errors), plus the paired difference
    to the bare encoder with its own interval.

Each text is embedded once per encoder and the embeddings are reused by every
episode. The lower layers a checkpoint leaves unchanged are run once for all
encoders (cached token states), so only the changed top layers run per checkpoint; a
checkpoint that only mixes the frozen encoder's layers is a weighted sum of cached
pooled per-layer vectors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from models.checkpoint import Checkpoint, build_encoder
from models.classifier import fit_adapter
from models.data import LabelledText, read_jsonl
from models.encoder import mix_pooled
from models.episodes import EpisodeSampler
from models.inner_loop import InnerLoopConfig
from models.meta.data import file_sha256
from models.meta.layer_mix import cached_pooled_layers
from models.meta.features import TokenStates, cached_token_states, concat_states, embed_states, first_changed_layer


class LeakageError(ValueError):
    """The checkpoint was meta-trained on the data set it is asked to be evaluated on."""


def _trained_entries(data_dir: Path, checkpoint: Checkpoint) -> list[dict]:
    """The manifest's ``trained_on`` entries that are ``data_dir`` (by folder name, path, or any file's sha256)."""
    hashes = {file_sha256(f) for f in sorted(data_dir.glob("*.jsonl"))}
    found = []
    for entry in checkpoint.manifest.get("trained_on", []):
        # A split is one file's record, or a list of them (the out-of-scope validation texts).
        records = [r for v in entry.get("splits", {}).values() for r in (v if isinstance(v, list) else [v])]
        trained = {r.get("sha256") for r in records} - {None}
        same_path = entry.get("path") and Path(entry["path"]).resolve() == data_dir
        if entry.get("name") == data_dir.name or same_path or trained & hashes:
            found.append(entry)
    return found


def check_leakage(data_dir: str | Path, checkpoint: Checkpoint) -> None:
    """Refuse a data set the manifest names (by folder name, path, or any file's sha256)."""
    for entry in _trained_entries(Path(data_dir).resolve(), checkpoint):
        raise LeakageError(
            f"checkpoint {checkpoint.path} was meta-trained on {entry.get('name')!r} "
            f"({entry.get('path')}); evaluating it on {data_dir} would leak training data"
        )


def check_in_distribution(data_dir: str | Path, checkpoint: Checkpoint) -> None:
    """An in-distribution check of a checkpoint trained on ``data_dir``'s ``train`` split is
    sound only if the run left out its fixed few-shot rows (``--exclude-fixed-splits``, so the
    support sets are texts it never saw) and never trained on ``test``; else refused."""
    for entry in _trained_entries(Path(data_dir).resolve(), checkpoint):
        if "test" in entry.get("splits", {}):
            raise LeakageError(f"checkpoint {checkpoint.path} was trained on {entry.get('name')}'s test split")
        if not entry.get("excluded_fixed_splits"):
            raise LeakageError(f"checkpoint {checkpoint.path} was trained on {entry.get('name')} including its fixed "
                               "few-shot rows; only a run with --exclude-fixed-splits can be checked in distribution")


@dataclass
class EncoderResult:
    name: str
    inner_loop: InnerLoopConfig
    fixed: dict[int, float] = field(default_factory=dict)  # shots -> accuracy on test
    episodes: dict[int, list[float]] = field(default_factory=dict)  # shots -> per-episode accuracies


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% confidence interval."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, float("nan")
    variance = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, 1.96 * math.sqrt(variance / n)


def accuracy(train: torch.Tensor, train_rows: Sequence[LabelledText], test: torch.Tensor,
             test_rows: Sequence[LabelledText], config: InnerLoopConfig) -> float:
    """Adapt with :func:`models.classifier.fit_adapter` on ``train``, accuracy on ``test``."""
    adapter = fit_adapter(train, [r.label for r in train_rows], config, "evaluation")
    index = {label: i for i, label in enumerate(adapter.labels)}
    predicted = adapter.probabilities(test).argmax(-1).cpu()
    truth = torch.tensor([index.get(r.label, -1) for r in test_rows])
    return float((predicted == truth).float().mean())


@torch.inference_mode()
def _embed_top(layers, states: TokenStates, pooling: str, batch: int = 256) -> torch.Tensor:
    return torch.cat([embed_states(layers, states, range(s, min(s + batch, len(states))), pooling).float()
                      for s in range(0, len(states), batch)])


def embed_texts(segments: Sequence[Sequence[str]], checkpoints: Sequence[Checkpoint | None], encoder_dir: str | None, device: str,
                cache_dir: str | Path | None, cache_layer: int = 4, progress: bool = False) -> list[torch.Tensor]:
    """Embeddings of the concatenated ``segments`` (e.g. splits; each cached on its own) under the
    bare encoder (``None``) and each checkpoint."""
    from models.encoder import weights_sha256

    bare = build_encoder(encoder_dir, None, device=device)
    layers = len(bare.model.encoder.layer)
    cache_layer = min(cache_layer, layers)
    sha = weights_sha256(bare.model_dir)
    states = concat_states([cached_token_states(bare.model, bare.tokenizer, list(part), cache_layer, sha, cache_dir,
                                                bare.max_length, progress) for part in segments])
    texts = [text for part in segments for text in part]
    # the cached states are fp32; on CUDA the encoder runs in half precision
    states.states = states.states.to(bare.device, next(bare.model.parameters()).dtype)
    outputs: list[torch.Tensor] = []
    bare_embeddings: torch.Tensor | None = None
    pooled: torch.Tensor | None = None
    for checkpoint in checkpoints:
        if checkpoint is not None and checkpoint.layer_mix is not None and not checkpoint.changed_parameters():
            if pooled is None:
                pooled = torch.cat([cached_pooled_layers(bare, list(part), sha, cache_dir, progress)
                                    for part in segments]).to(bare.device)
            outputs.append(mix_pooled(pooled, torch.tensor(checkpoint.layer_mix)))
            continue
        if checkpoint is None or checkpoint.fingerprint == "bare":  # same encoder: embed once
            if bare_embeddings is None:
                bare_embeddings = _embed_top(bare.model.encoder.layer[cache_layer:], states, bare.pooling)
            outputs.append(bare_embeddings)
            continue
        encoder = build_encoder(encoder_dir, checkpoint, device=device)
        changed = checkpoint.changed_parameters()
        if first_changed_layer(changed, layers) >= cache_layer and checkpoint.layer_mix is None:
            outputs.append(_embed_top(encoder.model.encoder.layer[cache_layer:], states, encoder.pooling))
        else:  # the checkpoint changes lower layers (or mixes layers too): full forward
            outputs.append(encoder.encode(texts))
    return outputs


def evaluate(data_dir: str | Path, checkpoints: Sequence[tuple[str, Checkpoint | None]], shots: Sequence[int] = (5, 10),
             episodes: int = 200, ways: int = 20, queries: int = 10, seed: int = 0, encoder_dir: str | None = None,
             device: str = "auto", cache_dir: str | Path | None = None, progress: bool = False,
             in_distribution: bool = False) -> list[EncoderResult]:
    """Fixed-split and episode accuracies on ``data_dir`` for each ``(name, checkpoint)``;
    ``in_distribution`` allows checkpoints trained on the data set (see :func:`check_in_distribution`)."""
    from tqdm.auto import tqdm

    data_dir = Path(data_dir)
    for _, checkpoint in checkpoints:
        if checkpoint is not None:
            (check_in_distribution if in_distribution else check_leakage)(data_dir, checkpoint)
    train, test = read_jsonl(data_dir / "train.jsonl"), read_jsonl(data_dir / "test.jsonl")
    fixed = {k: read_jsonl(data_dir / f"train_{k}.jsonl") for k in shots if (data_dir / f"train_{k}.jsonl").is_file()}
    segments = [[r.text for r in train], [r.text for r in test]]
    offsets, position = {}, len(train) + len(test)
    for k, rows in fixed.items():  # subsets of train as published, but embedded on their own to be safe
        offsets[k] = position
        segments.append([r.text for r in rows])
        position += len(rows)
    all_embeddings = embed_texts(segments, [c for _, c in checkpoints], encoder_dir, device, cache_dir, progress=progress)
    results = []
    for (name, checkpoint), embeddings in zip(checkpoints, all_embeddings):
        config = checkpoint.inner_loop if checkpoint is not None else InnerLoopConfig()
        result = EncoderResult(name, config)
        train_emb, test_emb = embeddings[: len(train)], embeddings[len(train) : len(train) + len(test)]
        for k, rows in fixed.items():
            result.fixed[k] = accuracy(embeddings[offsets[k] : offsets[k] + len(rows)], rows, test_emb, test, config)
        for k in shots:
            sampler = EpisodeSampler(train, ways, k, queries, seed=seed + 1000 * k, query_rows=test)
            scores = []
            for episode in tqdm(sampler.take(episodes), desc=f"{name} {k}-shot", disable=not progress, leave=False):
                support_rows = [train[i] for i in episode.support_rows]
                query_rows = [test[i] for i in episode.query_rows]
                scores.append(accuracy(train_emb[list(episode.support_rows)], support_rows,
                                       test_emb[list(episode.query_rows)], query_rows, config))
            result.episodes[k] = scores
        results.append(result)
    return results
