"""The deployment test reads docker-compose.yml as compose does: its interpolation rules."""

from __future__ import annotations

import pytest

from tests.deployment.compose import InterpolationError, interpolate, start_order, load_project


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${A}", "a"),
        ("$A-x", "a-x"),
        ("$$A", "$A"),
        ("${EMPTY:-d}", "d"),
        ("${EMPTY-d}", ""),
        ("${UNSET-d}", "d"),
        ("${UNSET}", ""),
        ("${A:?must}", "a"),
    ],
)
def test_compose_interpolation(text: str, expected: str) -> None:
    assert interpolate(text, {"A": "a", "EMPTY": ""}) == expected


@pytest.mark.parametrize("text", ["${UNSET:?set it}", "${EMPTY:?set it}", "${UNSET?set it}"])
def test_a_required_variable_refuses_the_file(text: str) -> None:
    with pytest.raises(InterpolationError, match="set it"):
        interpolate(text, {"EMPTY": ""})


def test_the_shipped_file_needs_its_passwords_and_verify_keys() -> None:
    with pytest.raises(InterpolationError, match="BAITIAO_VERIFY_KEYS"):
        load_project({})
    with pytest.raises(InterpolationError, match="REDIS_PASSWORD"):
        load_project({"BAITIAO_VERIFY_KEYS": "accounts:k1:AAAA"})


def test_up_starts_what_compose_starts_in_dependency_order() -> None:
    from tests.deployment.test_compose_stack import user_environment

    project = load_project(user_environment())
    order = start_order(project)
    assert "cli" not in order  # a profile service: `docker compose run` only
    for name in order:
        for dependency in project.services[name].depends_on:
            assert order.index(dependency) < order.index(name)
