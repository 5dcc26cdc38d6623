"""``baitiao api`` serves the desk; ``baitiao desk`` keeps its database and its users.

``api --data DIR`` reads the services' SQLite files under DIR (as ``simulate`` leaves
them in ``OUT/run-data``); with ``BAITIAO_*_DB_URL`` and ``BAITIAO_BROKER_URL`` set it
serves those databases and that broker. Passwords come from a prompt or from
``BAITIAO_DESK_PASSWORD``, never from the command line (it would stay in the shell's
history and the process list).
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from shared.settings import Settings, get_settings


def _settings(data: Path | None) -> Settings:
    if data is not None:
        os.environ["BAITIAO_DATA_DIR"] = str(data)  # the services' files and the desk's own
    return get_settings()


def _desk_engine(settings: Settings):  # type: ignore[no-untyped-def]
    from baitiao.desk import state
    from baitiao.desk.settings import DeskSettings
    from shared.db import engine_for

    engine = engine_for(DeskSettings().database_url(settings.data_dir))
    state.upgrade(engine)
    return engine


@click.command("api")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=None, help="Data directory.")
@click.option("--host", default=None, help="Address to listen on [default: $BAITIAO_DESK_HOST or 127.0.0.1].")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port [default: $BAITIAO_DESK_PORT or 8000].")
@click.option("--read-only", is_flag=True, help="No broker: reads only, commands answer 503.")
def api(data: Path | None, host: str | None, port: int | None, read_only: bool) -> None:
    """Serve the desk: the HTTP API (/api, OpenAPI at /api/openapi.json) and its pages."""
    import uvicorn

    from baitiao.desk.app import create_app
    from baitiao.desk.settings import DeskSettings
    from shared.embedded_broker import broker_for_command

    settings = _settings(data)
    desk_settings = DeskSettings()
    where = {"host": host or desk_settings.host, "port": port or desk_settings.port, "log_level": "warning"}
    if read_only:
        uvicorn.run(create_app(settings, desk_settings, with_bus=False), **where)
        return
    with broker_for_command(settings, lifetime=True):
        uvicorn.run(create_app(settings, desk_settings), **where)


@click.group("desk")
def desk() -> None:
    """The desk's own database: users and assignments."""


@desk.command("upgrade")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=None)
def upgrade(data: Path | None) -> None:
    """Bring the desk's database to its newest schema."""
    from baitiao.desk import state

    version = state.upgrade(_desk_engine(_settings(data)))
    click.echo(f"desk: at version {version}")


@desk.group("user")
def user() -> None:
    """Desk users (collector, supervisor, operator)."""


@user.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["collector", "supervisor", "operator"]), required=True)
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=None)
def user_add(name: str, role: str, data: Path | None) -> None:
    """Add NAME with ROLE; the password from BAITIAO_DESK_PASSWORD or a prompt."""
    from sqlalchemy.exc import IntegrityError

    from baitiao.desk.access import add_user

    password = os.environ.get("BAITIAO_DESK_PASSWORD") or click.prompt(
        "password", hide_input=True, confirmation_prompt=True
    )
    try:
        add_user(_desk_engine(_settings(data)), name, role, password)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    except IntegrityError:
        raise click.ClickException(f"user {name} exists") from None
    click.echo(f"{name}: {role}")


@user.command("disable")
@click.argument("name")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=None)
def user_disable(name: str, data: Path | None) -> None:
    """Disable NAME: its logins end at their next request."""
    from baitiao.desk.access import disable_user

    if not disable_user(_desk_engine(_settings(data)), name):
        raise click.ClickException(f"no user {name}")
    click.echo(f"{name}: disabled")


@desk.command("assign")
@click.argument("collector")
@click.argument("account_ids", nargs=-1, required=True)
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=None)
def assign(collector: str, account_ids: tuple[str, ...], data: Path | None) -> None:
    """Give ACCOUNT_IDS to COLLECTOR's worklist (as the supervisor "cli")."""
    from baitiao.desk.access import User
    from baitiao.desk.worklists import assign as give

    count = give(_desk_engine(_settings(data)), account_ids, collector, User("cli", "supervisor"))
    click.echo(f"{collector}: {count} accounts")
