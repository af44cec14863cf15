"""A deterministic stand-in for the sentence encoder, for fast tests.

Texts become hashed bags of words plus character trigrams, L2-normalised, so texts
that share words are close and simple synthetic tasks are easy to classify. Hashing
uses blake2b (not ``hash()``), so embeddings are the same in every process.
"""

from __future__ import annotations

import hashlib
import re
from typing import Sequence

import torch
import torch.nn.functional as F

_WORD = re.compile(r"\w+")


def _bucket(feature: str, dim: int) -> int:
    digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % dim


class FakeEncoder:
    """Satisfies ``models.encoder.TextEncoder``; records the texts it was asked to embed."""

    def __init__(self, dim: int = 64, fingerprint: str = "fake-encoder-v1", word_weight: float = 1.0,
                 trigram_weight: float = 0.3) -> None:
        self.dim = dim
        self.fingerprint = fingerprint
        self.device = torch.device("cpu")
        self.word_weight = word_weight
        self.trigram_weight = trigram_weight
        self.calls: list[list[str]] = []

    def _vector(self, text: str) -> torch.Tensor:
        vector = torch.zeros(self.dim, dtype=torch.float32)
        for word in _WORD.findall(text.lower()):
            vector[_bucket("w:" + word, self.dim)] += self.word_weight
            padded = f" {word} "
            for i in range(len(padded) - 2):
                vector[_bucket("t:" + padded[i : i + 3], self.dim)] += self.trigram_weight
        if not vector.any():  # no word characters at all: a fixed direction, never a zero row
            vector[0] = 1.0
        return vector

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """``[len(texts), dim]`` float32 rows of unit norm."""
        self.calls.append(list(texts))
        if not texts:
            return torch.empty(0, self.dim, dtype=torch.float32)
        return F.normalize(torch.stack([self._vector(text) for text in texts]), dim=-1)

    @property
    def num_encoded(self) -> int:
        """How many texts were embedded so far (to check cached embeddings are reused)."""
        return sum(len(call) for call in self.calls)
