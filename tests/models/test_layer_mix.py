"""The meta-learned layer mix: the maths on tiny tensors, the cache, and the served encoder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from models.checkpoint import build_encoder, load_checkpoint, save_checkpoint
from models.encoder import TransformerEncoder, mix_pooled, weights_sha256
from models.episodes import Episode
from models.inner_loop import InnerLoopConfig
from models.meta.algorithms import make_algorithm
from models.meta.layer_mix import LayerMixModel, cached_pooled_layers
from tests.models.meta_helpers import tiny_bert_dir, toy_rows


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bert_dir(tmp_path_factory.mktemp("tiny-bert"))


def test_mix_is_scale_invariant_and_one_hot_picks_a_layer() -> None:
    pooled = F.normalize(torch.randn(5, 4, 8), dim=-1)
    weights = torch.tensor([0.2, 0.0, 1.0, 0.5])
    assert torch.allclose(mix_pooled(pooled, weights), mix_pooled(pooled, 7 * weights), atol=1e-6)
    assert torch.allclose(mix_pooled(pooled, torch.tensor([0.0, 1.0, 0.0, 0.0])), pooled[:, 1], atol=1e-6)
    assert torch.allclose(mix_pooled(pooled, weights).norm(dim=-1), torch.ones(5), atol=1e-6)


def test_encoder_with_a_last_layer_mix_equals_the_bare_encoder(tiny_dir: Path) -> None:
    texts = [r.text for r in toy_rows(3, 2)]
    bare = TransformerEncoder(tiny_dir, device="cpu")
    last = TransformerEncoder(tiny_dir, device="cpu", layer_mix=[0, 0, 0, 1])
    mixed = TransformerEncoder(tiny_dir, device="cpu", layer_mix=[0, 0.5, 0, 1])
    assert torch.allclose(bare.encode(texts), last.encode(texts), atol=1e-6)
    assert not torch.allclose(bare.encode(texts), mixed.encode(texts), atol=1e-3)
    assert len({bare.fingerprint, last.fingerprint, mixed.fingerprint}) == 3  # adapters never cross encoders
    with pytest.raises(ValueError, match="4 non-negative weights"):
        TransformerEncoder(tiny_dir, device="cpu", layer_mix=[1, 1])


def test_cached_pooled_layers_mix_to_what_the_encoder_serves(tiny_dir: Path, tmp_path: Path) -> None:
    texts = [r.text for r in toy_rows(3, 3)] + ["w1", "w2 w3 w4 w5 w6 w7 w8 w9"]
    encoder = TransformerEncoder(tiny_dir, device="cpu", batch_size=4)
    pooled = cached_pooled_layers(encoder, texts, weights_sha256(tiny_dir), tmp_path)
    assert pooled.shape == (len(texts), 4, encoder.dim)
    again = cached_pooled_layers(encoder, texts, weights_sha256(tiny_dir), tmp_path)
    assert torch.equal(pooled, again) and len(list(tmp_path.glob("pooled-*.safetensors"))) == 1
    weights = [0.3, 0.0, 0.7, 1.0]
    served = TransformerEncoder(tiny_dir, device="cpu", layer_mix=weights).encode(texts)
    assert torch.allclose(mix_pooled(pooled, torch.tensor(weights)), served, atol=1e-5)


def test_model_starts_near_the_last_layer_and_learns_where_the_classes_are() -> None:
    """Class information only in state 0, noise elsewhere: episodes move weight to state 0."""
    torch.manual_seed(0)
    classes, per_class, dim = 4, 6, 16
    centres = F.normalize(torch.randn(classes, dim), dim=-1)
    labels = torch.arange(classes).repeat_interleave(per_class)
    informative = F.normalize(centres[labels] + 0.3 * torch.randn(len(labels), dim), dim=-1)
    noise = F.normalize(torch.randn(len(labels), 2, dim), dim=-1)
    pooled = torch.cat([informative[:, None], noise], dim=1)
    model = LayerMixModel(3, InnerLoopConfig(steps=5))
    start = model.weights().detach()
    assert start[-1] == 1 and (start[:-1] < 0.01).all()
    rows = list(range(len(labels)))
    support = [r for r in rows if r % per_class < 3]
    query = [r for r in rows if r % per_class >= 3]
    episode = Episode(tuple(f"c{c}" for c in range(classes)), tuple(support), tuple(labels[support].tolist()),
                      tuple(query), tuple(labels[query].tolist()), ("",) * len(support), ("",) * len(query), shots=3)
    algorithm = make_algorithm("protonet")
    optimiser = torch.optim.Adam(model.encoder_parameters(), lr=0.2)
    first = None
    for _ in range(30):
        optimiser.zero_grad()
        loss = algorithm.accumulate(model, episode, lambda ep, r: model.embed(pooled, r))
        first = loss if first is None else first
        optimiser.step()
    assert loss < first
    weights = model.weights().detach()
    assert weights[0] > weights[1] and weights[0] > weights[2]
    manifest = model.layer_mix_manifest()
    assert max(manifest["weights"]) == 1.0 and len(manifest["weights"]) == 3


def test_checkpoint_with_a_layer_mix_builds_the_mixed_encoder(tiny_dir: Path, tmp_path: Path) -> None:
    manifest = {"format_version": 1, "base_encoder_sha256": weights_sha256(tiny_dir),
                "inner_loop": InnerLoopConfig().to_dict(), "layer_mix": {"weights": [0.2, 0.0, 0.0, 1.0]}}
    checkpoint = load_checkpoint(save_checkpoint(tmp_path / "mix", manifest))
    assert not (tmp_path / "mix" / "encoder.safetensors").exists()
    assert checkpoint.layer_mix == [0.2, 0.0, 0.0, 1.0] and checkpoint.fingerprint != "bare"
    texts = [r.text for r in toy_rows(2, 2)]
    served = build_encoder(str(tiny_dir), checkpoint, device="cpu")
    direct = TransformerEncoder(tiny_dir, device="cpu", layer_mix=[0.2, 0.0, 0.0, 1.0])
    assert torch.allclose(served.encode(texts), direct.encode(texts), atol=1e-6)
    other = json.loads((tmp_path / "mix" / "manifest.json").read_text())
    other["layer_mix"]["weights"][0] = 0.3
    (tmp_path / "mix" / "manifest.json").write_text(json.dumps(other))
    assert load_checkpoint(tmp_path / "mix").fingerprint != checkpoint.fingerprint
