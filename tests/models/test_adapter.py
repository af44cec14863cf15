"""Adapters as safetensors bytes: exact round trip, and refusal of anything else."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save as save_safetensors

from models.adapter import ADAPTER_FORMAT_VERSION, Adapter, AdapterFormatError


@pytest.fixture
def adapter() -> Adapter:
    generator = torch.Generator().manual_seed(0)
    params = {"weight": torch.randn(3, 8, generator=generator), "bias": torch.randn(3, generator=generator)}
    return Adapter(("alarm", "music", "wetter ☀"), params, 17.25, "abc123fingerprint")


def _raw(tensors: dict[str, torch.Tensor], **metadata: str) -> bytes:
    return save_safetensors(tensors, metadata=metadata)


def test_round_trip_is_exact(adapter: Adapter) -> None:
    loaded = Adapter.from_bytes(adapter.to_bytes())
    assert loaded.labels == adapter.labels
    assert loaded.scale == adapter.scale
    assert loaded.encoder_fingerprint == adapter.encoder_fingerprint
    assert set(loaded.params) == set(adapter.params)
    for name, value in adapter.params.items():
        assert loaded.params[name].dtype == torch.float32
        assert torch.equal(loaded.params[name], value)
    queries = torch.eye(8)[:2]
    assert torch.equal(loaded.probabilities(queries), adapter.probabilities(queries))


def test_second_round_trip_is_still_exact(adapter: Adapter) -> None:
    """(Bytes may differ between calls: safetensors does not order the metadata.)"""
    twice = Adapter.from_bytes(Adapter.from_bytes(adapter.to_bytes()).to_bytes())
    assert twice.labels == adapter.labels and twice.scale == adapter.scale
    assert all(torch.equal(twice.params[name], value) for name, value in adapter.params.items())


def test_num_bytes_counts_the_tensors(adapter: Adapter) -> None:
    assert adapter.num_bytes == (3 * 8 + 3) * 4


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(lambda data: b"", id="empty"),
        pytest.param(lambda data: b"not an adapter at all", id="garbage"),
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        pytest.param(lambda data: data[:8] + b"[" + data[9:], id="broken-header"),
        pytest.param(lambda data: (10**9).to_bytes(8, "little") + data[8:], id="bad-header-length"),
    ],
)
def test_corrupted_bytes_raise_format_error(adapter: Adapter, corrupt) -> None:  # noqa: ANN001 - lambda
    with pytest.raises(AdapterFormatError):
        Adapter.from_bytes(corrupt(adapter.to_bytes()))


@pytest.mark.parametrize("version", [str(ADAPTER_FORMAT_VERSION + 1), "0"])
def test_wrong_format_version_raises(adapter: Adapter, version: str) -> None:
    data = _raw(dict(adapter.params), format_version=version, labels=json.dumps(list(adapter.labels)),
                scale="1.0", encoder_fingerprint="x")
    with pytest.raises(AdapterFormatError, match="format"):
        Adapter.from_bytes(data)


def test_missing_metadata_raises_format_error(adapter: Adapter) -> None:
    with pytest.raises(AdapterFormatError):
        Adapter.from_bytes(_raw(dict(adapter.params)))
    with pytest.raises(AdapterFormatError):
        Adapter.from_bytes(_raw(dict(adapter.params), format_version=str(ADAPTER_FORMAT_VERSION)))


def test_non_numeric_format_version_raises_format_error(adapter: Adapter) -> None:
    data = _raw(dict(adapter.params), format_version="one", labels="[]", scale="1.0", encoder_fingerprint="x")
    with pytest.raises(AdapterFormatError):
        Adapter.from_bytes(data)


def test_labels_must_match_weight_rows(adapter: Adapter) -> None:
    data = _raw(dict(adapter.params), format_version=str(ADAPTER_FORMAT_VERSION), labels=json.dumps(["a", "b"]),
                scale="1.0", encoder_fingerprint="x")
    with pytest.raises(AdapterFormatError, match="labels"):
        Adapter.from_bytes(data)


def test_missing_weight_tensor_raises_format_error(adapter: Adapter) -> None:
    data = _raw({"bias": adapter.params["bias"]}, format_version=str(ADAPTER_FORMAT_VERSION),
                labels=json.dumps(list(adapter.labels)), scale="1.0", encoder_fingerprint="x")
    with pytest.raises(AdapterFormatError):
        Adapter.from_bytes(data)


def test_temperature_divides_the_whole_logits_so_it_never_changes_the_winner(adapter: Adapter) -> None:
    """Biases are part of the logits the temperature was fitted on; dividing only the
    cosine term (as before) let a temperature flip the argmax where biases differ."""
    from dataclasses import replace

    from models.head import head_logits

    generator = torch.Generator().manual_seed(1)
    embeddings = torch.nn.functional.normalize(torch.randn(500, 8, generator=generator), dim=-1)
    winners = adapter.probabilities(embeddings).argmax(-1)
    for temperature in (0.2, 0.7, 3.0, 10.0):
        warmed = replace(adapter, temperature=temperature)
        assert torch.equal(warmed.probabilities(embeddings).argmax(-1), winners)
        expected = (head_logits(adapter.params, embeddings, adapter.scale) / temperature).softmax(-1)
        assert torch.allclose(warmed.probabilities(embeddings), expected)
