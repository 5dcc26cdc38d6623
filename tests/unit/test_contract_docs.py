"""docs/events.md and the pydantic schemas of shared/events describe the same wire.

The page documents every event type under a heading of its own (``### bill.overdue``)
followed by a table of its fields: ``| field | type | required | notes |``. Nested
objects are rows of their own, ``bills[].bill_id``. This test holds the page and the
code equal both ways: every documented type and field exists in the schemas, every
schema type and field is documented, with the type and "required" the code gives it,
every value a ``Literal`` field accepts is named in its row, and every limit the field is
held to (lengths, integer bounds) is stated in its notes in the page's words ("1 to 64
characters", "at most 128 characters", "at least 1"). The envelope's table (under
``## Envelope``) is held to ``Envelope`` in the same way, and the table of field types
states the bounds every amount is held to (``shared/events/types.py``).
"""

from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import annotated_types
import pytest
from pydantic import AwareDatetime, BaseModel
from pydantic.fields import FieldInfo

from shared.events import types as wire
from shared.events.envelope import Envelope
from shared.events.payloads import PAYLOADS

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"
EVENT_HEADING = re.compile(r"^### `?([a-z_]+(?:\.[a-z_]+)+)`?\s*$")
ENVELOPE_HEADING = re.compile(r"^## Envelope\s*$")
FIELD_TYPES_HEADING = re.compile(r"^## Field types\s*$")


@dataclass(frozen=True)
class FieldRow:
    """One documented field: its path (``offers[].schedule[].period``), type, required, notes."""

    path: str
    type: str
    required: bool
    notes: str


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _table_after(lines: list[str], start: int) -> list[FieldRow]:
    """The first table after line ``start`` (its header and separator skipped)."""
    index = start + 1
    while index < len(lines) and not lines[index].startswith("|"):
        if lines[index].startswith("#"):
            return []
        index += 1
    rows: list[FieldRow] = []
    for line in lines[index + 2 :]:
        if not line.startswith("|"):
            break
        field, kind, required, notes = (_cells(line) + ["", "", "", ""])[:4]
        rows.append(FieldRow(field.strip("`"), kind, required.lower() == "yes", notes))
    return rows


def documented() -> tuple[list[FieldRow], dict[str, list[FieldRow]]]:
    """The envelope's rows and each documented event type's rows, as the page has them."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    envelope: list[FieldRow] = []
    events: dict[str, list[FieldRow]] = {}
    for number, line in enumerate(lines):
        if ENVELOPE_HEADING.match(line):
            envelope = _table_after(lines, number)
        elif match := EVENT_HEADING.match(line):
            assert match.group(1) not in events, f"{match.group(1)} is documented twice"
            events[match.group(1)] = _table_after(lines, number)
    return envelope, events


_NAMED_TYPES: list[tuple[object, str]] = [
    (wire.PositiveMoney, "positive money"),
    (wire.SignedMoney, "signed money"),
    (wire.Money, "money"),
    (wire.DecimalString, "decimal string"),
    (wire.Rate, "rate"),
]


def _without_none(annotation: object) -> tuple[object, bool]:
    """The annotation with ``None`` taken out of a union, and whether it was there."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(args) != len(typing.get_args(annotation)):
            return (args[0] if len(args) == 1 else typing.Union[tuple(args)]), True
    return annotation, False


def wire_type(annotation: object) -> str:
    """The page's name for a field's type: ``money``, ``date``, ``list of string``, ..."""
    annotation, _ = _without_none(annotation)
    for alias, name in _NAMED_TYPES:
        if annotation == alias:
            return name
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return "integer" if all(isinstance(v, int) for v in typing.get_args(annotation)) else "string"
    if origin is typing.Annotated:
        base = typing.get_args(annotation)[0]
        if base is AwareDatetime or annotation == AwareDatetime:
            return "timestamp"
        return wire_type(base)
    if origin is list:
        (item,) = typing.get_args(annotation)
        if isinstance(item, type) and issubclass(item, BaseModel):
            return "list of object"
        return f"list of {wire_type(item)}"
    if origin is dict:
        return "object"
    if annotation == AwareDatetime:
        return "timestamp"
    if annotation is date:
        return "date"
    if annotation is int:
        return "integer"
    if annotation is str:
        return "string"
    raise AssertionError(f"no page name for the field type {annotation!r}")


def literal_values(annotation: object) -> tuple[object, ...]:
    annotation, _ = _without_none(annotation)
    return typing.get_args(annotation) if typing.get_origin(annotation) is typing.Literal else ()


def _bound(info: FieldInfo, kind: type, attribute: str) -> int | None:
    """One constraint of a field (``MaxLen.max_length``, ``Ge.ge``...), None when it has none."""
    return next((getattr(item, attribute) for item in info.metadata if isinstance(item, kind)), None)


def limit_phrase(info: FieldInfo) -> str | None:
    """The words the page must use for a field's length or integer bounds (None: it has none)."""
    shortest = _bound(info, annotated_types.MinLen, "min_length")
    longest = _bound(info, annotated_types.MaxLen, "max_length")
    if shortest or longest:
        if shortest and longest:
            return f"{shortest} to {longest} characters"
        if longest:
            return f"at most {longest} characters"
        return "not empty" if shortest == 1 else f"at least {shortest} characters"
    low, high = _bound(info, annotated_types.Ge, "ge"), _bound(info, annotated_types.Le, "le")
    if low is not None and high is not None:
        return f"{low} to {high}"
    if low is not None:
        return f"at least {low}"
    if high is not None:
        return f"at most {high}"
    return None


def schema_rows(
    model: type[BaseModel], prefix: str = ""
) -> dict[str, tuple[str, bool, tuple[object, ...], str | None]]:
    """Every field path of ``model`` (nested objects walked) with its page type, required,
    literals and limits."""
    hints = typing.get_type_hints(model, include_extras=True)
    rows: dict[str, tuple[str, bool, tuple[object, ...], str | None]] = {}
    for name, info in model.model_fields.items():
        annotation = hints[name]
        path = f"{prefix}{name}"
        rows[path] = (wire_type(annotation), info.is_required(), literal_values(annotation), limit_phrase(info))
        inner, _ = _without_none(annotation)
        if typing.get_origin(inner) is list:
            (item,) = typing.get_args(inner)
            if isinstance(item, type) and issubclass(item, BaseModel):
                rows.update(schema_rows(item, f"{path}[]."))
    return rows


def _compare(where: str, rows: list[FieldRow], model: type[BaseModel]) -> list[str]:
    problems: list[str] = []
    expected = schema_rows(model)
    seen: dict[str, FieldRow] = {}
    for row in rows:
        if row.path in seen:
            problems.append(f"{where}: {row.path} is documented twice")
        seen[row.path] = row
    for path in seen.keys() - expected.keys():
        problems.append(f"{where}: documents {path}, which {model.__name__} does not have")
    for path in expected.keys() - seen.keys():
        problems.append(f"{where}: {model.__name__}.{path} is not documented")
    for path in expected.keys() & seen.keys():
        kind, required, literals, limit = expected[path]
        row = seen[path]
        if row.type != kind:
            problems.append(f"{where}: {path} is documented as {row.type!r}, the code has {kind!r}")
        if row.required != required:
            problems.append(f"{where}: {path} is documented required={row.required}, the code has {required}")
        for value in literals:
            if f"`{value}`" not in row.notes:
                problems.append(f"{where}: {path} accepts `{value}`, its notes do not name it")
        if limit is not None and limit not in row.notes:
            problems.append(f"{where}: {path} is held to {limit!r}, its notes do not say so")
    return problems


def test_the_page_documents_every_event_type_and_no_other() -> None:
    _, events = documented()
    assert sorted(events.keys() - PAYLOADS.keys()) == [], "documented types the code does not know"
    assert sorted(PAYLOADS.keys() - events.keys()) == [], "types of the code the page does not document"


@pytest.mark.parametrize("event_type", sorted(PAYLOADS))
def test_every_field_of_an_event_is_documented_as_the_code_validates_it(event_type: str) -> None:
    _, events = documented()
    assert _compare(event_type, events.get(event_type, []), PAYLOADS[event_type]) == []


def test_the_envelope_table_matches_the_envelope_model() -> None:
    envelope, _ = documented()
    assert envelope, "docs/events.md has no table under '## Envelope'"
    assert _compare("envelope", envelope, Envelope) == []


def _complete_rows(model: type[BaseModel]) -> list[FieldRow]:
    """The rows a page would need for ``model``, every literal named in its notes."""
    return [
        FieldRow(path, kind, required, "; ".join([*(f"`{value}`" for value in literals), *([limit] if limit else [])]))
        for path, (kind, required, literals, limit) in schema_rows(model).items()
    ]


def test_the_comparison_reports_a_field_missing_extra_or_mistyped() -> None:
    """The check itself, on rows built from the schema: each defect is reported by name."""
    model = PAYLOADS["repayment.applied"]
    rows = _complete_rows(model)
    assert _compare("t", rows, model) == []
    missing = [row for row in rows if row.path != "allocations[].component"]
    assert _compare("t", missing, model) == ["t: RepaymentApplied.allocations[].component is not documented"]
    extra = [*rows, FieldRow("refund_id", "string", True, "")]
    assert _compare("t", extra, model) == ["t: documents refund_id, which RepaymentApplied does not have"]
    retyped = [FieldRow(r.path, "decimal string", r.required, r.notes) if r.path == "amount" else r for r in rows]
    assert _compare("t", retyped, model) == ["t: amount is documented as 'decimal string', the code has 'money'"]
    unnamed = [FieldRow(r.path, r.type, r.required, "`bill`") if r.path == "allocations[].target" else r for r in rows]
    assert _compare("t", unnamed, model) == ["t: allocations[].target accepts `plan`, its notes do not name it"]
    grant = PAYLOADS["credit.line.granted"]
    limited = _complete_rows(grant)
    assert _compare("t", limited, grant) == []
    unstated = [FieldRow(r.path, r.type, r.required, "") if r.path == "phone" else r for r in limited]
    assert _compare("t", unstated, grant) == ["t: phone is held to '5 to 32 characters', its notes do not say so"]


def test_limits_are_phrased_as_the_page_states_them() -> None:
    fields = PAYLOADS["plan.adjustment.requested"].model_fields
    assert limit_phrase(fields["request_id"]) == "1 to 64 characters"
    assert limit_phrase(fields["new_term"]) == "at least 1"
    assert limit_phrase(fields["kind"]) is None
    assert limit_phrase(PAYLOADS["account.restrictions.changed"].model_fields["level"]) == "0 to 4"
    assert limit_phrase(Envelope.model_fields["producer"]) == "not empty"


def field_types() -> dict[str, str]:
    """The page's table of field types (type | on the wire | validated): each type's "validated"."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = next(number for number, line in enumerate(lines) if FIELD_TYPES_HEADING.match(line))
    table = []
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            table.append(_cells(line))
        elif table:
            break
    return {cells[0]: cells[2] for cells in table[2:]}


def test_the_field_types_table_states_the_bounds_of_every_amount_and_date() -> None:
    kinds = field_types()
    bound, width = f"less than {wire.MAX_AMOUNT:,}", f"at most {wire.MAX_DECIMAL_CHARS} characters"
    for kind in ("money", "decimal string"):
        assert bound in kinds[kind] and width in kinds[kind], kinds[kind]
    for kind in ("positive money", "signed money"):
        assert "as money" in kinds[kind], kinds[kind]
    calendar = f"from {wire.FIRST_DATE} to {wire.LAST_DATE}"
    for kind in ("date", "timestamp"):
        assert calendar in kinds[kind], kinds[kind]
