"""Dynamic micro-batching of encoder calls.

Concurrent predict requests (for any task) hand their texts to one queue; a single
worker thread runs one encoder pass over everything gathered (up to ``max_batch_texts``)
and hands each caller its rows: the one thread of the process that runs torch with more
than one thread (see ``AdaptationEngine``). It waits at most ``max_wait_ms`` for more to arrive only
when the server is busy (requests queued up during the previous pass): a request that
finds the worker idle, a lone client's, runs at once instead of paying the wait.
The queue is bounded: when ``max_queue_texts`` are already waiting, a new request is
refused at once with ``Overloaded`` (HTTP 503 with Retry-After) instead of queueing
without end; and one owner (a tenant) may hold at most ``max_owner_texts`` of them, so a
tenant that floods the queue gets the 503s while the others still get through. Callers block on a future in the server's thread pool, never on the
event loop. When a shared pass fails, each request of it is encoded again on its own,
so only the request whose texts cannot be encoded gets the error. After ``close()`` new
requests are refused and any still queued are failed, never left waiting.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import torch

from app.errors import Overloaded
from app.metrics import BATCH_TEXTS


@dataclass
class _Request:
    texts: Sequence[str]
    owner: str | None = None
    future: Future = field(default_factory=Future)


class MicroBatcher:
    def __init__(
        self,
        encode: Callable[[list[str]], torch.Tensor],
        max_batch_texts: int = 256,
        max_wait_ms: float = 2.0,
        max_queue_texts: int = 8192,
        max_owner_texts: int | None = None,
        initializer: Callable[[], None] | None = None,
    ) -> None:
        """``initializer`` runs on the worker thread before its first pass (the encoder's
        thread settings); the constructor returns once it has run."""
        self._encode = encode
        self.max_batch_texts = max_batch_texts
        self.max_wait_s = max_wait_ms / 1000
        self.max_queue_texts = max_queue_texts
        self.max_owner_texts = max_owner_texts or max_queue_texts
        self._owner_texts: dict[str, int] = {}
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._pending_texts = 0
        self._lock = threading.Lock()
        self._closed = False
        self.batches = 0
        self.batched_requests = 0
        ready = threading.Event()
        self._worker = threading.Thread(target=self._run, args=(initializer, ready), name="micro-batcher", daemon=True)
        self._worker.start()
        ready.wait()

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """Embeddings for ``texts``, computed together with concurrent callers' texts."""
        return self.submit(texts).result()

    def submit(self, texts: Sequence[str], *, owner: str | None = None, admit: bool = True) -> Future:
        """Queue ``texts``; the future holds their embeddings. ``owner`` (a tenant id)
        counts the texts against that owner's share of the queue; ``admit=False`` skips the
        queue's limits (the server's own work, such as a new task's support set, which
        arrives in slices of one pass each)."""
        with self._lock:
            if self._closed:
                raise Overloaded("the server is shutting down; retry on another instance or after its restart")
            if admit and self._pending_texts + len(texts) > self.max_queue_texts and self._pending_texts > 0:
                raise Overloaded(f"{self._pending_texts} texts are already queued for the encoder; retry shortly")
            mine = self._owner_texts.get(owner, 0) if owner is not None else 0
            if owner is not None and mine + len(texts) > self.max_owner_texts and mine > 0:
                raise Overloaded(f"{mine} of this tenant's texts are already queued for the encoder; retry shortly")
            self._pending_texts += len(texts)
            if owner is not None:
                self._owner_texts[owner] = mine + len(texts)
        request = _Request(texts, owner)
        self._queue.put(request)
        return request.future

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._queue.put(None)
        self._worker.join(timeout=10)
        self._fail_queued()

    def _fail_queued(self) -> None:
        """Requests still queued after the worker stopped: tell their callers."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None and not item.future.done():
                item.future.set_exception(Overloaded("the server is shutting down; retry shortly"))

    def _gather(self, first: _Request, wait_s: float) -> tuple[list[_Request], bool]:
        """``first`` and what else arrives within ``wait_s``; True when told to stop."""
        batch, size = [first], len(first.texts)
        deadline = time.perf_counter() + wait_s
        while size < self.max_batch_texts:
            remaining = deadline - time.perf_counter()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
            size += len(item.texts)
        return batch, False

    def _run(self, initializer: Callable[[], None] | None, ready: threading.Event) -> None:
        try:
            if initializer is not None:
                initializer()
        finally:
            ready.set()
        stop, busy = False, False
        while not stop:
            # Busy: requests queued up while the previous pass ran, so company may come; else
            # (idle, or the first request) whoever comes next runs at once.
            first, wait_s = self._queue.get(), self.max_wait_s if busy else 0.0
            if first is None:
                break
            batch, stop = self._gather(first, wait_s)
            texts = [text for request in batch for text in request.texts]
            with self._lock:
                self._pending_texts -= len(texts)
                for request in batch:
                    if request.owner is not None:
                        left = self._owner_texts[request.owner] - len(request.texts)
                        if left:
                            self._owner_texts[request.owner] = left
                        else:
                            del self._owner_texts[request.owner]
            try:
                embeddings = self._encode(texts)
            except BaseException as error:  # noqa: BLE001 - find whose texts fail
                busy = not self._queue.empty()
                if len(batch) == 1:
                    batch[0].future.set_exception(error)
                else:
                    for request in batch:
                        self._encode_alone(request)
                continue
            busy = not self._queue.empty()  # before any caller is answered and can send again
            BATCH_TEXTS.observe(len(texts))
            self.batches += 1
            self.batched_requests += len(batch)
            start = 0
            for request in batch:
                rows = embeddings[start : start + len(request.texts)]
                start += len(request.texts)
                request.future.set_result(rows)

    def _encode_alone(self, request: _Request) -> None:
        try:
            rows = self._encode(list(request.texts))
        except BaseException as error:  # noqa: BLE001 - this request's own failure
            request.future.set_exception(error)
            return
        request.future.set_result(rows)
