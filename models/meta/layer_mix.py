"""Meta-learned layer mix: which of the frozen encoder's layers a sentence embedding draws on.

The sentence embedding becomes ``normalize(sum_l a_l * normalize(pool(h_l)))`` over the
hidden states ``h_0..h_L`` (:func:`models.encoder.mix_pooled`), a scalar mix of layers
as in ELMo (Peters et al. 2018). A sentence encoder's last layer is tuned for
sentence similarity and smooths away lexical cues that tell fine-grained intents
apart; lower layers keep them. The weights ``a = exp(theta)`` are meta-learned from
episodes with any loss-based algorithm (prototypical, first-order MAML, MAML through
the head, Reptile) while the encoder's weights stay frozen, so every text's pooled
per-layer vectors are computed once (:func:`cached_pooled_layers`) and an episode costs
a weighted sum: meta-training is cheap even on a CPU. The checkpoint is a handful of
numbers in its manifest (``layer_mix.weights``), and the service computes the same mix.

:class:`LayerMixModel` has the interface the trainer expects of
:class:`models.meta.model.MetaModel` (``embed``, ``embed_all``, ``encoder_parameters``,
``inner``), with a ``[n, states, dim]`` tensor of pooled vectors in place of token states.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from models.encoder import TransformerEncoder, mix_pooled
from models.inner_loop import InnerLoopConfig
from models.meta.features import dtype_tag
from models.meta.model import LearnedInnerLoop

START_LOGIT = -6.0  # the other layers start at exp(-6) ~ 0.25% of the last: the bare encoder, nearly


def cached_pooled_layers(encoder: TransformerEncoder, texts: Sequence[str], base_sha256: str,
                         cache_dir: str | Path | None, progress: bool = False) -> torch.Tensor:
    """``encoder.encode_layers`` (on the CPU) memoised on disk (safetensors) by base encoder, length limit and texts.

    Only valid for the *bare* base encoder (no weight overrides, no mix)."""
    key = hashlib.sha256(f"pooled-layers|{base_sha256}|{encoder.max_length}|{encoder.pooling}|"
                         f"{dtype_tag(encoder.model)}".encode())
    for text in texts:
        key.update(text.encode("utf-8") + b"\x00")
    file = Path(cache_dir) / f"pooled-{key.hexdigest()[:24]}.safetensors" if cache_dir else None
    if file is not None and file.is_file():
        return load_file(str(file))["pooled"]
    pooled = encoder.encode_layers(texts, progress).cpu()
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        partial = file.with_suffix(".partial")
        save_file({"pooled": pooled.contiguous()}, str(partial))
        partial.replace(file)
    return pooled


class LayerMixModel(nn.Module):
    """Learnable log-weights of the layer mix plus the learned inner loop; nothing else trains."""

    trains_encoder = True

    def __init__(self, num_states: int, inner: InnerLoopConfig, learn_inner: bool = False,
                 start_logit: float = START_LOGIT) -> None:
        super().__init__()
        logits = torch.full((num_states,), float(start_logit))
        logits[-1] = 0.0
        self.layer_mix_logits = nn.Parameter(logits)
        self.inner = LearnedInnerLoop(inner, learn=learn_inner)

    def weights(self) -> torch.Tensor:
        return self.layer_mix_logits.exp()

    def encoder_parameters(self) -> list[nn.Parameter]:
        return [self.layer_mix_logits]

    def inner_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.inner.parameters() if p.requires_grad]

    def embed(self, pooled: torch.Tensor, indices: Sequence[int]) -> torch.Tensor:
        """Unit-norm mixed embeddings of the cached texts ``indices``; differentiable in the weights."""
        rows = torch.as_tensor(list(indices), dtype=torch.long, device=pooled.device)
        return mix_pooled(pooled[rows], self.weights())

    @torch.no_grad()
    def embed_all(self, pooled: torch.Tensor) -> torch.Tensor:
        return mix_pooled(pooled, self.weights())

    def encoder_tensors(self) -> dict[str, torch.Tensor]:
        return {}  # the mix lives in the manifest; the encoder's weights are untouched

    def lora_manifest(self) -> None:
        return None

    def layer_mix_manifest(self) -> dict:
        """Weights relative to the largest (scale does not matter: the mix is normalised)."""
        weights = self.weights().detach().cpu()
        weights = weights / weights.max()
        return {"weights": [round(float(w), 6) for w in weights], "states": ["embeddings"] +
                [f"layer {i}" for i in range(1, len(weights))]}
