"""Meta-trained checkpoints: a directory with ``manifest.json`` and optional tensors.

- ``manifest.json``: base encoder name and weights sha256, training data, algorithm,
  hyperparameters, the learned inner loop (``inner_loop``), evaluation figures.
- ``encoder.safetensors`` (optional): parameters that replace the base encoder's
  (fine-tuned top layers), by their state-dict names, and/or low-rank factors
  ``<param>.lora_A`` / ``<param>.lora_B`` (LoRA, Hu et al. 2021) that are merged
  into the base weights at load as ``W + scaling * B @ A``; the scaling is the
  manifest's ``lora.scaling``.
- ``layer_mix`` in the manifest (optional): ``{"weights": [...]}``, one weight per hidden
  state, that makes the sentence embedding a mix of layers (:func:`models.encoder.mix_pooled`).

The setting ``none`` means the bare encoder with default inner-loop settings, and
``default`` the checkpoint shipped in ``models/checkpoints/default`` when present.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from models.encoder import TransformerEncoder, packaged_encoder_path, weights_sha256
from models.inner_loop import InnerLoopConfig
from models.lora import lora_targets, merge_lora, split_lora

SHIPPED_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "default"


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    manifest: dict
    inner_loop: InnerLoopConfig
    encoder_weights: dict[str, torch.Tensor] = field(default_factory=dict)
    lora_factors: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def lora_scaling(self) -> float:
        return float(self.manifest.get("lora", {}).get("scaling", 1.0))

    @property
    def layer_mix(self) -> list[float] | None:
        mix = self.manifest.get("layer_mix")
        return [float(w) for w in mix["weights"]] if mix else None

    @property
    def fingerprint(self) -> str:
        """Identifies the encoder change this checkpoint makes (adapters depend on it)."""
        weights = self.path / "encoder.safetensors"
        if not weights.is_file() and self.layer_mix is None:
            return "bare"
        digest = hashlib.sha256(weights.read_bytes() if weights.is_file() else b"")
        if self.lora_factors:  # the merged weights also depend on the scaling
            digest.update(f"lora-scaling:{self.lora_scaling!r}".encode())
        if self.layer_mix is not None:
            digest.update(f"layer-mix:{self.layer_mix!r}".encode())
        return digest.hexdigest()[:16]

    def changed_parameters(self) -> list[str]:
        """State-dict names of the base parameters this checkpoint replaces or modifies."""
        return sorted(set(self.encoder_weights) | set(lora_targets(self.lora_factors)))

    def weight_overrides(self, base: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Plain replacements plus LoRA factors merged into ``base`` (the base encoder's tensors)."""
        merged = merge_lora(base, self.lora_factors, self.lora_scaling) if self.lora_factors else {}
        overlap = set(merged) & set(self.encoder_weights)
        if overlap:
            raise ValueError(f"checkpoint both replaces and LoRA-modifies {sorted(overlap)[:3]}")
        return {**self.encoder_weights, **merged}


def load_checkpoint(path: str | Path) -> Checkpoint:
    path = Path(path)
    manifest_file = path / "manifest.json"
    if not manifest_file.is_file():
        raise FileNotFoundError(f"no manifest.json in checkpoint {path}")
    manifest = json.loads(manifest_file.read_text())
    weights_file = path / "encoder.safetensors"
    plain, factors = split_lora(load_file(weights_file) if weights_file.is_file() else {})
    if factors:
        lora_targets(factors)  # validates pairing early
        if "scaling" not in manifest.get("lora", {}):
            raise ValueError(f"checkpoint {path} has LoRA factors but no lora.scaling in its manifest")
    inner_loop = InnerLoopConfig.from_dict(manifest.get("inner_loop", {}))
    return Checkpoint(path, manifest, inner_loop, plain, factors)


def save_checkpoint(path: str | Path, manifest: dict, tensors: dict[str, torch.Tensor] | None = None) -> Path:
    """Write ``manifest.json`` and (if any tensors) ``encoder.safetensors``; never pickles."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    weights_file = path / "encoder.safetensors"
    if tensors:
        save_file({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, str(weights_file))
        weights_file.chmod(0o644)  # safetensors writes 0600; a server running as another user must read it
    elif weights_file.exists():
        weights_file.unlink()
    (path / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path


def base_tensors(model_dir: str | Path | None, names: list[str]) -> dict[str, torch.Tensor]:
    """Read the named parameters from the base encoder's safetensors files (no model built).

    Weight files may prefix names with the architecture (``bert.``); both spellings match.
    """
    directory = Path(model_dir) if model_dir else packaged_encoder_path()
    wanted, found = set(names), {}
    for file in sorted(directory.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():
                name = key.split(".", 1)[1] if key.startswith("bert.") else key
                if name in wanted:
                    found[name] = handle.get_tensor(key)
    missing = wanted - set(found)
    if missing:
        raise ValueError(f"base encoder at {directory} lacks {sorted(missing)[:5]}")
    return found


def resolve_checkpoint(setting: str | None) -> Checkpoint | None:
    """``none`` -> None; ``default`` -> the shipped checkpoint if any; else a path."""
    if setting is None or setting.lower() == "none":
        return None
    if setting.lower() == "default":
        return load_checkpoint(SHIPPED_CHECKPOINT) if (SHIPPED_CHECKPOINT / "manifest.json").is_file() else None
    return load_checkpoint(setting)


def checkpoint_for_encoder(setting: str | None, encoder_dir: str | Path | None) -> Checkpoint | None:
    """The checkpoint ``setting`` names, checked against the encoder at ``encoder_dir``.

    ``default`` means the checkpoint shipped for that encoder: the shipped one belongs to
    the packaged MiniLM, so with another encoder there is none and the encoder runs bare
    (None). An explicit checkpoint meta-trained on another encoder is refused: neither its
    weight changes nor its learned inner loop fit another embedding space.
    """
    checkpoint = resolve_checkpoint(setting)
    expected = checkpoint.manifest.get("base_encoder_sha256") if checkpoint is not None else None
    if checkpoint is None or not expected:
        return checkpoint
    actual = weights_sha256(Path(encoder_dir) if encoder_dir else packaged_encoder_path())
    if actual == expected:
        return checkpoint
    if setting is not None and setting.lower() == "default":
        return None
    raise ValueError(f"checkpoint {checkpoint.path} belongs to base encoder "
                     f"{checkpoint.manifest.get('base_encoder', 'unnamed')} (weights sha256 {expected[:12]}…), not to "
                     f"the encoder at {encoder_dir or packaged_encoder_path()} ({actual[:12]}…): use checkpoint "
                     f"`none`, or one meta-trained on this encoder")


def build_encoder(
    encoder_dir: str | None, checkpoint: Checkpoint | None, device: str = "auto", batch_size: int = 64,
    quantize: str = "none",
) -> TransformerEncoder:
    """The base encoder with the checkpoint's weight changes (replacements, merged LoRA) applied."""
    overrides = None
    if checkpoint is not None:
        expected = checkpoint.manifest.get("base_encoder_sha256")
        if expected and checkpoint.fingerprint != "bare":
            actual = weights_sha256(Path(encoder_dir) if encoder_dir else packaged_encoder_path())
            if actual != expected:
                raise ValueError(f"checkpoint {checkpoint.path} was trained on base encoder {expected[:12]}…, "
                                 f"not on {actual[:12]}…: its weight changes do not apply")
        overrides = checkpoint.encoder_weights
        if checkpoint.lora_factors:
            overrides = checkpoint.weight_overrides(base_tensors(encoder_dir, lora_targets(checkpoint.lora_factors)))
    return TransformerEncoder(
        encoder_dir,
        device=device,
        batch_size=batch_size,
        weight_overrides=overrides,
        fingerprint_extra=checkpoint.fingerprint if checkpoint else "bare",
        layer_mix=checkpoint.layer_mix if checkpoint else None,
        quantize=quantize,
    )


def rebase_checkpoint(path: str | Path, trained_on: str | Path, onto: str | Path | None = None) -> dict:
    """Tie a checkpoint trained on a reduced-precision copy of the base encoder to the original.

    A GPU machine may only be able to carry the encoder in fp16 (half the bytes); a checkpoint
    trained there records that copy's sha256, so the service (which loads the packaged fp32
    weights) would refuse it. This checks, tensor by tensor, that ``trained_on`` is exactly
    ``onto`` rounded to ``trained_on``'s dtypes, and only then rewrites the manifest's
    ``base_encoder_sha256`` to ``onto``'s and records the rebase. The checkpoint's own weights
    (LoRA factors, replacements) are untouched; merged into fp32 base weights they differ
    from training by the rounding of the base alone.
    """
    path, source = Path(path), Path(trained_on)
    target = Path(onto) if onto else packaged_encoder_path()
    checkpoint = load_checkpoint(path)
    source_sha, target_sha = weights_sha256(source), weights_sha256(target)
    if checkpoint.manifest.get("base_encoder_sha256") != source_sha:
        raise ValueError(f"checkpoint {path} was not trained on {source} (sha256 {source_sha[:12]}…)")
    names = [key for file in sorted(source.glob("*.safetensors")) for key in safe_open(str(file), "pt").keys()]
    names = [n.split(".", 1)[1] if n.startswith("bert.") else n for n in names]
    copy, original = base_tensors(source, names), base_tensors(target, names)
    mismatched = [n for n in names if copy[n].shape != original[n].shape or not torch.equal(original[n].to(copy[n].dtype), copy[n])]
    if mismatched:
        raise ValueError(f"{source} is not {target} rounded: {len(mismatched)} tensors differ, e.g. {mismatched[:3]}")
    manifest = {**checkpoint.manifest, "base_encoder_sha256": target_sha,
                "rebased": {"trained_on_sha256": source_sha, "dtypes": sorted({str(t.dtype) for t in copy.values()}),
                            "tensors_checked": len(names)}}
    (path / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest["rebased"]
