"""Cached lower layers + top layers by hand == the full Hugging Face forward."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.encoder import TransformerEncoder, weights_sha256
from models.meta.features import cached_token_states, concat_states, embed_states, first_changed_layer
from tests.models.meta_helpers import tiny_bert_dir, toy_rows, toy_states


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bert_dir(tmp_path_factory.mktemp("tiny-bert"))


@pytest.mark.parametrize("upto", [0, 2, 3])
def test_cached_states_plus_top_layers_equal_the_encoder(tiny_dir: Path, tmp_path: Path, upto: int) -> None:
    encoder = TransformerEncoder(tiny_dir, device="cpu", batch_size=4)
    texts = [r.text for r in toy_rows(3, 4)] + ["w1", "w2 w3 w4 w5 w6 w7 w8 w9 w10 w11"]
    states = cached_token_states(encoder.model, encoder.tokenizer, texts, upto, weights_sha256(tiny_dir), tmp_path)
    assert len(states) == len(texts)
    with torch.no_grad():
        mine = embed_states(encoder.model.encoder.layer[upto:], states, list(range(len(texts))), chunk=3)
    assert torch.allclose(mine, encoder.encode(texts), atol=1e-5)
    again = cached_token_states(encoder.model, encoder.tokenizer, texts, upto, weights_sha256(tiny_dir), tmp_path)
    assert len(list(tmp_path.glob("states-*.safetensors"))) == 1
    assert torch.equal(again.states, states.states) and torch.equal(again.offsets, states.offsets)


def test_embed_states_keeps_the_requested_order() -> None:
    from tests.models.meta_helpers import tiny_layers

    rows = toy_rows(2, 5)
    states, layers = toy_states(rows), tiny_layers(1)
    with torch.no_grad():
        forward = embed_states(layers, states, [0, 5, 9, 1], chunk=2)
        single = torch.cat([embed_states(layers, states, [i]) for i in [0, 5, 9, 1]])
    assert torch.allclose(forward, single, atol=1e-5)


def test_concat_states() -> None:
    a, b = toy_states(toy_rows(2, 2), seed=1), toy_states(toy_rows(2, 3), seed=2)
    both = concat_states([a, b])
    assert len(both) == 10
    assert torch.equal(both.padded([4])[0], b.padded([0])[0])


def test_first_changed_layer() -> None:
    assert first_changed_layer([], 6) == 6
    assert first_changed_layer(["encoder.layer.4.output.dense.weight", "encoder.layer.5.x"], 6) == 4
    assert first_changed_layer(["embeddings.word_embeddings.weight"], 6) == 0
