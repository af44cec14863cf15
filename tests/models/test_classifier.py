"""fit_adapter, rank and FewShotClassifier over the fake encoder."""

from __future__ import annotations

import pytest
import torch

from models.adapter import Adapter
from models.classifier import FewShotClassifier, fit_adapter, rank
from models.inner_loop import InnerLoopConfig
from tests.fakes import FakeEncoder
from tests.helpers import SYNTHETIC, SYNTHETIC_QUERIES, UNLABELLED_POOL


@pytest.fixture
def classifier() -> FewShotClassifier:
    return FewShotClassifier(FakeEncoder(), InnerLoopConfig(steps=20))


@pytest.fixture
def fitted(classifier: FewShotClassifier) -> Adapter:
    texts = [text for texts in SYNTHETIC.values() for text in texts]
    labels = [label for label, texts in SYNTHETIC.items() for _ in texts]
    adapter, elapsed_ms = classifier.fit(texts, labels)
    assert elapsed_ms >= 0
    return adapter


def test_fit_sorts_labels_and_records_the_encoder(fitted: Adapter) -> None:
    assert fitted.labels == ("alarm", "music", "weather")
    assert fitted.encoder_fingerprint == "fake-encoder-v1"
    assert fitted.params["weight"].shape == (3, 64)
    assert fitted.scale == InnerLoopConfig().scale


def test_fit_adapter_label_order_does_not_depend_on_input_order() -> None:
    embeddings = torch.eye(4)
    a = fit_adapter(embeddings, ["b", "a", "b", "a"], InnerLoopConfig(steps=3), "f")
    b = fit_adapter(embeddings[[1, 0, 3, 2]], ["a", "b", "a", "b"], InnerLoopConfig(steps=3), "f")
    assert a.labels == b.labels == ("a", "b")
    torch.testing.assert_close(a.params["weight"], b.params["weight"])


def test_predicts_the_synthetic_queries(classifier: FewShotClassifier, fitted: Adapter) -> None:
    predictions = classifier.predict(fitted, [text for text, _ in SYNTHETIC_QUERIES])
    assert [p.label for p in predictions] == [label for _, label in SYNTHETIC_QUERIES]


@pytest.mark.parametrize("top_k", [1, 2, 3, 10])
def test_rank_returns_sorted_top_k_probabilities(classifier: FewShotClassifier, fitted: Adapter, top_k: int) -> None:
    embeddings = classifier.encoder.encode(["play the weather alarm", "hello", "set alarm"])
    predictions = rank(fitted, embeddings, top_k)
    assert len(predictions) == 3
    for prediction in predictions:
        scores = [score for _, score in prediction.top_k]
        assert len(prediction.top_k) == min(top_k, 3)
        assert scores == sorted(scores, reverse=True)
        assert all(0.0 <= score <= 1.0 for score in scores)
        assert sum(scores) <= 1.0 + 1e-6
        assert (prediction.label, prediction.score) == prediction.top_k[0]
        assert len({label for label, _ in prediction.top_k}) == len(prediction.top_k)


def test_full_ranking_sums_to_one(classifier: FewShotClassifier, fitted: Adapter) -> None:
    (prediction,) = rank(fitted, classifier.encoder.encode(["what is the weather"]), 3)
    assert sum(score for _, score in prediction.top_k) == pytest.approx(1.0, abs=1e-5)


def _names_task(unlabelled: torch.Tensor | None) -> list[str]:
    encoder = FakeEncoder()
    names = sorted(SYNTHETIC)
    adapter = fit_adapter(encoder.encode(names), names, InnerLoopConfig(), "f",
                          unlabelled=unlabelled)
    queries = encoder.encode([text for text, _ in SYNTHETIC_QUERIES])
    return [adapter.labels[i] for i in adapter.probabilities(queries).argmax(-1).tolist()]


def test_unlabelled_texts_fix_a_zero_shot_label_that_its_name_misses() -> None:
    gold = [label for _, label in SYNTHETIC_QUERIES]
    assert _names_task(None) != gold  # the bare name "weather" loses "is it going to rain today"
    assert _names_task(FakeEncoder().encode(UNLABELLED_POOL)) == gold


def test_an_empty_unlabelled_pool_changes_nothing() -> None:
    embeddings, labels = FakeEncoder().encode(["a b", "a c", "d e", "d f"]), ["x", "x", "y", "y"]
    plain = fit_adapter(embeddings, labels, InnerLoopConfig(steps=5), "f")
    empty = fit_adapter(embeddings, labels, InnerLoopConfig(steps=5), "f", unlabelled=torch.empty(0, 64))
    for name in plain.params:
        assert torch.equal(plain.params[name], empty.params[name])


def test_a_continual_update_refines_only_the_new_labels_start() -> None:
    """Labels the previous adapter has keep its rows; a new label starts from its refined prototype."""
    encoder = FakeEncoder()
    first = fit_adapter(encoder.encode(["weather", "music"]), ["weather", "music"], InnerLoopConfig(steps=0), "f")
    config = InnerLoopConfig(steps=0, continual_steps=0)
    names = ["weather", "music", "alarm"]
    plain = fit_adapter(encoder.encode(names), names, config, "f", previous=first)
    pooled = fit_adapter(encoder.encode(names), names, config, "f", previous=first,
                         unlabelled=encoder.encode(UNLABELLED_POOL))
    rows = {label: i for i, label in enumerate(pooled.labels)}
    for label in ("weather", "music"):
        assert torch.equal(pooled.params["weight"][rows[label]], first.params["weight"][first.labels.index(label)])
    assert not torch.allclose(pooled.params["weight"][rows["alarm"]], plain.params["weight"][rows["alarm"]])
