"""``baitiao dlq``: the dead letters of every service: list, replay, discard.

What is shown of a letter is :func:`shared.bus.dead_letters.masked_view`: names,
phones and identity hashes masked as in the logs, in the table and in ``--json``.
Listing and discarding read and write the services' databases only; replay alone
needs the broker (an embedded one it had to start is stopped when it is done).
"""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from baitiao import registry
from baitiao.commands.databases import service_engine
from baitiao.commands.values import LETTER_ID
from shared.settings import SERVICES, ServiceName, get_settings


@click.group("dlq")
def dlq() -> None:
    """Dead letters: messages that could not be applied, with why."""


@dlq.command("list")
@click.option("--service", type=click.Choice(SERVICES), multiple=True, help="Only these services (default: all).")
@click.option("--all", "include_retired", is_flag=True, help="Include replayed and discarded letters.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True, help="Newest N per service.")
@click.option("--json", "as_json", is_flag=True)
def dlq_list(service: tuple[ServiceName, ...], include_retired: bool, limit: int, as_json: bool) -> None:
    """The open dead letters, newest first (personal data masked)."""
    from shared.bus.dead_letters import list_dead_letters, masked_view

    settings = get_settings()
    rows: list[dict[str, Any]] = []
    for name in service or settings.configured_db_services():  # a worker's container: its own only
        table = registry.definition(name).bus.dead_letters
        for letter in list_dead_letters(service_engine(settings, name), table, include_retired, limit):
            rows.append({**masked_view(letter), "id": f"{name}:{letter.id}", "service": name})
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2, default=str))
        return
    if not rows:
        click.echo("no dead letters")
        return
    table = Table(title="Dead letters")
    for column in ("id", "created", "state", "type", "attempts", "reason"):
        table.add_column(column, justify="right" if column == "attempts" else "left")
    for row in rows:
        state = row["state"] if row["state"] != "discarded" else f"discarded: {row['discard_reason']}"
        table.add_row(
            row["id"], str(row["created_at"])[:19], state, row["type"] or "-", str(row["attempts"]), row["reason"][:120]
        )
    Console().print(table)


@dlq.command("replay")
@click.argument("letter_id", type=LETTER_ID)
def dlq_replay(letter_id: tuple[ServiceName, int]) -> None:
    """Publish a dead letter (ID as SERVICE:N from `dlq list`) to its queue again.

    A discarded letter is refused."""
    from shared.broker import broker_connection
    from shared.bus.dead_letters import LetterRetired, get_dead_letter, replay_dead_letter
    from shared.clock import SystemClock
    from shared.embedded_broker import broker_for_command

    name, number = letter_id
    settings = get_settings()
    engine = service_engine(settings, name)
    table = registry.definition(name).bus.dead_letters
    if get_dead_letter(engine, table, number).state == "discarded":  # before any broker is started
        raise click.ClickException(f"dead letter {name}:{number} was discarded; it is not replayed")
    with broker_for_command(settings) as url, broker_connection(url, settings, connect_timeout=3) as conn:
        conn.ensure_connection(max_retries=1)  # an unreachable broker fails now, not after minutes
        try:
            letter = replay_dead_letter(engine, table, number, conn, SystemClock().now())
        except LetterRetired as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"replayed {name}:{number} to {letter.queue}")


@dlq.command("discard")
@click.argument("letter_id", type=LETTER_ID)
@click.option("--reason", required=True, help="Why it is retired (kept on the record).")
def dlq_discard(letter_id: tuple[ServiceName, int], reason: str) -> None:
    """Retire an open dead letter on the record: it is never replayed, and `dlq list`
    shows it only with --all."""
    from shared.bus.dead_letters import LetterRetired, discard_dead_letter
    from shared.clock import SystemClock

    name, number = letter_id
    if not reason.strip():
        raise click.BadParameter("give the reason it is discarded", param_hint="--reason")
    settings = get_settings()
    try:
        discard_dead_letter(
            service_engine(settings, name),
            registry.definition(name).bus.dead_letters,
            number,
            reason,
            SystemClock().now(),
        )
    except LetterRetired as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"discarded {name}:{number}")
