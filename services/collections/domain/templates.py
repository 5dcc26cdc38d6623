"""SMS templates: named fields only, no threatening words, segments counted honestly.

RULES section 6: "SMS texts come from templates with named fields only (masked name,
amount, due date, DPD, a repayment link)". Every template is checked when the file is
loaded, so a bad text stops the service at start-up instead of reaching a customer:

- a field must be one of ``{name}`` (the masked name), ``{amount}``, ``{due_date}``,
  ``{dpd}``, ``{link}``; positional fields (``{}``, ``{0}``), attribute or index access
  (``{name.x}``, ``{name[0]}``), conversions and format specs are refused, since each is
  a way to print something other than the five vetted values;
- a text containing any of :data:`BANNED_WORDS` (threats, shaming, contacting family,
  friends or employer, criminal consequences) is refused;
- a template marked ``bureau_notice`` (the first grace SMS) must mention the credit
  bureau (征信): the law requires notice before negative information is reported.

Segments: Chinese text travels as UCS-2, where one SMS holds 70 characters; a longer
text is split into parts of 67 characters each, because each part loses 6 bytes (3
characters) to the concatenation header. So 70 characters are 1 segment, 71 are 2,
134 are 2, 135 are 3. Characters are counted in UTF-16 code units, so an emoji outside
the basic plane counts twice, as it does on the air.
"""

from __future__ import annotations

import math
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from shared.money import wire

from .compliance import mask_name

ALLOWED_FIELDS: frozenset[str] = frozenset({"name", "amount", "due_date", "dpd", "link"})

# Words a collection SMS must never contain: threats of exposure, visits or jail,
# contacting third parties (family, friends, colleagues, the employer, the phone book),
# insults. Matched as substrings of the template text.
BANNED_WORDS: tuple[str, ...] = (
    "起诉你家人",
    "上门",
    "坐牢",
    "曝光",
    "通讯录",
    "家人",
    "亲友",
    "朋友",
    "同事",
    "单位领导",
    "联系你单位",
    "拘留",
    "判刑",
    "刑事",
    "逮捕",
    "报警",
    "公安",
    "老赖",
    "骗子",
    "诈骗",
    "后果自负",
    "黑名单",
)

BUREAU_WORD = "征信"

SINGLE_SEGMENT_CHARS = 70
CONCAT_SEGMENT_CHARS = 67


class TemplateError(ValueError):
    """A template that may not be sent: unknown field, banned word, missing notice…"""


@dataclass(frozen=True)
class SmsTemplate:
    """A vetted template: its name, text, the fields it uses, and whether it is the bureau notice."""

    name: str
    text: str
    fields: frozenset[str]
    bureau_notice: bool = False


@dataclass(frozen=True)
class Rendered:
    """A rendered SMS and how many segments the operator will bill for it."""

    text: str
    segments: int


@dataclass(frozen=True)
class TemplateCatalog:
    """The loaded templates by name."""

    templates: Mapping[str, SmsTemplate]

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self.templates)

    def __contains__(self, name: object) -> bool:
        return name in self.templates

    def get(self, name: str) -> SmsTemplate:
        """The template of that name; an unknown name fails with the list of known ones."""
        try:
            return self.templates[name]
        except KeyError:
            raise TemplateError(f"unknown SMS template {name!r}; known: {', '.join(sorted(self.templates))}") from None


# --- checking ------------------------------------------------------------------------------------


def template_fields(name: str, text: str) -> frozenset[str]:
    """The named fields a text uses; anything but a plain allowed ``{field}`` is refused."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise TemplateError(f"template {name!r}: malformed braces ({exc})") from exc
    fields = frozenset(
        _check_field(name, field, spec, conversion) for _, field, spec, conversion in parsed if field is not None
    )
    return fields


def _check_field(name: str, field: str, spec: str | None, conversion: str | None) -> str:
    """One ``{field}`` of a template: named, known, and printed as is."""
    if field == "" or field.isdigit():
        raise TemplateError(f"template {name!r}: positional field {{{field}}}; only named fields are allowed")
    if field not in ALLOWED_FIELDS:
        raise TemplateError(
            f"template {name!r}: unknown field {{{field}}}; allowed: {', '.join(sorted(ALLOWED_FIELDS))}"
        )
    if spec or conversion:
        raise TemplateError(f"template {name!r}: field {{{field}}} may not carry a format spec or conversion")
    return field


def banned_words_in(text: str) -> list[str]:
    """The banned words a text contains (empty when it is clean)."""
    return [word for word in BANNED_WORDS if word in text]


def check_template(name: str, text: str, *, bureau_notice: bool = False) -> SmsTemplate:
    """Vet one template text and return it; raise :class:`TemplateError` saying what is wrong."""
    if not text.strip():
        raise TemplateError(f"template {name!r} is empty")
    fields = template_fields(name, text)
    banned = banned_words_in(text)
    if banned:
        raise TemplateError(f"template {name!r} contains banned words: {', '.join(banned)}")
    if bureau_notice and BUREAU_WORD not in text:
        raise TemplateError(f"template {name!r} is the bureau notice but does not mention {BUREAU_WORD}")
    return SmsTemplate(name=name, text=text, fields=fields, bureau_notice=bureau_notice)


# --- loading ------------------------------------------------------------------------------------


def load_templates(path: str | Path | None = None) -> TemplateCatalog:
    """The packaged ``templates.yaml`` (path None) or the given file, every template vetted."""
    text = _read(path)
    data = yaml.safe_load(text) or {}
    entries = data.get("templates") if isinstance(data, dict) else None
    if not isinstance(entries, dict) or not entries:
        raise TemplateError("templates file: expected a non-empty mapping under 'templates'")
    return TemplateCatalog({name: _template_from_entry(str(name), entry) for name, entry in entries.items()})


def _read(path: str | Path | None) -> str:
    if path is None:
        return resources.files("services.collections").joinpath("templates.yaml").read_text(encoding="utf-8")
    return Path(path).read_text(encoding="utf-8")


def _template_from_entry(name: str, entry: Any) -> SmsTemplate:
    """One entry of the file: either a bare text or ``{text: ..., bureau_notice: bool}``."""
    if isinstance(entry, str):
        return check_template(name, entry)
    if not isinstance(entry, dict) or not isinstance(entry.get("text"), str):
        raise TemplateError(f"template {name!r}: expected a text or a mapping with 'text'")
    unknown = set(entry) - {"text", "bureau_notice", "purpose"}
    if unknown:
        raise TemplateError(f"template {name!r}: unknown keys {', '.join(sorted(unknown))}")
    return check_template(name, entry["text"], bureau_notice=bool(entry.get("bureau_notice", False)))


# --- rendering ----------------------------------------------------------------------------------


def render(
    template: SmsTemplate,
    fields: Mapping[str, object],
    *,
    single_segment_chars: int = SINGLE_SEGMENT_CHARS,
    concat_segment_chars: int = CONCAT_SEGMENT_CHARS,
) -> Rendered:
    """Fill a template and count its segments.

    The name is always masked here (idempotently), so a full name can never go out even
    if a caller passes one. Amounts print with two decimals, dates as 3月10日, DPD as a
    number. A field the template needs but the caller left out is an error, and so is a
    key outside the five allowed fields (a typo would otherwise pass silently).
    """
    unknown = set(fields) - ALLOWED_FIELDS
    if unknown:
        raise TemplateError(f"render {template.name!r}: unknown fields {', '.join(sorted(unknown))}")
    missing = template.fields - set(fields)
    if missing:
        raise TemplateError(f"render {template.name!r}: missing fields {', '.join(sorted(missing))}")
    values = {key: _format_value(key, fields[key]) for key in template.fields}
    text = template.text.format_map(values)
    return Rendered(text=text, segments=count_segments(text, single_segment_chars, concat_segment_chars))


def _format_value(key: str, value: object) -> str:
    """The printed form of one field value."""
    if key == "name":
        return mask_name(str(value))
    if key == "amount":
        return _format_amount(value)
    if key == "due_date" and isinstance(value, date):
        return f"{value.month}月{value.day}日"
    return str(value)


def _format_amount(value: object) -> str:
    if isinstance(value, float) or isinstance(value, bool):
        raise TemplateError("amounts are Decimals, never floats")
    return wire(Decimal(str(value)))


def sms_length(text: str) -> int:
    """Length as the SMS network counts it: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def count_segments(
    text: str, single_segment_chars: int = SINGLE_SEGMENT_CHARS, concat_segment_chars: int = CONCAT_SEGMENT_CHARS
) -> int:
    """1 segment up to ``single_segment_chars`` (70); beyond, ceil(length / 67)."""
    length = sms_length(text)
    if length <= single_segment_chars:
        return 1
    return math.ceil(length / concat_segment_chars)


def require_templates(catalog: TemplateCatalog, names: Iterable[str]) -> None:
    """Fail with one clear message when any of these names is not in the catalog."""
    missing = sorted(set(names) - catalog.names)
    if missing:
        raise TemplateError(f"unknown SMS templates {', '.join(missing)}; known: {', '.join(sorted(catalog.names))}")
