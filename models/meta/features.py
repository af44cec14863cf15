"""Token-level feature caches: run the frozen lower encoder layers once, train the top.

Meta-training on a CPU is only affordable if the frozen lower layers of the encoder
are run once per text: their outputs (one vector per token) are stored and every
episode then runs only the top layers, which carry the low-rank adapters. The same
cache makes evaluation cheap: a checkpoint that changes only layers >= k reuses the
bare encoder's layer-k states, so each evaluation text goes through the lower layers
once for all checkpoints. Running layers by hand is checked against the full
Hugging Face forward in the tests (identical in float32).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from models.encoder import pool

_LAYER = re.compile(r"^encoder\.layer\.(\d+)\.")


@dataclass
class TokenStates:
    """Variable-length token states of ``n`` texts, flattened: ``states[offsets[i]:offsets[i+1]]``."""

    states: torch.Tensor  # [total_tokens, dim]
    offsets: torch.Tensor  # [n + 1] int64

    def __len__(self) -> int:
        return int(self.offsets.numel()) - 1

    def lengths(self) -> torch.Tensor:
        return self.offsets[1:] - self.offsets[:-1]

    def padded(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """``hidden [b, L, dim]`` zero-padded to the longest text and ``mask [b, L]``."""
        spans = [(int(self.offsets[i]), int(self.offsets[i + 1])) for i in indices]
        longest = max(end - start for start, end in spans)
        hidden = self.states.new_zeros(len(spans), longest, self.states.shape[1])
        mask = torch.zeros(len(spans), longest, dtype=torch.long)
        for row, (start, end) in enumerate(spans):
            hidden[row, : end - start] = self.states[start:end]
            mask[row, : end - start] = 1
        return hidden, mask.to(self.states.device)


def concat_states(parts: Sequence[TokenStates]) -> TokenStates:
    """Several caches as one (texts in order)."""
    offsets, shift = [parts[0].offsets[:1]], 0
    for part in parts:
        offsets.append(part.offsets[1:] + shift)
        shift += int(part.offsets[-1])
    return TokenStates(torch.cat([p.states for p in parts]), torch.cat(offsets))


def additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``[b, L]`` 0/1 attention mask -> ``[b, 1, 1, L]`` additive mask (0 or dtype min)."""
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def run_layers(layers: Iterable[nn.Module], hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Apply transformer layers (Hugging Face ``BertLayer``-like) to ``hidden``."""
    extended = additive_mask(mask, hidden.dtype)
    for layer in layers:
        output = layer(hidden, attention_mask=extended)
        hidden = output[0] if isinstance(output, tuple) else output
    return hidden


def first_changed_layer(names: Iterable[str], num_layers: int) -> int:
    """Lowest encoder layer a set of parameter names touches (``num_layers`` if none, 0 if the
    embeddings or anything outside the layers is touched)."""
    lowest = num_layers
    for name in names:
        match = _LAYER.match(name)
        lowest = min(lowest, int(match.group(1))) if match else 0
    return lowest


@torch.inference_mode()
def compute_token_states(
    model: nn.Module, tokenizer, texts: Sequence[str], upto: int, max_length: int = 128, batch_size: int = 64,
    progress: bool = False,
) -> TokenStates:
    """Outputs of the embeddings and layers ``[0, upto)`` for every text (padding dropped)."""
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    pieces: list[torch.Tensor | None] = [None] * len(texts)
    batches = range(0, len(order), batch_size)
    for start in tqdm(batches, desc=f"layers 0..{upto - 1}", disable=not progress, leave=False):
        index = order[start : start + batch_size]
        batch = tokenizer([texts[i] for i in index], padding=True, truncation=True, max_length=max_length,
                          return_tensors="pt").to(device)
        hidden = model.embeddings(input_ids=batch["input_ids"], token_type_ids=batch.get("token_type_ids"))
        hidden = run_layers(model.encoder.layer[:upto], hidden, batch["attention_mask"]).float().cpu()
        lengths = batch["attention_mask"].sum(1).cpu().tolist()
        for row, i in enumerate(index):
            pieces[i] = hidden[row, : lengths[row]].clone()
    lengths = torch.tensor([0] + [p.shape[0] for p in pieces])  # type: ignore[union-attr]
    return TokenStates(torch.cat(pieces), lengths.cumsum(0))  # type: ignore[arg-type]


def dtype_tag(model: nn.Module) -> str:
    """A cache-key part for the model's precision: fp16 states (a GPU run) must not serve an
    fp32 run; empty for fp32, so that existing caches stay valid."""
    dtype = next(model.parameters()).dtype
    return "" if dtype == torch.float32 else str(dtype)


def cached_token_states(
    model: nn.Module, tokenizer, texts: Sequence[str], upto: int, base_sha256: str, cache_dir: str | Path | None,
    max_length: int = 128, progress: bool = False,
) -> TokenStates:
    """:func:`compute_token_states` memoised on disk (safetensors) by encoder, layer and texts.

    Only valid for the *base* encoder's lower layers, which no checkpoint below ``upto`` changes.
    """
    key = hashlib.sha256(f"{base_sha256}|{upto}|{max_length}|{dtype_tag(model)}".encode())
    for text in texts:
        key.update(text.encode("utf-8") + b"\x00")
    file = Path(cache_dir) / f"states-{key.hexdigest()[:24]}.safetensors" if cache_dir else None
    if file is not None and file.is_file():
        tensors = load_file(str(file))
        return TokenStates(tensors["states"], tensors["offsets"])
    states = compute_token_states(model, tokenizer, texts, upto, max_length, progress=progress)
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        partial = file.with_suffix(f".{os.getpid()}.partial")  # torchrun ranks may write the same cache at once
        save_file({"states": states.states.contiguous(), "offsets": states.offsets}, str(partial))
        partial.replace(file)
    return states


def embed_states(
    layers: Sequence[nn.Module], states: TokenStates, indices: Sequence[int], pooling: str = "mean",
    chunk: int = 32,
) -> torch.Tensor:
    """Unit-norm sentence embeddings of ``indices`` after the (top) ``layers``; differentiable.

    Texts are processed in length-sorted chunks so that padding stays short.
    """
    order = sorted(range(len(indices)), key=lambda i: int(states.offsets[indices[i] + 1] - states.offsets[indices[i]]))
    outputs: list[torch.Tensor] = []
    for start in range(0, len(order), chunk):
        rows = [indices[i] for i in order[start : start + chunk]]
        hidden, mask = states.padded(rows)
        outputs.append(pool(run_layers(layers, hidden, mask), mask, pooling))
    merged = torch.cat(outputs)
    inverse = torch.empty(len(order), dtype=torch.long)
    inverse[torch.tensor(order)] = torch.arange(len(order))
    return merged[inverse.to(merged.device)]
