"""A task's adapter as data: head tensors plus the facts needed to use them safely.

Serialised with safetensors (never pickle). The header metadata carries the format
version, the label order, the logit scale and the fingerprint of the encoder that
produced the embeddings, so an adapter is never applied to the wrong encoder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from models.head import HeadParams, head_probabilities

ADAPTER_FORMAT_VERSION = 1


class AdapterFormatError(ValueError):
    """The bytes are not an adapter this code can read."""


@dataclass(frozen=True)
class Adapter:
    labels: tuple[str, ...]
    params: HeadParams
    scale: float
    encoder_fingerprint: str

    @property
    def num_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.params.values())

    def probabilities(self, embeddings: torch.Tensor) -> torch.Tensor:
        """``[n, len(labels)]`` class probabilities for unit-norm embeddings."""
        params = {name: value.to(embeddings.device) for name, value in self.params.items()}
        return head_probabilities(params, embeddings, self.scale)

    def to(self, device: torch.device | str) -> "Adapter":
        params = {name: value.to(device) for name, value in self.params.items()}
        return Adapter(self.labels, params, self.scale, self.encoder_fingerprint)

    def to_bytes(self) -> bytes:
        metadata = {
            "format_version": str(ADAPTER_FORMAT_VERSION),
            "labels": json.dumps(list(self.labels)),
            "scale": repr(float(self.scale)),
            "encoder_fingerprint": self.encoder_fingerprint,
        }
        tensors = {name: value.detach().to("cpu", torch.float32).contiguous() for name, value in self.params.items()}
        return save_safetensors(tensors, metadata=metadata)

    @classmethod
    def from_bytes(cls, data: bytes) -> "Adapter":
        try:
            header_len = int.from_bytes(data[:8], "little")
            metadata = json.loads(data[8 : 8 + header_len]).get("__metadata__", {})
            tensors = load_safetensors(data)
        except Exception as error:  # noqa: BLE001 - any parse failure is a format error
            raise AdapterFormatError(f"not a safetensors adapter: {error}") from error
        try:
            version = int(metadata.get("format_version", -1))
        except (TypeError, ValueError) as error:
            raise AdapterFormatError(f"adapter format version is not a number: {error}") from error
        if version != ADAPTER_FORMAT_VERSION:
            raise AdapterFormatError(f"adapter format {version}, this code reads {ADAPTER_FORMAT_VERSION}")
        try:
            labels = tuple(json.loads(metadata["labels"]))
            scale, fingerprint = float(metadata["scale"]), metadata["encoder_fingerprint"]
            rows = tensors["weight"].shape[0]
        except (KeyError, TypeError, ValueError) as error:
            raise AdapterFormatError(f"adapter lacks a field or tensor: {error}") from error
        if rows != len(labels):
            raise AdapterFormatError("adapter weight rows do not match its labels")
        return cls(labels, tensors, scale, fingerprint)
