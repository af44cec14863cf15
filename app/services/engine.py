"""The adaptation engine: the loaded encoder, the inner loop and the adapter cache.

One per process, created by the app's lifespan. It knows nothing of HTTP or SQL."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from app.cache import ByteLRU
from app.metrics import ADAPT_SECONDS, ENCODER_SECONDS
from app.services.batcher import MicroBatcher
from models.adapter import Adapter
from models.classifier import Prediction, fit_adapter, rank
from models.encoder import TextEncoder
from models.inner_loop import InnerLoopConfig


def set_thread_count(threads: int) -> None:
    """torch's intra-op thread count for the calling thread, for good. torch sets a
    thread's count on its first parallel work to the count set last by any thread, which
    would undo an earlier ``set_num_threads`` there: reading the count first does that
    initialisation, so the count set here stays."""
    torch.get_num_threads()
    torch.set_num_threads(threads)


@contextmanager
def single_threaded() -> Iterator[None]:
    """torch with one intra-op thread on this thread for the block. A no-op where the
    thread already has one (the server's request threads): setting the count also sets
    the one that threads started later inherit."""
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


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
        encoder_threads: int | None = None,
        reject_quantile: float = 0.05,
        ambiguity_margin: float = 0.1,
    ) -> None:
        self.encoder = encoder
        self.config = config
        self.reject_quantile = reject_quantile
        self.ambiguity_margin = ambiguity_margin
        self.cache: ByteLRU[Adapter] = ByteLRU(cache_bytes, lambda adapter: adapter.num_bytes)
        # Every encoder pass runs on the batcher's one worker thread, the only thread of
        # the process that runs torch with more than one thread. Each thread that does
        # gets its own OpenMP team, and once libgomp manages more threads than there are
        # cores it stops spin-waiting between parallel regions: every layer of a pass
        # then wakes its helper threads through the kernel (8-text passes in the server
        # measured ~30% slower than the same passes in a one-team process).
        self.encoder_threads = encoder_threads or torch.get_num_threads()
        caller_threads = torch.get_num_threads()
        self.batcher = MicroBatcher(self._encode, batch_max_texts, batch_wait_ms, queue_max_texts,
                                    queue_max_texts_per_tenant,
                                    initializer=lambda: set_thread_count(self.encoder_threads))
        # torch gives threads started later the count set last: the caller's, not the worker's.
        torch.set_num_threads(caller_threads)
        # The inner loop is a few hundred small matrix products: on the CPU, thread
        # hand-offs cost more than they save (10x slower with 2 threads on a busy
        # 2-core host), so adaptation runs on its own single-threaded worker.
        self._fit_worker = ThreadPoolExecutor(1, "adaptation", initializer=set_thread_count, initargs=(1,))

    def _encode(self, texts: list[str]) -> torch.Tensor:
        with ENCODER_SECONDS.time():
            return self.encoder.encode(texts)

    def close(self) -> None:
        self.batcher.close()
        self._fit_worker.shutdown(wait=True)

    @property
    def fingerprint(self) -> str:
        return self.encoder.fingerprint

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """Support-set embeddings, in chunks of a micro-batch's size that each queue for the
        encoder's thread in turn: a large task (thousands of texts) delays other tenants'
        predict passes by one chunk at a time, not by its whole embedding."""
        if not texts:
            return torch.empty(0, self.encoder.dim, device=self.encoder.device)
        # Chunks of texts of similar length (as one pass would batch them), so that chunking
        # adds no padding: in the given order it made a 770-text task 40% slower to embed.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        step = self.batcher.max_batch_texts
        embedded = torch.cat([self.batcher.submit([texts[i] for i in order[start : start + step]], admit=False).result()
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
        """Top-k predictions; ``tenant`` counts the texts against its share of the encoder queue.

        The rows are ranked on the calling thread, with one torch thread: a few small
        matrix products, which two threads make slower (16 ms instead of 0.2 for one text
        on a busy 2-core host), and which overlap the encoder's next pass."""
        rows = self.batcher.submit(list(texts), owner=tenant).result()
        with single_threaded():
            return rank(adapter, rows, top_k, oos_threshold, self.ambiguity_margin)

    # --- embedding bytes (cached per example in the database) -----------------------
    @staticmethod
    def to_bytes(embeddings: torch.Tensor) -> list[bytes]:
        array = embeddings.detach().to("cpu", torch.float32).numpy()
        return [row.tobytes() for row in array]

    def from_bytes(self, rows: Sequence[bytes]) -> torch.Tensor:
        array = np.frombuffer(b"".join(rows), dtype=np.float32).reshape(len(rows), self.encoder.dim)
        return torch.from_numpy(array.copy()).to(self.encoder.device)
