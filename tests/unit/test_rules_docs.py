"""docs/rules.md names every setting of ``ProductRules`` and no setting it does not have.

The page writes a setting as its path in a rules file, ``section.name`` (nested:
``collections.compliance.sms_per_day``). Every leaf field of ``ProductRules``
(sections walked, nested models walked) must appear in backticks on the page; every
backticked path that starts with a section's name (and is not an event type) must be a
real setting; and where a
table row gives plain defaults (numbers, strings, unset), they must be the model's.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel

from shared.events.payloads import PAYLOADS
from shared.rules import ProductRules

DOC = Path(__file__).resolve().parents[2] / "docs" / "rules.md"
SECTIONS = tuple(ProductRules.model_fields)
SETTING = re.compile(r"`((?:%s)(?:\.[a-z_0-9]+)+)`" % "|".join(SECTIONS))


def settings(model: type[BaseModel] = ProductRules, prefix: str = "") -> dict[str, object]:
    """Every leaf setting's path and its default, nested models walked."""
    found: dict[str, object] = {}
    defaults = model()
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found.update(settings(annotation, f"{prefix}{name}."))
        else:
            found[f"{prefix}{name}"] = getattr(defaults, name)
    return found


def _plain(value: object) -> str | None:
    """How the page writes a plain default; None for lists and mappings (not compared)."""
    if value is None:
        return "unset"
    if isinstance(value, (int, str, Decimal)):
        return str(value)
    return None


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def test_every_setting_is_named_on_the_page() -> None:
    named = set(SETTING.findall(DOC.read_text(encoding="utf-8")))
    assert sorted(settings().keys() - named) == []


def test_every_setting_the_page_names_exists() -> None:
    named = set(SETTING.findall(DOC.read_text(encoding="utf-8"))) - PAYLOADS.keys()  # `risk.assessed` is an event
    assert sorted(named - settings().keys()) == []


def test_plain_defaults_on_the_page_are_the_models() -> None:
    known = settings()
    wrong: list[str] = []
    compared = 0
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            continue
        cells = _cells(line)
        paths = SETTING.findall(cells[-2]) if len(cells) >= 2 else []
        if not paths or any(path not in known for path in paths):
            continue
        plain = [_plain(known[path]) for path in paths]
        expected = [value for value in plain if value is not None]
        if len(expected) < len(plain):
            continue
        given = [value.strip().strip("`") for value in cells[-1].split(",")]
        compared += len(paths)
        if given != expected:
            wrong.append(f"{', '.join(paths)}: the page says {cells[-1]!r}, the model {', '.join(expected)}")
    assert wrong == []
    assert compared >= 30, "the defaults' tables were not found"


def test_the_walk_reaches_nested_settings() -> None:
    """The check itself: a nested model's fields are settings, the model itself is not."""
    found = settings()
    assert "collections.compliance.sms_per_day" in found
    assert "collections.compliance" not in found
    assert found["overdue.penalty_daily_rate"] == Decimal("0.0005")
