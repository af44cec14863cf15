"""API-key helpers."""

from __future__ import annotations

import pytest

from app.security import TENANT_KEY_PREFIX, bearer_token, hash_api_key, keys_match, new_api_key


def test_new_keys_are_random_and_prefixed() -> None:
    keys = {new_api_key() for _ in range(20)}
    assert len(keys) == 20
    assert all(key.startswith(TENANT_KEY_PREFIX) and len(key) > 40 for key in keys)


def test_hash_is_stable_sha256_hex() -> None:
    assert hash_api_key("abc") == hash_api_key("abc") != hash_api_key("abd")
    assert len(hash_api_key("abc")) == 64


def test_keys_match() -> None:
    assert keys_match("same", "same")
    assert not keys_match("same", "different")


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        ("Bearer   ", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token
