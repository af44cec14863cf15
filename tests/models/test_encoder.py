"""Encoder helpers that need no model, and the fake encoder's contract."""

from __future__ import annotations

import pytest
import torch

from models.encoder import TextEncoder, length_buckets, pool, resolve_device
from tests.fakes import FakeEncoder


def test_mean_pooling_ignores_padding_and_normalises() -> None:
    hidden = torch.tensor([[[1.0, 0.0], [3.0, 0.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    torch.testing.assert_close(pool(hidden, mask), torch.tensor([[1.0, 0.0]]))


def test_cls_pooling_takes_the_first_token() -> None:
    hidden = torch.tensor([[[0.0, 2.0], [5.0, 5.0]]])
    torch.testing.assert_close(pool(hidden, torch.ones(1, 2), "cls"), torch.tensor([[0.0, 1.0]]))


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            resolve_device("cuda")


def test_fake_encoder_satisfies_the_protocol() -> None:
    encoder: TextEncoder = FakeEncoder()
    embeddings = encoder.encode(["play some music", "", "play music"])
    assert embeddings.dtype == torch.float32 and embeddings.shape == (3, encoder.dim)
    torch.testing.assert_close(embeddings.norm(dim=-1), torch.ones(3))
    assert torch.equal(embeddings, FakeEncoder().encode(["play some music", "", "play music"]))
    assert embeddings[0] @ embeddings[2] > embeddings[0] @ embeddings[1]
    assert FakeEncoder(fingerprint="other").fingerprint != encoder.fingerprint


def test_length_buckets_sort_and_respect_the_batch_size() -> None:
    lengths = [9, 3, 5, 3, 12, 4]
    buckets = length_buckets(lengths, batch_size=4)
    assert [len(b) for b in buckets] == [4, 2]
    assert sorted(i for b in buckets for i in b) == list(range(len(lengths)))
    flat = [lengths[i] for b in buckets for i in b]
    assert flat == sorted(lengths)


def test_length_buckets_cut_where_padding_would_pass_the_limit() -> None:
    lengths = [10, 10, 10, 10, 40]
    # padding the four 10-token texts to 40 would pad 160 + 40 for 80 real tokens
    assert length_buckets(lengths, batch_size=64, max_padding=0.25) == [[0, 1, 2, 3], [4]]
    assert length_buckets(lengths, batch_size=64, max_padding=None) == [[0, 1, 2, 3, 4]]
    for bucket in length_buckets([5, 6, 7, 8, 9, 20, 21, 22, 60], 64, 0.25):
        padded = len(bucket) * max(lengths_of(bucket, [5, 6, 7, 8, 9, 20, 21, 22, 60]))
        assert len(bucket) == 1 or padded <= 1.25 * sum(lengths_of(bucket, [5, 6, 7, 8, 9, 20, 21, 22, 60]))



def test_length_buckets_keep_padding_cheaper_than_another_pass() -> None:
    lengths = [10, 10, 10, 10, 40]  # 120 padded tokens: more than a pass costs, so cut
    assert length_buckets(lengths, 64, 0.25, pass_tokens=100) == [[0, 1, 2, 3], [4]]
    assert length_buckets(lengths, 64, 0.25, pass_tokens=120) == [[0, 1, 2, 3, 4]]
    small = [6, 9, 12]  # a small request: 9 padded tokens cost less than a second pass
    assert length_buckets(small, 64, 0.25, pass_tokens=32) == [[0, 1, 2]]
    assert len(length_buckets(small, 64, 0.25)) > 1

def lengths_of(bucket: list[int], lengths: list[int]) -> list[int]:
    return [lengths[i] for i in bucket]


def test_length_buckets_of_nothing() -> None:
    assert length_buckets([], batch_size=8, max_padding=0.25) == []


def test_int8_quantisation_is_refused_off_the_cpu() -> None:
    from models.encoder import quantize_linear_int8

    with pytest.raises(ValueError, match="CPU only"):
        quantize_linear_int8(torch.nn.Linear(2, 2), torch.device("cuda"))


def test_int8_quantisation_replaces_linear_layers_and_keeps_outputs_close() -> None:
    from models.encoder import quantize_linear_int8

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8)).eval()
    inputs = torch.randn(5, 16)
    quantised = quantize_linear_int8(model, torch.device("cpu"))
    assert not any(type(m) is torch.nn.Linear for m in quantised.modules())
    with torch.inference_mode():
        torch.testing.assert_close(quantised(inputs), model(inputs), atol=0.05, rtol=0.1)


def test_length_buckets_weigh_padding_by_its_cost() -> None:
    lengths = [10, 10, 10, 10, 40]  # 120 padded positions for 80 real tokens
    assert length_buckets(lengths, 64, 0.25, pass_tokens=0) == [[0, 1, 2, 3], [4]]
    # in a packed pass a padded position costs a fraction of a token: 120 x 0.15 = 18 < 0.25 x 80
    assert length_buckets(lengths, 64, 0.25, pass_tokens=0, padding_cost=0.15) == [[0, 1, 2, 3, 4]]
    assert length_buckets(lengths + [128], 64, 0.25, pass_tokens=0, padding_cost=0.15) == [[0, 1, 2, 3, 4], [5]]


def test_length_buckets_cap_the_real_tokens_of_a_batch() -> None:
    lengths = [10] * 10
    assert [len(b) for b in length_buckets(lengths, 64, max_tokens=30)] == [3, 3, 3, 1]
    assert length_buckets([50, 10], 64, max_tokens=30) == [[1], [0]]  # a text longer than the cap gets its own pass
