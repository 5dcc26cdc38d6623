"""The test session's keys: one signing key per producer, shared with every worker it spawns.

``tests/conftest.py`` puts them into the environment (``BAITIAO_SIGNING_KEYS`` and
``BAITIAO_VERIFY_KEYS``) before anything reads the settings, so in-process relays and
the ``baitiao worker`` processes sign and verify with the same ring. ``RETIRED`` is a key
the workers no longer accept (an accounts key rotated out).
"""

from __future__ import annotations

from typing import Any

from shared.events.owners import PRODUCERS, owner_of
from shared.events.signing import KeyRing, SigningKey, ring_text, sign_envelope, verify_text

SIGNING_KEYS = [SigningKey.generate(producer, "test1") for producer in PRODUCERS]
TEST_RING = KeyRing(SIGNING_KEYS)
RETIRED = SigningKey.generate("accounts", "retired")
ENV = {"BAITIAO_SIGNING_KEYS": ring_text(SIGNING_KEYS), "BAITIAO_VERIFY_KEYS": verify_text(SIGNING_KEYS)}


def signed_as_owner(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` signed by its type's owner (its ``producer`` becomes the owner)."""
    owner = owner_of(body["type"])
    assert owner is not None, f"no owner for {body['type']!r}"
    return sign_envelope(body, TEST_RING.signer(owner))


def signed_by(body: dict[str, Any], producer: str) -> dict[str, Any]:
    """``body`` signed by ``producer``'s own key, whether it owns the type or not."""
    return sign_envelope(body, TEST_RING.signer(producer))
