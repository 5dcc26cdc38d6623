"""Every failure of a ``baitiao`` command as one line on stderr and a non-zero exit.

An operator who mistyped a URL, pointed at a missing rules file or asked for a dead
letter that is not there needs to read what is wrong, not a traceback. The root group
(:class:`OperatorGroup`) turns the failures we know into one sentence that names the
setting or the value at fault; anything else still gets one line, with the hint to
rerun with ``BAITIAO_DEBUG=1`` for the traceback (which then propagates untouched).
"""

from __future__ import annotations

import os
from typing import Any

import click
import pydantic
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from shared.settings import SERVICES, ConfigurationError

DEBUG_VARIABLE = "BAITIAO_DEBUG"
_UPGRADE_HINT = "run `baitiao db upgrade` first"


class OperatorGroup(click.Group):
    """The root command group: known failures become one clear line (exit code 1)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OneLineUsageError:
            raise
        except click.UsageError as exc:
            raise OneLineUsageError(exc.format_message(), exc.ctx) from None
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:  # noqa: BLE001 - the one place a command's failure is explained
            if os.environ.get(DEBUG_VARIABLE, "") not in ("", "0"):
                raise
            raise click.ClickException(one_line(explain(exc))) from None


class OneLineUsageError(click.UsageError):
    """A usage error (a bad value, a missing option: exit code 2) in one line, with where
    to read the command's usage, instead of click's usage block."""

    def show(self, file: Any = None) -> None:
        where = f" (see `{self.ctx.command_path} --help`)" if self.ctx is not None else ""
        click.echo(f"Error: {one_line(self.format_message())}{where}", file=file, err=file is None)


def one_line(text: str) -> str:
    """The first line that says something, trimmed to what a terminal shows."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    first = lines[0] if lines else "failed"
    return first if len(first) <= 400 else first[:397] + "..."


def explain(exc: BaseException) -> str:
    """What went wrong, in the operator's words."""
    for kind, describe in _EXPLAINERS:
        if isinstance(exc, kind):
            return describe(exc)
    detail = one_line(str(exc)) if str(exc) else ""
    name = type(exc).__name__
    return (
        f"{name}: {detail} (rerun with {DEBUG_VARIABLE}=1 for the traceback)"
        if detail
        else f"{name} (rerun with {DEBUG_VARIABLE}=1 for the traceback)"
    )


def _validation(exc: pydantic.ValidationError) -> str:
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": str(exc)}
    field = ".".join(str(part) for part in first.get("loc", ()))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    if exc.title == "Settings":
        return f"invalid setting BAITIAO_{field.upper()}: {first['msg']}{more}"
    return f"invalid {exc.title} ({_rules_source()}): {field or 'value'}: {first['msg']}{more}"


def _rules_source() -> str:
    path = os.environ.get("BAITIAO_RULES_FILE")
    return f"BAITIAO_RULES_FILE={path}" if path else "built-in rules"


def _bad_database_url() -> str | None:
    """The BAITIAO_*_DB_URL variable whose URL names no loadable database driver."""
    for service in SERVICES:
        variable = f"BAITIAO_{service.upper()}_DB_URL"
        url = os.environ.get(variable)
        if not url:
            continue
        try:
            make_url(url).get_dialect()
        except Exception:  # noqa: BLE001 - any failure to load means this one is at fault
            return variable
    return None


def _database_url(exc: Exception) -> str:
    variable = _bad_database_url() or "a BAITIAO_*_DB_URL"
    return (
        f"{variable} is not a usable SQLAlchemy URL ({one_line(str(exc))}); "
        "write postgresql+psycopg://user@host:5432/name or sqlite:///path"
    )


def _database(exc: sa_exc.DBAPIError) -> str:
    cause = one_line(str(exc.orig) if exc.orig is not None else str(exc))
    lowered = cause.lower()
    if "no such table" in lowered or "does not exist" in lowered or "unable to open database file" in lowered:
        return f"database not ready ({cause}): {_UPGRADE_HINT}"
    return f"database error: {cause}"


def _broker(exc: Exception) -> str:
    url = os.environ.get("BAITIAO_BROKER_URL")
    where = _without_password(url) if url else "the embedded broker"
    return f"broker unreachable ({where}): {one_line(str(exc)) or type(exc).__name__}"


def _without_password(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy parses (redis://... is): keep the host part
        return url.split("@")[-1]


def _missing_file(exc: OSError) -> str:
    what = (
        "rules file (BAITIAO_RULES_FILE)"
        if exc.filename and str(exc.filename) == os.environ.get("BAITIAO_RULES_FILE")
        else "file"
    )
    return f"{what} {exc.filename}: {exc.strerror}"


def _lookup(exc: LookupError) -> str:
    return str(exc.args[0]) if exc.args else type(exc).__name__


def _malformed_file(exc: Exception) -> str:
    rules = os.environ.get("BAITIAO_RULES_FILE")
    which = f"the rules file {rules}" if rules else "a YAML/JSON file"
    detail = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return f"{which} is malformed: {one_line(detail)}"


def _explainers() -> list[tuple[type[BaseException] | tuple[type[BaseException], ...], Any]]:
    import json

    import kombu.exceptions
    import redis.exceptions
    import yaml

    from shared.embedded_broker import EmbeddedBrokerError

    return [
        (ConfigurationError, lambda e: str(e)),
        (pydantic.ValidationError, _validation),
        ((sa_exc.NoSuchModuleError, sa_exc.ArgumentError), _database_url),
        (sa_exc.DBAPIError, _database),
        (
            (
                kombu.exceptions.OperationalError,
                redis.exceptions.ConnectionError,
                redis.exceptions.TimeoutError,
                ConnectionError,
            ),
            _broker,
        ),
        (EmbeddedBrokerError, lambda e: str(e)),
        ((FileNotFoundError, IsADirectoryError, PermissionError), _missing_file),
        ((yaml.YAMLError, json.JSONDecodeError), _malformed_file),
        (LookupError, _lookup),
    ]


_EXPLAINERS = _explainers()
