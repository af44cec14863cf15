"""A task's adapter as data: head tensors plus the facts needed to use them safely.

Serialised with safetensors (never pickle). The header metadata carries the format
version, the label order, the logit scale and the fingerprint of the encoder that
produced the embeddings, so an adapter is never applied to the wrong encoder.
Format 3 adds the out-of-scope model (:mod:`models.out_of_scope`) as ``oos.*`` tensors;
an adapter without one scores in-scope-ness by the max cosine to the head's weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from models.head import HeadParams, head_probabilities
from models.out_of_scope import OutOfScopeModel

ADAPTER_FORMAT_VERSION = 3
# 1: no calibration fields (temperature 1, no threshold); 2: no out-of-scope model.
READABLE_FORMAT_VERSIONS = (1, 2, 3)
OOS_PREFIX = "oos."


class AdapterFormatError(ValueError):
    """The bytes are not an adapter this code can read."""


@dataclass(frozen=True)
class Adapter:
    labels: tuple[str, ...]
    params: HeadParams
    scale: float
    encoder_fingerprint: str
    temperature: float = 1.0
    oos_threshold: float | None = None
    oos_model: OutOfScopeModel | None = None

    @property
    def num_bytes(self) -> int:
        tensors = list(self.params.values()) + (list(self.oos_model.tensors().values()) if self.oos_model else [])
        return sum(t.numel() * t.element_size() for t in tensors)

    def probabilities(self, embeddings: torch.Tensor) -> torch.Tensor:
        """``[n, len(labels)]`` calibrated class probabilities for unit-norm embeddings:
        the softmax of the head's logits (scaled cosines plus biases) divided by the
        temperature, the form the temperature was fitted in (models.calibration), so that
        it changes how sure the answers are, never which label wins (Guo et al. 2017)."""
        params = {name: value.to(embeddings.device) for name, value in self.params.items()}
        return head_probabilities(params, embeddings, self.scale, self.temperature)

    def in_scope_scores(self, embeddings: torch.Tensor) -> torch.Tensor:
        """The out-of-scope model's score (else the highest cosine similarity to a class
        weight); below ``oos_threshold`` is out of scope."""
        if self.oos_model is not None:
            return self.oos_model.scores(embeddings).to(embeddings.device)
        weight = F.normalize(self.params["weight"].to(embeddings.device), dim=-1)
        return (F.normalize(embeddings, dim=-1) @ weight.T).max(dim=-1).values

    def to(self, device: torch.device | str) -> "Adapter":
        return replace(self, params={name: value.to(device) for name, value in self.params.items()},
                       oos_model=self.oos_model.to(device) if self.oos_model is not None else None)

    def to_bytes(self) -> bytes:
        metadata = {
            "format_version": str(ADAPTER_FORMAT_VERSION),
            "labels": json.dumps(list(self.labels)),
            "scale": repr(float(self.scale)),
            "encoder_fingerprint": self.encoder_fingerprint,
            "temperature": repr(float(self.temperature)),
            "oos_threshold": "" if self.oos_threshold is None else repr(float(self.oos_threshold)),
        }
        tensors = dict(self.params) | (self.oos_model.tensors(OOS_PREFIX) if self.oos_model is not None else {})
        tensors = {name: value.detach().to("cpu", torch.float32).contiguous() for name, value in tensors.items()}
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
        if version not in READABLE_FORMAT_VERSIONS:
            raise AdapterFormatError(f"adapter format {version}, this code reads {READABLE_FORMAT_VERSIONS}")
        try:
            oos_model = (OutOfScopeModel.from_tensors(tensors, OOS_PREFIX)
                         if any(name.startswith(OOS_PREFIX) for name in tensors) else None)
            params = {name: value for name, value in tensors.items() if not name.startswith(OOS_PREFIX)}
            labels = tuple(json.loads(metadata["labels"]))
            scale, fingerprint = float(metadata["scale"]), metadata["encoder_fingerprint"]
            rows = tensors["weight"].shape[0]
            temperature = float(metadata.get("temperature", 1.0))
            threshold = float(metadata["oos_threshold"]) if metadata.get("oos_threshold") else None
        except (KeyError, TypeError, ValueError) as error:
            raise AdapterFormatError(f"adapter lacks a field or tensor: {error}") from error
        if rows != len(labels) or (oos_model is not None and len(oos_model.means) != len(labels)):
            raise AdapterFormatError("adapter weight rows do not match its labels")
        return cls(labels, params, scale, fingerprint, temperature, threshold, oos_model)
