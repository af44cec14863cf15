"""The reference that the service's predict path is measured against: the best simple
loop over the same model files, with the same max_length and torch threads.

Texts are sorted by length over the whole list and run in fixed-size batches (no
service, no HTTP, no adapter): what ten lines of transformers code get from the hardware.
"""

from __future__ import annotations

import time
from typing import Sequence

import torch


def percentiles(samples_ms: Sequence[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50_ms": round(pick(0.50), 2), "p95_ms": round(pick(0.95), 2), "p99_ms": round(pick(0.99), 2)}


class RawLoop:
    """Plain ``AutoModel`` forwards with mean pooling, loaded from the packaged MiniLM."""

    def __init__(self, max_length: int = 128) -> None:
        from transformers import AutoModel, AutoTokenizer

        from models.encoder import packaged_encoder_path

        path = packaged_encoder_path()
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True).eval()
        self.max_length = max_length
        self.threads = torch.get_num_threads()

    @torch.inference_mode()
    def _forward(self, texts: list[str]) -> torch.Tensor:
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)

    def rate(self, texts: Sequence[str], batch: int, length_sorted: bool = True) -> dict[str, float]:
        """texts/s of length-sorted batches of ``batch`` over all ``texts`` (or batches in
        the given order: the very batches a client's requests carry)."""
        ordered = sorted(texts, key=len) if length_sorted else list(texts)
        latencies = []
        started = time.perf_counter()
        for start in range(0, len(ordered), batch):
            sent = time.perf_counter()
            self._forward(ordered[start : start + batch])
            latencies.append((time.perf_counter() - sent) * 1000)
        return {"texts_per_s": len(ordered) / (time.perf_counter() - started), **percentiles(latencies)}

    def single(self, texts: Sequence[str]) -> dict[str, float]:
        """One forward per text: texts/s and latency percentiles."""
        latencies = []
        started = time.perf_counter()
        for text in texts:
            sent = time.perf_counter()
            self._forward([text])
            latencies.append((time.perf_counter() - sent) * 1000)
        return {"texts_per_s": len(texts) / (time.perf_counter() - started), **percentiles(latencies)}
