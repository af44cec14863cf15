"""The packaged MiniLM encoder on the committed BANKING77 / CLINC150 subsets (CPU)."""

from __future__ import annotations

import re

import pytest
import torch

from models.classifier import fit_adapter, rank
from models.encoder import TransformerEncoder
from models.inner_loop import InnerLoopConfig
from tests.helpers import load_fixture

pytestmark = pytest.mark.real_encoder

MARGIN = 0.05  # adaptation may cost at most this much accuracy against the prototypes


@pytest.fixture(scope="module")
def encoder() -> TransformerEncoder:
    return TransformerEncoder(device="cpu")


@pytest.fixture(scope="module")
def embedded(encoder: TransformerEncoder) -> dict[str, tuple[torch.Tensor, list[str], torch.Tensor, list[str]]]:
    """Per data set: support embeddings and labels, query embeddings and labels."""
    result = {}
    for name in ("banking77", "clinc150"):
        support, query = load_fixture(name)
        result[name] = (
            encoder.encode([row["text"] for row in support]), [row["label"] for row in support],
            encoder.encode([row["text"] for row in query]), [row["label"] for row in query],
        )
    return result


def _accuracy(embedded: tuple[torch.Tensor, list[str], torch.Tensor, list[str]], config: InnerLoopConfig) -> float:
    support, support_labels, query, query_labels = embedded
    adapter = fit_adapter(support, support_labels, config, "real")
    predictions = rank(adapter, query, 1)
    return sum(p.label == label for p, label in zip(predictions, query_labels)) / len(query_labels)


def test_embeddings_are_unit_norm_384_d_and_deterministic(encoder: TransformerEncoder) -> None:
    texts = ["how do i activate my card?", "what's the weather like", "a", "x " * 300]
    first = encoder.encode(texts)
    assert first.shape == (4, 384) and first.dtype == torch.float32 and encoder.dim == 384
    assert re.fullmatch(r"[0-9a-f]{16}", encoder.fingerprint)
    torch.testing.assert_close(first.norm(dim=-1), torch.ones(4))
    assert torch.equal(first, encoder.encode(texts))
    # Batching (by length, padded) must not change a text's embedding beyond float noise.
    torch.testing.assert_close(encoder.encode([texts[1]])[0], first[1], atol=1e-5, rtol=1e-4)


def test_length_buckets_give_the_embeddings_of_one_padded_batch(encoder: TransformerEncoder) -> None:
    """Cutting a request into tight length buckets changes only float noise, in any order."""
    texts = ["hi", "how do i activate my new card?", "my card is lost", "x " * 200, "can i get a refund",
             "what's the exchange rate today for sending money to my sister abroad"]
    tight = encoder.encode(texts)
    one_batch = TransformerEncoder(device="cpu", max_padding=None).encode(texts)
    torch.testing.assert_close(tight, one_batch, atol=1e-5, rtol=1e-4)
    reversed_order = encoder.encode(texts[::-1])
    torch.testing.assert_close(reversed_order, tight.flip(0), atol=1e-5, rtol=1e-4)


def test_packed_passes_give_the_padded_passes_embeddings(encoder: TransformerEncoder) -> None:
    """On the CPU passes run over packed tokens; the model's own padded pass gives the same rows."""
    texts = ["hi", "how do i activate my new card?", "x " * 200, "can i get a refund", "my card is lost"]
    padded = TransformerEncoder(device="cpu", packed=False)
    assert encoder.packed and not padded.packed and padded.fingerprint == encoder.fingerprint
    torch.testing.assert_close(encoder.encode(texts), padded.encode(texts), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(encoder.encode_layers(texts), padded.encode_layers(texts), atol=1e-5, rtol=1e-4)


def test_int8_encoder_is_close_to_fp32_and_has_its_own_fingerprint(encoder: TransformerEncoder) -> None:
    texts = ["how do i activate my new card?", "my card is lost", "what's the weather like"]
    int8 = TransformerEncoder(device="cpu", quantize="int8")
    assert int8.fingerprint != encoder.fingerprint
    cosine = (int8.encode(texts) * encoder.encode(texts)).sum(-1)
    assert bool((cosine > 0.85).all()), cosine  # int8 moves embeddings: accuracy is measured in benchmarks/int8.py


def test_similar_texts_are_closer(encoder: TransformerEncoder) -> None:
    a, b, c = encoder.encode(["i lost my phone", "my mobile was stolen", "what is the exchange rate for euros"])
    assert float(a @ b) > float(a @ c)


@pytest.mark.parametrize(("name", "chance"), [("banking77", 1 / 8), ("clinc150", 1 / 6)])
def test_adapted_accuracy_beats_chance_and_keeps_up_with_prototypes(
    embedded: dict, name: str, chance: float
) -> None:
    prototype_only = _accuracy(embedded[name], InnerLoopConfig(steps=0))
    adapted = _accuracy(embedded[name], InnerLoopConfig())
    assert adapted >= max(0.6, 4 * chance), (adapted, prototype_only)
    assert adapted >= prototype_only - MARGIN, (adapted, prototype_only)


def test_unlabelled_texts_lift_a_zero_shot_task_from_label_names(encoder: TransformerEncoder) -> None:
    """BANKING77 subset, 8 labels from their names: the support texts, labels dropped, as
    the unlabelled pool raise query accuracy (82.5% -> 86.25% when written)."""
    support, query = load_fixture("banking77")
    names = sorted({row["label"] for row in support})
    prompts = encoder.encode([name.replace("_", " ") for name in names])
    queries = encoder.encode([row["text"] for row in query])
    pool = encoder.encode([row["text"] for row in support])

    def accuracy(unlabelled: torch.Tensor | None) -> float:
        adapter = fit_adapter(prompts, names, InnerLoopConfig(), "real", unlabelled=unlabelled)
        return sum(p.label == row["label"] for p, row in zip(rank(adapter, queries, 1), query)) / len(query)

    assert accuracy(pool) > accuracy(None)
