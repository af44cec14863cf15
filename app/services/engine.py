"""The adaptation engine: the loaded encoder, the inner loop and the adapter cache.

One per process, created by the app's lifespan. It knows nothing of HTTP or SQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from app.cache import ByteLRU
from app.metrics import ADAPT_SECONDS
from app.services.batcher import MicroBatcher
from models.adapter import Adapter
from models.classifier import Prediction, fit_adapter, rank
from models.encoder import TextEncoder
from models.inner_loop import InnerLoopConfig


class AdaptationEngine:
    def __init__(
        self,
        encoder: TextEncoder,
        config: InnerLoopConfig,
        cache_bytes: int,
        batch_wait_ms: float = 2.0,
        batch_max_texts: int = 256,
        queue_max_texts: int = 8192,
        queue_max_texts_per_tenant: int | None = None,
        reject_quantile: float = 0.05,
        ambiguity_margin: float = 0.1,
    ) -> None:
        self.encoder = encoder
        self.config = config
        self.reject_quantile = reject_quantile
        self.ambiguity_margin = ambiguity_margin
        self.cache: ByteLRU[Adapter] = ByteLRU(cache_bytes, lambda adapter: adapter.num_bytes)
        # One encoder pass at a time: torch already uses every core (or the whole GPU)
        # for one pass, and concurrent passes only contend for them.
        self._device_lock = threading.Lock()
        # torch's intra-op thread count is per thread, and a thread started after another
        # thread called set_num_threads inherits that thread's count: the adaptation
        # worker's 1 would leak into request threads and halve embedding on 2 cores. Every
        # encoder pass sets the process's count for its own thread.
        self.encoder_threads = torch.get_num_threads()
        self.batcher = MicroBatcher(self._encode_locked, batch_max_texts, batch_wait_ms, queue_max_texts,
                                    queue_max_texts_per_tenant)
        # The inner loop is a few hundred small matrix products: on the CPU, thread
        # hand-offs cost more than they save (10x slower with 2 threads on a busy
        # 2-core host), so adaptation runs on its own single-threaded worker.
        self._fit_worker = ThreadPoolExecutor(1, "adaptation", initializer=torch.set_num_threads, initargs=(1,))

    def _encode_locked(self, texts: list[str]) -> torch.Tensor:
        with self._device_lock:
            if torch.get_num_threads() != self.encoder_threads:
                torch.set_num_threads(self.encoder_threads)
            return self.encoder.encode(texts)

    def close(self) -> None:
        self.batcher.close()
        self._fit_worker.shutdown(wait=True)

    @property
    def fingerprint(self) -> str:
        return self.encoder.fingerprint

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """Support-set embeddings, in chunks of a micro-batch's size that each take the
        encoder in turn: a large task (thousands of texts) delays other tenants' predict
        passes by one chunk at a time, not by its whole embedding."""
        if not texts:
            return torch.empty(0, self.encoder.dim, device=self.encoder.device)
        # Chunks of texts of similar length (as one pass would batch them), so that chunking
        # adds no padding: in the given order it made a 770-text task 40% slower to embed.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        step = self.batcher.max_batch_texts
        embedded = torch.cat([self._encode_locked([texts[i] for i in order[start : start + step]])
                              for start in range(0, len(texts), step)])
        return embedded[torch.argsort(torch.tensor(order, device=embedded.device))]

    def fit(
        self,
        embeddings: torch.Tensor,
        labels: Sequence[str],
        previous: Adapter | None = None,
        negatives: torch.Tensor | None = None,
        unlabelled: torch.Tensor | None = None,
        prompts: torch.Tensor | None = None,
    ) -> tuple[Adapter, float]:
        """A calibrated adapter (continual from ``previous`` when given) and its time in ms;
        ``unlabelled`` embeddings refine the starting prototypes; ``prompts`` marks the
        rows that are label names/descriptions (never held out for calibration)."""
        started = time.perf_counter()

        def run() -> Adapter:
            adapter = fit_adapter(embeddings, labels, self.config, self.fingerprint, previous=previous,
                                  negatives=negatives, calibrated=True, reject_quantile=self.reject_quantile,
                                  unlabelled=unlabelled, prompts=prompts)
            if adapter.params["weight"].is_cuda:
                torch.cuda.synchronize()
            return adapter

        adapter = self._fit_worker.submit(run).result()
        elapsed = time.perf_counter() - started
        ADAPT_SECONDS.observe(elapsed)
        return adapter, elapsed * 1000

    def predict(
        self, adapter: Adapter, texts: Sequence[str], top_k: int, oos_threshold: float | None = None,
        tenant: str | None = None,
    ) -> list[Prediction]:
        """Top-k predictions; ``tenant`` counts the texts against its share of the encoder queue."""
        def finish(rows: torch.Tensor) -> list[Prediction]:
            # On the batcher's thread, after the shared encoder pass: a few small matrix
            # products per request, which two threads make slower (16 ms instead of 0.2
            # for one text on a busy 2-core host); the next encoder pass restores the count.
            torch.set_num_threads(1)
            return rank(adapter, rows, top_k, oos_threshold, self.ambiguity_margin)

        return self.batcher.submit(list(texts), finish, owner=tenant).result()

    # --- embedding bytes (cached per example in the database) -----------------------
    @staticmethod
    def to_bytes(embeddings: torch.Tensor) -> list[bytes]:
        array = embeddings.detach().to("cpu", torch.float32).numpy()
        return [row.tobytes() for row in array]

    def from_bytes(self, rows: Sequence[bytes]) -> torch.Tensor:
        array = np.frombuffer(b"".join(rows), dtype=np.float32).reshape(len(rows), self.encoder.dim)
        return torch.from_numpy(array.copy()).to(self.encoder.device)
