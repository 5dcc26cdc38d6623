"""docker-compose.yml read as docker compose reads it, for a machine with no Docker engine.

:func:`load_project` interpolates the file with an environment as compose does
(``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?error}``, ``${VAR?error}``,
``$VAR``, ``$$``), after YAML's own anchors and merge keys, and gives each service's
command, environment, secrets, healthcheck, dependencies and stop grace period in the
forms compose gives them to a container. :func:`start_order` orders services by
``depends_on``. Nothing here starts anything: :mod:`tests.deployment.stack` does.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"

_VARIABLE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>.*))?$", re.DOTALL)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


class InterpolationError(ValueError):
    """A ``${VAR:?message}`` whose variable is unset, as compose refuses the file."""


def interpolate(text: str, environment: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        if match.group("named"):
            return environment.get(match.group("named"), "")
        braced = _BRACED.match(match.group("braced"))
        if not braced:
            raise InterpolationError(f"invalid interpolation ${{{match.group('braced')}}}")
        name, op, arg = braced.group("name"), braced.group("op"), braced.group("arg") or ""
        value = environment.get(name)
        missing = value is None or (op is not None and op.startswith(":") and value == "")
        if op in (":-", "-"):
            return interpolate(arg, environment) if missing else str(value)
        if op in (":?", "?"):
            if missing:
                raise InterpolationError(f"{name}: {arg or 'required variable is missing a value'}")
            return str(value)
        return "" if value is None else value

    return _VARIABLE.sub(replace, text)


def _interpolate_tree(node: Any, environment: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, environment)
    if isinstance(node, list):
        return [_interpolate_tree(item, environment) for item in node]
    if isinstance(node, dict):
        return {key: _interpolate_tree(value, environment) for key, value in node.items()}
    return node


def seconds(duration: str | int | float | None, default: float) -> float:
    """A compose duration (``1m30s``, ``60s``, ``500ms``) in seconds."""
    if duration is None:
        return default
    if isinstance(duration, (int, float)):
        return float(duration)
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = _DURATION.findall(duration)
    if not parts or "".join(n + u for n, u in parts) != duration.replace(" ", ""):
        raise ValueError(f"not a compose duration: {duration!r}")
    return sum(float(number) * scale[unit] for number, unit in parts)


@dataclass(frozen=True)
class Healthcheck:
    test: list[str]
    interval_s: float
    timeout_s: float
    retries: int
    start_period_s: float

    def argv(self) -> list[str]:
        """The command compose runs in the container: ``CMD`` as it is, ``CMD-SHELL`` under sh."""
        kind, *rest = self.test
        if kind == "CMD":
            return list(rest)
        if kind == "CMD-SHELL":
            return ["/bin/sh", "-c", rest[0]]
        raise ValueError(f"healthcheck test of kind {kind!r} is not run by this harness")


@dataclass(frozen=True)
class Service:
    name: str
    image: str | None
    command: list[str]
    environment: dict[str, str]
    secrets: list[str]
    depends_on: dict[str, str]
    healthcheck: Healthcheck | None
    stop_grace_s: float
    profiles: list[str] = field(default_factory=list)
    restart: str = "no"

    @property
    def builds_app(self) -> bool:
        """An app service: our own image, whose entrypoint is ``baitiao``."""
        return self.image is not None and self.image.startswith("baitiao-postlending")


@dataclass(frozen=True)
class Project:
    services: dict[str, Service]
    secrets: dict[str, str]  # secret name -> its value (compose's environment-sourced secrets)


def _environment(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if isinstance(raw, list):
        pairs = (item.split("=", 1) if "=" in item else (item, "") for item in raw)
        return {key: value for key, value in pairs}
    return {
        key: "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        for key, value in raw.items()
    }


def _command(raw: Any) -> list[str]:
    if raw is None:
        return []
    return shlex.split(raw) if isinstance(raw, str) else [str(part) for part in raw]


def _depends_on(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if isinstance(raw, list):
        return {name: "service_started" for name in raw}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in raw.items()}


def _healthcheck(raw: Any) -> Healthcheck | None:
    if not raw or raw.get("disable"):
        return None
    test = raw["test"]
    test = ["CMD-SHELL", test] if isinstance(test, str) else [str(part) for part in test]
    return Healthcheck(
        test,
        seconds(raw.get("interval"), 30),
        seconds(raw.get("timeout"), 30),
        int(raw.get("retries", 3)),
        seconds(raw.get("start_period"), 0),
    )


def load_project(environment: dict[str, str], path: Path = COMPOSE_FILE) -> Project:
    """The compose file with ``environment`` as the variables compose would read (``.env``)."""
    document = _interpolate_tree(yaml.safe_load(path.read_text(encoding="utf-8")), environment)
    services = {}
    for name, raw in document["services"].items():
        services[name] = Service(
            name=name,
            image=raw.get("image"),
            command=_command(raw.get("command")),
            environment=_environment(raw.get("environment")),
            secrets=list(raw.get("secrets", [])),
            depends_on=_depends_on(raw.get("depends_on")),
            healthcheck=_healthcheck(raw.get("healthcheck")),
            stop_grace_s=seconds(raw.get("stop_grace_period"), 10),
            profiles=list(raw.get("profiles", [])),
            restart=str(raw.get("restart", "no")),
        )
    secrets = {}
    for name, raw in (document.get("secrets") or {}).items():
        if "environment" not in raw:
            raise ValueError(f"secret {name}: only environment-sourced secrets are used by this project")
        secrets[name] = environment.get(raw["environment"], "")
    return Project(services, secrets)


def start_order(project: Project, include_profiles: bool = False) -> list[str]:
    """Services in ``depends_on`` order (compose's ``up``: no profile services unless asked)."""
    wanted = {name for name, service in project.services.items() if include_profiles or not service.profiles}
    ordered: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in ordered:
            return
        if name in path:
            raise ValueError(f"depends_on cycle: {' -> '.join(path + (name,))}")
        for dependency in project.services[name].depends_on:
            visit(dependency, path + (name,))
        ordered.append(name)

    for name in sorted(wanted):
        visit(name, ())
    return ordered


def env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines of a ``.env`` file, as compose reads them (comments and blanks skipped)."""
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        values[key.strip()] = value.strip().strip("'\"")
    return values
