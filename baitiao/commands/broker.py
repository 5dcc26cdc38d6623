"""``baitiao broker users``: the broker's ACL users and their rights (shared/bus/broker_users.py)."""

from __future__ import annotations

import click


@click.group()
def broker() -> None:
    """The broker's users (docs/operations.md, "Redis users")."""


@broker.command("users")
def users() -> None:
    """Print deploy/redis/users.acl: one user per component, outside producers write-only."""
    from shared.bus.broker_users import acl_text

    click.echo(acl_text(), nl=False)
