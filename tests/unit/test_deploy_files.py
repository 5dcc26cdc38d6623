"""The deployment files parse and hang together (no Docker engine on the CI machine)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_has_every_process_with_healthchecks_and_restart_policies() -> None:
    services = _compose()["services"]
    assert {
        "redis",
        "postgres",
        "migrate",
        "worker-accounts",
        "worker-collections",
        "worker-restructuring",
        "beat",
    } <= set(services)
    for name in ("redis", "postgres", "worker-accounts", "worker-collections", "worker-restructuring"):
        assert "healthcheck" in services[name], name
    for name, service in services.items():
        assert service.get("restart") in {"unless-stopped", "no", "always"}, name
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
    assert services["migrate"]["command"] == ["db", "upgrade"]


def test_redis_keeps_data_and_never_evicts_bindings() -> None:
    command = _compose()["services"]["redis"]["command"]
    assert "--appendonly yes" in command and "--maxmemory-policy noeviction" in command
    assert command.startswith("sh /etc/baitiao/redis/start.sh ") and "--requirepass" not in command


def test_the_redis_users_file_is_the_one_the_code_describes() -> None:
    """deploy/redis/users.acl is what ``baitiao broker users`` prints (regenerate it so)."""
    from shared.bus.broker_users import acl_text

    assert (ROOT / "deploy" / "redis" / "users.acl").read_text() == acl_text()


def test_every_redis_user_has_a_secret_and_every_app_service_logs_in_as_its_own() -> None:
    from shared.bus.broker_users import acl_rules
    from tests.deployment.compose import load_project
    from tests.deployment.test_compose_stack import user_environment

    project = load_project(user_environment())
    redis_secrets = set(project.services["redis"].secrets)
    assert redis_secrets == {"redis_password"} | {f"redis_{u.replace('-', '_')}_password" for u in acl_rules()}
    for service in project.services.values():
        if service.builds_app:
            url = service.environment["BAITIAO_BROKER_URL"]
            user = url.split("//", 1)[1].split("@", 1)[0]
            assert user in acl_rules() and f"redis_{user}_password" in service.secrets, service.name
            assert "redis_password" not in service.secrets, service.name


def test_every_secret_comes_from_the_environment_and_is_documented() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"\$\{([A-Z_]+)", text))
    documented = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    assert used <= documented, used - documented
    literal_secrets = re.findall(r"^\s*[A-Z_]*PASSWORD:\s*(?!\$\{)\S+", text, re.MULTILINE)
    assert literal_secrets == [] and "change-me" not in text


def test_every_app_service_stops_within_the_grace_its_soft_shutdown_needs() -> None:
    from shared.job_timing import SOFT_SHUTDOWN_SECONDS, STOP_GRACE_SECONDS
    from tests.deployment.compose import load_project, seconds
    from tests.deployment.test_compose_stack import user_environment

    project = load_project(user_environment())
    for service in project.services.values():
        if service.builds_app:
            assert service.stop_grace_s == STOP_GRACE_SECONDS > SOFT_SHUTDOWN_SECONDS, service.name
            assert service.environment.get("REMAP_SIGTERM") == "SIGQUIT", service.name
    assert seconds("1m30s", 0) == 90 and seconds("500ms", 0) == 0.5


def test_redis_has_a_memory_limit_and_never_evicts() -> None:
    from tests.deployment.compose import load_project
    from tests.deployment.test_compose_stack import user_environment

    command = load_project(user_environment()).services["redis"].command
    assert command[command.index("--maxmemory") + 1] == "1gb"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
