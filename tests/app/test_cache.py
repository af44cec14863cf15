"""ByteLRU: a least-recently-used cache bounded by bytes."""

from __future__ import annotations

from app.cache import ByteLRU


def _cache(max_bytes: int) -> ByteLRU[bytes]:
    return ByteLRU(max_bytes, len)


def test_evicts_least_recently_used_by_bytes() -> None:
    cache = _cache(10)
    cache.put("a", b"xxxx")
    cache.put("b", b"yyyy")
    assert cache.get("a") == b"xxxx"  # "a" is now the most recent
    cache.put("c", b"zzzz")  # 12 bytes > 10: the oldest ("b") goes
    assert cache.get("b") is None
    assert cache.get("a") == b"xxxx" and cache.get("c") == b"zzzz"
    assert cache.num_bytes == 8 and len(cache) == 2


def test_one_large_item_evicts_several_small_ones() -> None:
    cache = _cache(10)
    for key in "abcde":
        cache.put(key, b"xx")
    cache.put("big", b"x" * 9)
    assert len(cache) == 1 and cache.num_bytes == 9
    assert cache.get("big") is not None


def test_item_larger_than_the_cache_is_not_kept() -> None:
    cache = _cache(4)
    cache.put("a", b"xx")
    cache.put("a", b"too large")
    assert cache.get("a") is None
    assert len(cache) == 0 and cache.num_bytes == 0


def test_replacing_a_key_updates_the_byte_count() -> None:
    cache = _cache(100)
    cache.put("a", b"x" * 10)
    cache.put("a", b"x" * 3)
    assert cache.num_bytes == 3 and len(cache) == 1


def test_hits_misses_and_discard_where() -> None:
    cache = _cache(100)
    cache.put(("t1", 1), b"aa")
    cache.put(("t1", 2), b"bb")
    cache.put(("t2", 1), b"cc")
    assert cache.get(("t9", 1)) is None
    assert cache.get(("t2", 1)) == b"cc"
    assert (cache.hits, cache.misses) == (1, 1)
    cache.discard_where(lambda key: key[0] == "t1")
    assert len(cache) == 1 and cache.num_bytes == 2


def test_zero_byte_cache_holds_nothing() -> None:
    cache = _cache(0)
    cache.put("a", b"x")
    assert cache.get("a") is None
