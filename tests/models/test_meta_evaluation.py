"""``models.meta.evaluation``: embedding held-out texts for the bare encoder and checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import models.meta.evaluation as evaluation
from models.checkpoint import build_encoder
from tests.models.meta_helpers import WORDS, tiny_bert_dir


def test_cached_fp32_states_run_through_half_precision_layers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On CUDA the encoder's weights are fp16 while the cached lower-layer states are fp32
    (shared with CPU runs); here a CPU encoder made half precision stands in for CUDA."""
    encoder_dir = str(tiny_bert_dir(tmp_path / "encoder"))

    def half_encoder(*args: object, **kwargs: object):
        encoder = build_encoder(*args, **kwargs)
        encoder.model.half()
        return encoder

    monkeypatch.setattr(evaluation, "build_encoder", half_encoder)
    texts = [" ".join(WORDS[i : i + 3]) for i in range(6)]
    [embeddings] = evaluation.embed_texts([texts], [None], encoder_dir, "cpu", tmp_path / "cache", cache_layer=1)
    assert embeddings.shape[0] == len(texts) and embeddings.dtype == torch.float32 and torch.isfinite(embeddings).all()
