"""``baitiao keys``: the producers' signing keys (shared/events/signing.py).

``keys new PRODUCER`` prints a fresh key pair with a new key id: the signing key (a
secret, for that producer's ``BAITIAO_SIGNING_KEYS``) and its verify key (public, added to
every consumer's ``BAITIAO_VERIFY_KEYS``). Nothing is stored or logged: the operator puts
each line where docs/operations.md says ("Signing keys", with the rotation steps).
"""

from __future__ import annotations

import secrets
from datetime import datetime, timezone

import click

from shared.events.owners import PRODUCERS


@click.group()
def keys() -> None:
    """Signing keys of the producers (every envelope is signed by its type's owner)."""


@keys.command("new")
@click.argument("producer", type=click.Choice(PRODUCERS))
@click.option("--key-id", default=None, help="The new key's id (default: today's date and a random suffix).")
def keys_new(producer: str, key_id: str | None) -> None:
    """Print a fresh signing key of PRODUCER and its verify key."""
    from shared.events.signing import SigningKey

    stamp = datetime.now(timezone.utc).strftime("%Y%m%d")
    key = SigningKey.generate(producer, key_id or f"{stamp}-{secrets.token_hex(2)}")
    click.echo(f"# signing key of {producer}: a secret, for its BAITIAO_SIGNING_KEYS only")
    click.echo(key.text())
    click.echo(
        "# verify key: add it to every consumer's BAITIAO_VERIFY_KEYS (the old one stays until the change is done)"
    )
    click.echo(key.verify_key().text())


@keys.command("show")
def keys_show() -> None:
    """The key ids this process signs with and accepts (never the keys themselves)."""
    from shared.key_ring import key_ring
    from shared.settings import get_settings

    ring = key_ring(get_settings())
    for producer in PRODUCERS:
        signs = ring.signer(producer).key_id if ring.can_sign(producer) else "-"
        click.echo(f"{producer}: signs with {signs}; accepts {', '.join(ring.key_ids(producer)) or '-'}")
