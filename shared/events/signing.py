"""Signed envelopes: who sent an event is proven, not claimed.

Every envelope carries ``key_id`` and ``signature``: an Ed25519 signature, by the key
``key_id`` of its ``producer``, over its canonical bytes (the envelope without
``signature``: JSON, keys sorted, compact separators, UTF-8 unescaped). Ed25519 rather
than a shared HMAC secret: a consumer holds only the producers' public keys, so a
process that can verify cannot forge (docs/decisions.md).

Key text, one key per entry, entries apart by new lines, spaces or commas, ``#`` starting
a comment: ``producer:key_id:base64`` (the raw 32-byte private key for a signing key,
the raw 32-byte public key for a verify key). Several verify keys of one producer are
valid at once, by key id: that is how a key is rotated without downtime.

Pure apart from the key generation's randomness; loading the keys is
:mod:`shared.key_ring`'s.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shared.events.owners import owner_of

# The reasons a consumer refuses a message (its dead letter's reason starts with one).
UNSIGNED = "unsigned"
FORGED = "forged"
BAD_SIGNATURE = "bad_signature"
REFUSAL_REASONS = (UNSIGNED, FORGED, BAD_SIGNATURE)

_ENTRY = re.compile(r"^([a-z][a-z0-9-]*):([A-Za-z0-9_-]{1,32}):([A-Za-z0-9+/=]+)$")


class KeyTextError(ValueError):
    """Key text that is not ``producer:key_id:base64`` of a 32-byte key (the key is never quoted)."""


class SignatureRefused(ValueError):
    """Why a message is not believed: ``reason`` one of REFUSAL_REASONS, ``detail`` for the dead letter."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def canonical_bytes(envelope: Mapping[str, Any]) -> bytes:
    """What is signed: the envelope without its signature, as one agreed string of bytes."""
    unsigned = {k: v for k, v in envelope.items() if k != "signature"}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class SigningKey:
    """One producer's private key (never printed: its repr shows the producer and id only)."""

    producer: str
    key_id: str
    private: Ed25519PrivateKey = field(repr=False, compare=False)

    @classmethod
    def generate(cls, producer: str, key_id: str | None = None) -> "SigningKey":
        """A fresh key; the id is new too unless given (a date stamp is a fine id)."""
        return cls(producer, key_id or secrets.token_hex(4), Ed25519PrivateKey.generate())

    def text(self) -> str:
        """``producer:key_id:base64`` of the private key: a secret, for BAITIAO_SIGNING_KEYS."""
        raw = self.private.private_bytes_raw()
        return f"{self.producer}:{self.key_id}:{base64.b64encode(raw).decode()}"

    def verify_key(self) -> "VerifyKey":
        return VerifyKey(self.producer, self.key_id, self.private.public_key())

    def sign(self, data: bytes) -> str:
        return base64.b64encode(self.private.sign(data)).decode()


@dataclass(frozen=True)
class VerifyKey:
    """One producer's public key, by key id."""

    producer: str
    key_id: str
    public: Ed25519PublicKey = field(compare=False)

    def text(self) -> str:
        """``producer:key_id:base64`` of the public key, for BAITIAO_VERIFY_KEYS (not a secret)."""
        return f"{self.producer}:{self.key_id}:{base64.b64encode(self.public.public_bytes_raw()).decode()}"


def sign_envelope(envelope: Mapping[str, Any], key: SigningKey) -> dict[str, Any]:
    """``envelope`` signed by ``key``: its ``producer`` and ``key_id`` set to the key's, and
    ``signature`` added. The one function outside producers need (docs/events.md)."""
    signed = {k: v for k, v in envelope.items() if k != "signature"}
    signed["producer"] = key.producer
    signed["key_id"] = key.key_id
    signed["signature"] = key.sign(canonical_bytes(signed))
    return signed


def _entries(text: str) -> Iterable[tuple[str, str, bytes]]:
    for line in text.splitlines():
        for entry in re.split(r"[\s,]+", line.split("#", 1)[0]):
            if not entry:
                continue
            match = _ENTRY.match(entry)
            if match is None:
                head = entry.split(":", 2)[:2]
                raise KeyTextError(f"a key must be producer:key_id:base64 (got one starting {':'.join(head)!r})")
            producer, key_id, encoded = match.groups()
            try:
                raw = base64.b64decode(encoded, validate=True)
            except binascii.Error:
                raise KeyTextError(f"key {producer}:{key_id}: not base64") from None
            if len(raw) != 32:
                raise KeyTextError(f"key {producer}:{key_id}: an Ed25519 key has 32 bytes, not {len(raw)}")
            yield producer, key_id, raw


def parse_signing_keys(text: str) -> list[SigningKey]:
    return [SigningKey(p, k, Ed25519PrivateKey.from_private_bytes(raw)) for p, k, raw in _entries(text)]


def parse_verify_keys(text: str) -> list[VerifyKey]:
    return [VerifyKey(p, k, Ed25519PublicKey.from_public_bytes(raw)) for p, k, raw in _entries(text)]


class KeyRing:
    """The keys one process holds: the signing keys of the producers it speaks for (the
    last given per producer signs) and the verify keys of every producer it listens to
    (each of a producer's key ids valid: old and new during a rotation)."""

    def __init__(self, signing: Iterable[SigningKey] = (), verifying: Iterable[VerifyKey] = ()):
        self._signing: dict[str, SigningKey] = {}
        self._verifying: dict[tuple[str, str], Ed25519PublicKey] = {}
        for key in signing:
            self._signing[key.producer] = key
            self._verifying[(key.producer, key.key_id)] = key.private.public_key()
        for vkey in verifying:
            self._verifying[(vkey.producer, vkey.key_id)] = vkey.public

    def __repr__(self) -> str:
        return f"KeyRing(signs_as={sorted(self._signing)}, verify_keys={len(self._verifying)})"

    def signer(self, producer: str) -> SigningKey:
        """The key ``producer`` signs with; a process without it cannot speak as ``producer``."""
        try:
            return self._signing[producer]
        except KeyError:
            raise LookupError(f"no signing key for {producer!r} (BAITIAO_SIGNING_KEYS)") from None

    def can_sign(self, producer: str) -> bool:
        return producer in self._signing

    def key_ids(self, producer: str) -> list[str]:
        """The key ids of ``producer`` this ring accepts."""
        return sorted(k for p, k in self._verifying if p == producer)

    def check(self, envelope: Mapping[str, Any]) -> None:
        """Believe ``envelope`` or raise :class:`SignatureRefused`, in this order: no
        signature (``unsigned``), a producer that does not own the type (``forged``), an
        unknown or retired key id or a signature that does not verify (``bad_signature``)."""
        signature, key_id = envelope.get("signature"), envelope.get("key_id")
        if not isinstance(signature, str) or not signature or not isinstance(key_id, str) or not key_id:
            raise SignatureRefused(UNSIGNED, "no signature and key_id")
        producer, event_type = envelope.get("producer"), envelope.get("type")
        owner = owner_of(event_type) if isinstance(event_type, str) else None
        if producer != owner:
            raise SignatureRefused(FORGED, f"{event_type!r} is published by {owner!r} alone, not {producer!r}")
        assert isinstance(producer, str)
        public = self._verifying.get((producer, key_id))
        if public is None:
            raise SignatureRefused(BAD_SIGNATURE, f"key {producer}:{key_id} is unknown or retired")
        try:
            public.verify(base64.b64decode(signature, validate=True), canonical_bytes(envelope))
        except (InvalidSignature, binascii.Error, ValueError):
            raise SignatureRefused(
                BAD_SIGNATURE, f"the signature does not verify with key {producer}:{key_id}"
            ) from None


def ring_text(keys: Iterable[SigningKey]) -> str:
    """Signing keys as the text BAITIAO_SIGNING_KEYS (or the generated ring's file) holds."""
    return "".join(f"{key.text()}\n" for key in keys)


def verify_text(keys: Iterable[SigningKey | VerifyKey]) -> str:
    """The public halves, as BAITIAO_VERIFY_KEYS holds them."""
    return "".join(f"{(k.verify_key() if isinstance(k, SigningKey) else k).text()}\n" for k in keys)


def signing_key(text: str) -> SigningKey:
    """The one signing key in ``text`` (``producer:key_id:base64``, as ``baitiao keys new`` prints)."""
    keys = parse_signing_keys(text)
    if len(keys) != 1:
        raise KeyTextError(f"expected one signing key, found {len(keys)}")
    return keys[0]
