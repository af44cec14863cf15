"""MicroBatcher: results per request, the worker thread's set-up, back-pressure."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import torch

from app.errors import Overloaded
from app.services.batcher import MicroBatcher


def _encode(texts: list[str]) -> torch.Tensor:
    return torch.tensor([[float(len(text))] for text in texts])


def _held_encoder() -> tuple[Callable[[list[str]], torch.Tensor], threading.Event, threading.Event]:
    """(encode, started, release): an encoder that signals ``started`` and then waits for ``release``."""
    started, release = threading.Event(), threading.Event()

    def encode(texts: list[str]) -> torch.Tensor:
        started.set()
        release.wait(10)
        return _encode(texts)

    return encode, started, release


def test_each_request_gets_its_own_rows_from_a_shared_pass() -> None:
    slow, started, gate = _held_encoder()
    batcher = MicroBatcher(slow, max_wait_ms=20)
    try:
        held = batcher.submit(["hold"])  # the worker blocks in the encoder while the others queue
        assert started.wait(10)
        futures = [batcher.submit(["a" * n, "b" * (n + 1)]) for n in range(1, 6)]
        gate.set()
        assert held.result(timeout=10).flatten().tolist() == [4.0]
        assert [f.result(timeout=10).flatten().tolist() for f in futures] == [[float(n), float(n + 1)] for n in range(1, 6)]
        assert batcher.batches == 2  # the five queued requests shared one encoder pass
    finally:
        batcher.close()


def test_the_initializer_runs_on_the_worker_before_the_constructor_returns() -> None:
    seen: list[str] = []
    passes: list[str] = []

    def encode(texts: list[str]) -> torch.Tensor:
        passes.append(threading.current_thread().name)
        return _encode(texts)

    batcher = MicroBatcher(encode, initializer=lambda: seen.append(threading.current_thread().name))
    try:
        assert seen == ["micro-batcher"]
        batcher.submit(["x"]).result(timeout=10)
        assert passes == ["micro-batcher"]
    finally:
        batcher.close()


def test_a_request_that_finds_the_worker_idle_does_not_wait_for_company() -> None:
    """A lone client's request runs at once; the wait is for requests queued while busy."""
    batcher = MicroBatcher(_encode, max_wait_ms=60_000)
    try:
        assert batcher.submit(["abc"]).result(timeout=10).item() == 3.0  # a minute's wait would time out
        assert batcher.submit(["abcd"]).result(timeout=10).item() == 4.0
        assert batcher.batches == 2
    finally:
        batcher.close()


def test_a_busy_worker_waits_for_company_before_its_next_pass() -> None:
    slow, started, release = _held_encoder()
    batcher = MicroBatcher(slow, max_wait_ms=2_000)
    try:
        held = batcher.submit(["hold"])
        assert started.wait(10)
        queued = batcher.submit(["a"])  # queued during the pass: the next pass waits for more
        release.set()
        held.result(timeout=10)
        late = batcher.submit(["bb"])  # arrives within the wait, so it joins the queued one
        assert [queued.result(timeout=10).item(), late.result(timeout=10).item()] == [1.0, 2.0]
        assert batcher.batches == 2
    finally:
        batcher.close()

def test_a_full_queue_refuses_with_overloaded() -> None:
    slow, started, release = _held_encoder()

    batcher = MicroBatcher(slow, max_batch_texts=1, max_wait_ms=0, max_queue_texts=3)
    try:
        first = batcher.submit(["busy"])
        assert started.wait(10)  # the worker took it and now blocks in the encoder
        queued = [batcher.submit(["q"]) for _ in range(3)]
        with pytest.raises(Overloaded):
            batcher.submit(["one too many"])
        own = batcher.submit(["the server's own work"], admit=False)  # outside the limits
        release.set()
        assert own.result(timeout=10).shape == (1, 1)
        assert first.result(timeout=10).shape == (1, 1)
        assert all(f.result(timeout=10).shape == (1, 1) for f in queued)
    finally:
        release.set()
        batcher.close()


def test_texts_that_fail_to_encode_fail_only_their_own_request() -> None:
    def encode(texts: list[str]) -> torch.Tensor:
        if "poison" in texts:
            raise RuntimeError("the tokenizer failed on one text")
        return _encode(texts)

    gate = threading.Event()
    batcher = MicroBatcher(lambda texts: (gate.wait(10), encode(texts))[1], max_wait_ms=50)
    try:
        innocent, poisoned, also_innocent = (batcher.submit(t) for t in (["fine"], ["poison"], ["also fine"]))
        gate.set()
        assert innocent.result(timeout=10).flatten().tolist() == [4.0]
        assert also_innocent.result(timeout=10).flatten().tolist() == [9.0]
        with pytest.raises(RuntimeError, match="one text"):
            poisoned.result(timeout=10)
    finally:
        batcher.close()


def test_after_close_nothing_waits_forever() -> None:
    batcher = MicroBatcher(_encode)
    batcher.close()
    with pytest.raises(Overloaded, match="shutting down"):
        batcher.submit(["late"])


def test_requests_queued_before_close_are_still_answered() -> None:
    slow, started, gate = _held_encoder()

    batcher = MicroBatcher(slow, max_batch_texts=1, max_wait_ms=0)
    running = batcher.submit(["running"])
    assert started.wait(10)
    queued = batcher.submit(["queued"])  # ahead of the stop signal that close() sends
    closer = threading.Thread(target=batcher.close)
    closer.start()
    gate.set()
    closer.join(20)
    assert running.result(timeout=10).flatten().tolist() == [7.0]
    assert queued.result(timeout=10).flatten().tolist() == [6.0]
    with pytest.raises(Overloaded, match="shutting down"):
        batcher.submit(["after"])


def test_one_request_larger_than_the_queue_is_taken_when_nothing_waits() -> None:
    batcher = MicroBatcher(_encode, max_queue_texts=2)
    try:
        assert batcher.submit(["a", "bb", "ccc"]).result(timeout=10).flatten().tolist() == [1.0, 2.0, 3.0]
    finally:
        batcher.close()


def test_one_owner_cannot_take_the_whole_queue() -> None:
    slow, started, release = _held_encoder()

    batcher = MicroBatcher(slow, max_batch_texts=1, max_wait_ms=0, max_queue_texts=10, max_owner_texts=4)
    try:
        first = batcher.submit(["busy"], owner="flood")
        assert started.wait(10)  # taken by the worker: no longer queued
        queued = [batcher.submit(["q"], owner="flood") for _ in range(4)]
        with pytest.raises(Overloaded, match="this tenant"):
            batcher.submit(["one too many"], owner="flood")
        others = [batcher.submit(["o"], owner="quiet") for _ in range(4)]  # the quiet tenant still gets in
        release.set()
        for future in [first, *queued, *others]:
            future.result(timeout=10)
        assert batcher.submit(["again"], owner="flood").result(timeout=10).flatten().tolist() == [5.0]  # share freed
    finally:
        release.set()
        batcher.close()
