"""The adaptation engine: embedding bytes, fitting, and predictions under concurrency."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import threading

import pytest
import torch

from app.services.engine import AdaptationEngine
from models.inner_loop import InnerLoopConfig
from tests.fakes import FakeEncoder
from tests.helpers import SYNTHETIC, SYNTHETIC_QUERIES


@pytest.fixture
def engine() -> Iterator[AdaptationEngine]:
    engine = AdaptationEngine(FakeEncoder(), InnerLoopConfig(steps=10), cache_bytes=1 << 20)
    yield engine
    engine.close()


def test_embedding_bytes_round_trip_exactly(engine: AdaptationEngine) -> None:
    embeddings = engine.embed(["play music", "set an alarm", "x"])
    rows = engine.to_bytes(embeddings)
    assert [len(row) for row in rows] == [4 * engine.encoder.dim] * 3
    assert torch.equal(engine.from_bytes(rows), embeddings)


def test_empty_input_embeds_to_an_empty_matrix(engine: AdaptationEngine) -> None:
    assert engine.embed([]).shape == (0, engine.encoder.dim)


def test_fit_then_predict(engine: AdaptationEngine) -> None:
    texts = [text for texts in SYNTHETIC.values() for text in texts]
    labels = [label for label, texts in SYNTHETIC.items() for _ in texts]
    adapter, elapsed_ms = engine.fit(engine.embed(texts), labels)
    assert elapsed_ms >= 0 and adapter.encoder_fingerprint == engine.fingerprint
    predictions = engine.predict(adapter, [text for text, _ in SYNTHETIC_QUERIES], top_k=2)
    assert [p.label for p in predictions] == [label for _, label in SYNTHETIC_QUERIES]


def test_concurrent_predictions_each_get_their_own_rows(engine: AdaptationEngine) -> None:
    texts = [text for texts in SYNTHETIC.values() for text in texts]
    labels = [label for label, texts in SYNTHETIC.items() for _ in texts]
    adapter, _ = engine.fit(engine.embed(texts), labels)
    requests = [[text] * (1 + i % 3) for text, _ in SYNTHETIC_QUERIES for i in range(4)]
    expected = [engine.predict(adapter, request, top_k=3) for request in requests]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda request: engine.predict(adapter, request, top_k=3), requests))
    assert [[p.label for p in r] for r in results] == [[p.label for p in r] for r in expected]
    for result, reference in zip(results, expected):
        for got, want in zip(result, reference):
            assert got.score == pytest.approx(want.score, abs=1e-6)


def test_a_large_support_set_takes_the_encoder_in_chunks() -> None:
    """Other requests' predict passes can run between the chunks of a big task's embedding."""
    encoder = FakeEncoder()
    engine = AdaptationEngine(encoder, InnerLoopConfig(steps=10), cache_bytes=1 << 20, batch_max_texts=8)
    try:
        texts = [f"text number {i}" for i in range(20)]
        embeddings = engine.embed(texts)
        assert [len(call) for call in encoder.calls] == [8, 8, 4]
        assert torch.equal(embeddings, encoder.encode(texts))
    finally:
        engine.close()


class ThreadCountingEncoder(FakeEncoder):
    """Records torch's intra-op thread count in each encoder pass."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[int] = []

    def encode(self, texts):  # type: ignore[override]
        self.threads.append(torch.get_num_threads())
        return super().encode(texts)


def test_encoder_passes_use_the_process_thread_count_after_a_single_threaded_fit() -> None:
    """The adaptation worker runs with 1 thread; request threads started after it (which
    inherit that count) must still embed with every thread the process was given."""
    if torch.get_num_threads() < 2:
        torch.set_num_threads(2)
    threads = torch.get_num_threads()
    encoder = ThreadCountingEncoder()
    engine = AdaptationEngine(encoder, InnerLoopConfig(steps=5), cache_bytes=1 << 20)
    try:
        texts = [text for group in SYNTHETIC.values() for text in group]
        labels = [label for label, group in SYNTHETIC.items() for _ in group]
        engine.fit(engine.embed(texts), labels)  # the adaptation worker sets 1 thread
        with ThreadPoolExecutor(1) as pool:  # a request thread started afterwards
            pool.submit(engine.embed, ["a text embedded on a new thread"]).result()
            adapter, _ = engine.fit(engine.embed(texts), labels)
            pool.submit(engine.predict, adapter, ["and predicted there"], 1).result()
        assert encoder.threads and set(encoder.threads) == {threads}
    finally:
        engine.close()


def test_ranking_runs_single_threaded_and_the_next_encoder_pass_gets_every_thread(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Ranking a request's rows is a few small products: the batcher runs it with one
    thread, and the following encoder pass still uses the process's count."""
    import app.services.engine as engine_module

    if torch.get_num_threads() < 2:
        torch.set_num_threads(2)
    threads = torch.get_num_threads()
    ranked_with: list[int] = []
    real_rank = engine_module.rank

    def counting_rank(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - pass-through
        ranked_with.append(torch.get_num_threads())
        return real_rank(*args, **kwargs)

    monkeypatch.setattr(engine_module, "rank", counting_rank)
    encoder = ThreadCountingEncoder()
    engine = AdaptationEngine(encoder, InnerLoopConfig(steps=5), cache_bytes=1 << 20)
    try:
        texts = [text for group in SYNTHETIC.values() for text in group]
        labels = [label for label, group in SYNTHETIC.items() for _ in group]
        adapter, _ = engine.fit(engine.embed(texts), labels)
        encoder.threads.clear()
        for query, _ in SYNTHETIC_QUERIES[:3]:
            engine.predict(adapter, [query], 1)
        assert ranked_with == [1, 1, 1]
        assert encoder.threads == [threads] * 3
    finally:
        engine.close()


class ThreadNamingEncoder(ThreadCountingEncoder):
    """Also records the name of the thread that runs each pass."""

    def __init__(self) -> None:
        super().__init__()
        self.thread_names: list[str] = []

    def encode(self, texts):  # type: ignore[override]
        self.thread_names.append(threading.current_thread().name)
        return super().encode(texts)


def test_only_the_encoder_thread_runs_torch_with_several_threads() -> None:
    """Support sets and predicts are encoded on the batcher's worker with the engine's
    count; the constructing thread, and threads started after it, keep one thread (so no
    other thread forms an OpenMP team that would throttle the encoder's)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    encoder = ThreadNamingEncoder()
    engine = AdaptationEngine(encoder, InnerLoopConfig(steps=5), cache_bytes=1 << 20, encoder_threads=2)
    try:
        assert torch.get_num_threads() == 1
        texts = [text for group in SYNTHETIC.values() for text in group]
        labels = [label for label, group in SYNTHETIC.items() for _ in group]
        adapter, _ = engine.fit(engine.embed(texts), labels)
        with ThreadPoolExecutor(1) as pool:  # a request thread started afterwards
            assert pool.submit(torch.get_num_threads).result() == 1
            pool.submit(engine.predict, adapter, ["predicted there"], 1).result()
        assert set(encoder.thread_names) == {"micro-batcher"}
        assert set(encoder.threads) == {2}
    finally:
        engine.close()
        torch.set_num_threads(before)
