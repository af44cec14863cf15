"""Episodes: reproducible, right shapes, support and query disjoint, hard episodes are near."""

from __future__ import annotations

import pytest
import torch

from models.data import LabelledText
from models.episodes import EpisodeSampler, class_prototypes
from tests.models.meta_helpers import toy_rows


@pytest.fixture
def rows() -> list[LabelledText]:
    return toy_rows(8, 12)


def test_same_seed_same_episodes_other_seed_other_episodes(rows: list[LabelledText]) -> None:
    a = EpisodeSampler(rows, 4, 3, 2, seed=7).take(5)
    b = EpisodeSampler(rows, 4, 3, 2, seed=7).take(5)
    c = EpisodeSampler(rows, 4, 3, 2, seed=8).take(5)
    assert a == b
    assert a != c
    # episode i is a pure function of (seed, i): resuming at i sees the same task
    assert EpisodeSampler(rows, 4, 3, 2, seed=7).episode(3) == a[3]


@pytest.mark.parametrize("ways,shots,queries", [(4, 3, 2), (2, 1, 5), (8, 5, 7)])
def test_shapes_labels_and_no_overlap(rows: list[LabelledText], ways: int, shots: int, queries: int) -> None:
    for episode in EpisodeSampler(rows, ways, shots, queries, seed=1).take(10):
        assert episode.ways == ways == len(set(episode.classes)) and episode.shots == shots
        assert len(episode.support_rows) == ways * shots == len(episode.support_texts)
        assert len(episode.query_rows) == ways * queries == len(episode.query_labels)
        assert not set(episode.support_rows) & set(episode.query_rows)
        for index, label in zip(episode.support_rows + episode.query_rows, episode.support_labels + episode.query_labels):
            assert rows[index].label == episode.classes[label]
        assert sorted(episode.support_targets().tolist()) == sorted(i for i in range(ways) for _ in range(shots))


def test_queries_are_capped_by_available_rows(rows: list[LabelledText]) -> None:
    episode = EpisodeSampler(rows, 3, 5, 100, seed=0).episode(0)
    assert len(episode.query_rows) == 3 * (12 - 5)


def test_zero_or_too_many_ways_means_all_classes(rows: list[LabelledText]) -> None:
    assert EpisodeSampler(rows, 0, 2, 2).episode(0).ways == 8
    assert EpisodeSampler(rows, 50, 2, 2).episode(0).ways == 8


def test_separate_query_pool(rows: list[LabelledText]) -> None:
    test = toy_rows(8, 4, seed=5)
    episode = EpisodeSampler(rows, 5, 5, 4, seed=2, query_rows=test).episode(0)
    assert all(rows[i].label == episode.classes[y] for i, y in zip(episode.support_rows, episode.support_labels))
    assert all(test[i].label == episode.classes[y] for i, y in zip(episode.query_rows, episode.query_labels))
    assert episode.query_texts == tuple(test[i].text for i in episode.query_rows)


def test_hard_episodes_draw_nearest_classes(rows: list[LabelledText]) -> None:
    # two "domains": classes c0..c3 near one direction, c4..c7 near the orthogonal one
    vectors = {f"c{i}": torch.tensor([1.0, 0.1 * i, 0.0]) if i < 4 else torch.tensor([0.0, 0.1 * i, 1.0]) for i in range(8)}
    for episode in EpisodeSampler(rows, 4, 2, 2, seed=3, mode="hard", class_vectors=vectors, hard_pool=1).take(20):
        domains = {int(name[1:]) < 4 for name in episode.classes}
        assert len(domains) == 1, episode.classes
    mixed = EpisodeSampler(rows, 4, 2, 2, seed=3, mode="mixed", class_vectors=vectors, hard_pool=1)
    assert len({int(n[1:]) < 4 for n in mixed.episode(1).classes}) == 1


def test_bad_requests_are_errors(rows: list[LabelledText]) -> None:
    with pytest.raises(ValueError, match="mode"):
        EpisodeSampler(rows, 2, 2, 2, mode="odd")
    with pytest.raises(ValueError, match="class_vectors"):
        EpisodeSampler(rows, 2, 2, 2, mode="hard")
    with pytest.raises(ValueError, match="rows"):
        EpisodeSampler(rows, 2, 12, 2)


def test_class_prototypes_are_unit_means(rows: list[LabelledText]) -> None:
    embeddings = torch.randn(len(rows), 5)
    protos = class_prototypes(rows, embeddings)
    assert set(protos) == {r.label for r in rows}
    for label, prototype in protos.items():
        members = torch.tensor([r.label == label for r in rows])
        torch.testing.assert_close(prototype, torch.nn.functional.normalize(embeddings[members].mean(0), dim=-1))
