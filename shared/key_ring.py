"""The keys of this process, from the settings: what the relay signs with and consumers verify with.

``BAITIAO_SIGNING_KEYS`` (a secret: this process's own keys) and ``BAITIAO_VERIFY_KEYS``
(every producer's public keys), or their ``_FILE`` forms, as for the other secrets. When
neither is given (the embedded default, the simulator, a laptop), one ring is generated
at ``<data_dir>/keys/signing.keys`` (mode 0600) the first time any process needs it and
reused by every process sharing that data dir: the signed path is the one always run.
Key text is never logged; a ring's repr names its producers only.
"""

from __future__ import annotations

import os
import tempfile
from functools import lru_cache
from pathlib import Path

from shared.events.owners import PRODUCERS
from shared.events.signing import KeyRing, SigningKey, parse_signing_keys, parse_verify_keys, ring_text
from shared.settings import ConfigurationError, Settings

RING_FILE = Path("keys") / "signing.keys"


def key_ring(settings: Settings) -> KeyRing:
    """The ring the settings describe (cached: the relay and the consumer ask often)."""
    signing = settings.signing_keys.get_secret_value() if settings.signing_keys else ""
    return _ring(signing, settings.verify_keys or "", str(settings.data_dir.resolve()))


@lru_cache(maxsize=8)
def _ring(signing: str, verifying: str, data_dir: str) -> KeyRing:
    if not signing and not verifying:
        signing = generated_ring_text(Path(data_dir))
    try:
        return KeyRing(parse_signing_keys(signing), parse_verify_keys(verifying))
    except ValueError as exc:
        raise ConfigurationError(f"BAITIAO_SIGNING_KEYS / BAITIAO_VERIFY_KEYS: {exc}") from None


def generated_ring_text(data_dir: Path) -> str:
    """The text of the generated ring under ``data_dir``, made now if it does not exist.

    Made in a private temporary file and linked into place, so two processes starting
    together end with one ring: the loser of the race reads the winner's."""
    path = data_dir / RING_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        text = ring_text(SigningKey.generate(producer) for producer in PRODUCERS)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".signing.")  # mode 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write("# generated keys of every producer (baitiao: the embedded default)\n" + text)
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
        finally:
            os.unlink(tmp)
    return path.read_text(encoding="utf-8")
