"""The test session's keys: one signing key per producer, shared with every worker it spawns.

``tests/conftest.py`` puts them into the environment (``BAITIAO_SIGNING_KEYS`` and
``BAITIAO_VERIFY_KEYS``) before anything reads the settings, so in-process relays and
the ``baitiao worker`` processes sign and verify with the same ring. ``RETIRED`` is a key
the workers no longer accept (an accounts key rotated out).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shared.events.owners import PRODUCERS, owner_of
from shared.events.signing import KeyRing, SigningKey, parse_signing_keys, ring_text, sign_envelope, verify_text
from shared.key_ring import generated_ring_text

SIGNING_KEYS = [SigningKey.generate(producer, "test1") for producer in PRODUCERS]
TEST_RING = KeyRing(SIGNING_KEYS)
RETIRED = SigningKey.generate("accounts", "retired")
ENV = {"BAITIAO_SIGNING_KEYS": ring_text(SIGNING_KEYS), "BAITIAO_VERIFY_KEYS": verify_text(SIGNING_KEYS)}


def signed_as_owner(body: dict[str, Any], ring: KeyRing = TEST_RING) -> dict[str, Any]:
    """``body`` signed by its type's owner (its ``producer`` becomes the owner)."""
    owner = owner_of(body["type"])
    assert owner is not None, f"no owner for {body['type']!r}"
    return sign_envelope(body, ring.signer(owner))


def generated_ring(data_dir: Path) -> KeyRing:
    """The ring the embedded default generates under ``data_dir`` (made now if need be),
    which every process given that data dir and no keys signs and verifies with."""
    return KeyRing(parse_signing_keys(generated_ring_text(data_dir)))


def signed_by(body: dict[str, Any], producer: str) -> dict[str, Any]:
    """``body`` signed by ``producer``'s own key, whether it owns the type or not."""
    return sign_envelope(body, TEST_RING.signer(producer))
