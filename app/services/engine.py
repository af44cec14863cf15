"""The adaptation engine: the loaded encoder, the inner loop and the adapter cache.

One per process, created by the app's lifespan. It knows nothing of HTTP or SQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np
import torch

from app.cache import ByteLRU
from models.adapter import Adapter
from models.classifier import Prediction, fit_adapter, rank
from models.encoder import TextEncoder
from models.inner_loop import InnerLoopConfig


class AdaptationEngine:
    def __init__(self, encoder: TextEncoder, config: InnerLoopConfig, cache_bytes: int, max_concurrent: int = 1) -> None:
        self.encoder = encoder
        self.config = config
        self.cache: ByteLRU[Adapter] = ByteLRU(cache_bytes, lambda adapter: adapter.num_bytes)
        # CPU inference is already multi-threaded inside torch; running many forward
        # passes at once only oversubscribes the cores, so passes are gated.
        self._gate = threading.BoundedSemaphore(max_concurrent)

    @property
    def fingerprint(self) -> str:
        return self.encoder.fingerprint

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        if not texts:
            return torch.empty(0, self.encoder.dim, device=self.encoder.device)
        with self._gate:
            return self.encoder.encode(list(texts))

    def fit(self, embeddings: torch.Tensor, labels: Sequence[str]) -> tuple[Adapter, float]:
        started = time.perf_counter()
        adapter = fit_adapter(embeddings, labels, self.config, self.fingerprint)
        if adapter.params["weight"].is_cuda:
            torch.cuda.synchronize()
        return adapter, (time.perf_counter() - started) * 1000

    def predict(self, adapter: Adapter, texts: Sequence[str], top_k: int) -> list[Prediction]:
        return rank(adapter, self.embed(texts), top_k)

    # --- embedding bytes (cached per example in the database) -----------------------
    @staticmethod
    def to_bytes(embeddings: torch.Tensor) -> list[bytes]:
        array = embeddings.detach().to("cpu", torch.float32).numpy()
        return [row.tobytes() for row in array]

    def from_bytes(self, rows: Sequence[bytes]) -> torch.Tensor:
        array = np.frombuffer(b"".join(rows), dtype=np.float32).reshape(len(rows), self.encoder.dim)
        return torch.from_numpy(array.copy()).to(self.encoder.device)
