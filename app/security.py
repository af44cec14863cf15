"""API keys: random tokens shown once, stored as sha256 digests.

The keys are 256-bit random values, so a fast hash is enough (no password-style
stretching is needed) and lookups stay a single indexed query."""

from __future__ import annotations

import hashlib
import hmac
import secrets

TENANT_KEY_PREFIX = "fsk_"


def new_api_key() -> str:
    return TENANT_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def keys_match(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
