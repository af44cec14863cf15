"""The packed pass equals the model's own padded pass (tiny random BERT, no download)."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertModel

from models.packed import packed_hidden_states, supports_packing


@pytest.fixture(scope="module")
def tiny_bert() -> BertModel:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=32, max_position_embeddings=32, type_vocab_size=2)
    return BertModel(config).eval()


def _padded(model: BertModel, ids: list[list[int]], types: list[list[int]]) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    longest = max(map(len, ids))
    input_ids = torch.tensor([row + [0] * (longest - len(row)) for row in ids])
    type_ids = torch.tensor([row + [0] * (longest - len(row)) for row in types])
    mask = torch.tensor([[1] * len(row) + [0] * (longest - len(row)) for row in ids])
    output = model(input_ids=input_ids, token_type_ids=type_ids, attention_mask=mask, output_hidden_states=True)
    return output.hidden_states, mask.bool()


@torch.inference_mode()
def test_packed_states_equal_the_padded_pass_on_real_tokens(tiny_bert: BertModel) -> None:
    ids = [[1, 7, 9, 2], [1, 3, 2], [1, 4, 5, 6, 8, 11, 12, 2], [1, 2]]
    types = [[0] * len(row) for row in ids]
    types[2][4:] = [1] * 4  # a text pair: second segment
    expected, expected_mask = _padded(tiny_bert, ids, types)
    states, mask = packed_hidden_states(tiny_bert, ids, types, all_layers=True)
    assert torch.equal(mask, expected_mask) and len(states) == len(expected) == 3
    for ours, theirs in zip(states, expected):
        torch.testing.assert_close(ours[mask], theirs[mask], atol=1e-5, rtol=1e-5)
        assert not ours[~mask].any()  # padded positions are zero
    (last,), _ = packed_hidden_states(tiny_bert, ids, types)
    torch.testing.assert_close(last, states[-1])


@torch.inference_mode()
def test_a_text_gets_the_same_states_alone_as_beside_longer_ones(tiny_bert: BertModel) -> None:
    (alone,), _ = packed_hidden_states(tiny_bert, [[1, 3, 2]])
    (together,), mask = packed_hidden_states(tiny_bert, [[1, 4, 5, 6, 8, 2], [1, 3, 2]])
    torch.testing.assert_close(together[1][mask[1]], alone[0], atol=1e-5, rtol=1e-5)


def test_only_bert_style_encoders_are_packed(tiny_bert: BertModel) -> None:
    assert supports_packing(tiny_bert)
    assert not supports_packing(torch.nn.Linear(4, 4))
    relative = BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=4,
                                    intermediate_size=32, position_embedding_type="relative_key"))
    assert not supports_packing(relative)
