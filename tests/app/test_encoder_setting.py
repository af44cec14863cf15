"""FEWSHOT_ENCODER and ``fewshot evaluate --encoder-dir`` take a name; `default` is the
checkpoint shipped for that encoder, if any.

A tiny random BERT stands in for mpnet: zipped, split into five parts and registered
under the name ``all-mpnet-base-v2``, so the service resolves it exactly as it resolves
the real one (assembly, sha256 checks, cache) without the real 400 MB.
"""

from __future__ import annotations

import hashlib
import io
import logging
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.cli import main
from app.main import create_app
from models import encoder_registry
from models.checkpoint import SHIPPED_CHECKPOINT
from models.inner_loop import InnerLoopConfig
from tests.conftest import make_settings
from tests.models.meta_helpers import tiny_bert_dir, toy_dataset_dir


@pytest.fixture
def tiny_mpnet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Register a tiny BERT as ``all-mpnet-base-v2``; returns the encoder cache root."""
    model = tiny_bert_dir(tmp_path / "tiny")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for file in sorted(model.rglob("*")):
            if file.is_file():
                bundle.write(file, f"all-mpnet-base-v2/{file.relative_to(model)}")
    data, size = buffer.getvalue(), -(-len(buffer.getvalue()) // 5)
    parts = []
    for i in range(5):
        parts.append(tmp_path / f"all-mpnet-base-v2.zip.{i + 1:03d}")
        parts[-1].write_bytes(data[i * size : (i + 1) * size])
    spec = {"name": "all-mpnet-base-v2", "source": "sentence-transformers/all-mpnet-base-v2",
            "packages": [], "part_files": [], "zip_sha256": hashlib.sha256(data).hexdigest(),
            "folder": "all-mpnet-base-v2", "weights_file": "model.safetensors",
            "weights_sha256": hashlib.sha256((model / "model.safetensors").read_bytes()).hexdigest()}
    monkeypatch.setattr(encoder_registry, "split_zip_encoders", lambda: {"all-mpnet-base-v2": spec})
    monkeypatch.setattr(encoder_registry, "locate_parts", lambda s: parts)
    return tmp_path / "encoders"


def test_default_checkpoint_with_another_encoder_serves_it_bare(
        tiny_mpnet: Path, database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    assert (SHIPPED_CHECKPOINT / "manifest.json").is_file()  # the shipped one belongs to MiniLM
    settings = make_settings(database_url, encoder="all-mpnet-base-v2", encoder_cache=str(tiny_mpnet),
                             checkpoint="default", device="cpu")
    caplog.set_level(logging.INFO, logger="fewshot")
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200
        engine = client.app.state.engine
        assert engine.encoder.model_dir == tiny_mpnet / "all-mpnet-base-v2"
        assert engine.encoder.layer_mix is None and engine.config == InnerLoopConfig()
    assert "no checkpoint is shipped for encoder all-mpnet-base-v2" in caplog.text


def test_an_explicit_checkpoint_of_another_encoder_is_refused(tiny_mpnet: Path, database_url: str) -> None:
    settings = make_settings(database_url, encoder="all-mpnet-base-v2", encoder_cache=str(tiny_mpnet),
                             checkpoint=str(SHIPPED_CHECKPOINT), device="cpu")
    with pytest.raises(ValueError, match="belongs to base encoder sentence-transformers/all-MiniLM-L6-v2"):
        with TestClient(create_app(settings)):
            pass


def test_an_encoder_directory_still_works(tmp_path: Path, database_url: str) -> None:
    model = tiny_bert_dir(tmp_path / "tiny")
    settings = make_settings(database_url, encoder=str(model), checkpoint="none", device="cpu")
    with TestClient(create_app(settings)) as client:
        assert client.app.state.engine.encoder.model_dir == model


def test_evaluate_takes_the_name_and_refuses_checkpoints_of_another_encoder(
        tiny_mpnet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FEWSHOT_ENCODER_CACHE", str(tiny_mpnet))
    data = toy_dataset_dir(tmp_path / "toy")
    evaluate = ["evaluate", "--data", str(data), "--episodes", "2", "--ways", "3", "--queries", "2",
                "--encoder-dir", "all-mpnet-base-v2", "--device", "cpu", "--cache-dir", str(tmp_path / "cache"),
                "--out", str(tmp_path / "eval"), "--no-progress"]
    assert main(evaluate) == 0
    assert (tiny_mpnet / "all-mpnet-base-v2" / "model.safetensors").is_file()
    assert main([*evaluate, "--checkpoint", "default"]) == 2
    assert main([*evaluate, "--checkpoint", str(SHIPPED_CHECKPOINT)]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert "no checkpoint is shipped for the encoder" in errors[0] and "belongs to base encoder" in errors[1]


def test_switching_to_an_encoder_of_another_width_rebuilds_tasks(build_app) -> None:
    """MiniLM embeds in 384 dimensions, mpnet in 768: stored embeddings and adapters of the
    other width are made again from the stored texts on first use."""
    from tests.fakes import FakeEncoder
    from tests.helpers import SYNTHETIC_QUERIES, create_task, create_tenant

    with TestClient(build_app(FakeEncoder(dim=64, fingerprint="narrow"))) as client:
        headers = create_tenant(client)
        task = create_task(client, headers)
        query = {"texts": [text for text, _ in SYNTHETIC_QUERIES]}
        before = client.post(f"/v1/tasks/{task['id']}/predict", json=query, headers=headers).json()
        assert [p["label"] for p in before["predictions"]] == [label for _, label in SYNTHETIC_QUERIES]
    wide = FakeEncoder(dim=128, fingerprint="wide")
    with TestClient(build_app(wide)) as client:
        after = client.post(f"/v1/tasks/{task['id']}/predict", json=query, headers=headers)
        assert after.status_code == 200
        assert [p["label"] for p in after.json()["predictions"]] == [p["label"] for p in before["predictions"]]
        assert wide.num_encoded == task["num_examples"] + len(query["texts"])
