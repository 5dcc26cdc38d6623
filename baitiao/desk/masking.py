"""What a desk user may see of a customer: pure rules, no IO. A collector sees names and
phones masked; a supervisor unmasked, and each such view is audited."""

from __future__ import annotations

from services.collections.domain import mask_name, mask_phone


def shown_name(name: str | None, unmasked: bool) -> str | None:
    """A customer's name as the desk shows it: masked unless the viewer may see it."""
    if name is None:
        return None
    return name if unmasked else mask_name(name)


def shown_phone(phone: str | None, unmasked: bool) -> str | None:
    if phone is None:
        return None
    return phone if unmasked else mask_phone(phone)
