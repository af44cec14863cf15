"""Encoder helpers that need no model, and the fake encoder's contract."""

from __future__ import annotations

import pytest
import torch

from models.encoder import TextEncoder, pool, resolve_device
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
