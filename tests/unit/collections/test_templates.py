"""SMS templates: named fields only, banned words refused, segments counted."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.collections.domain.strategy import StrategyError, load_strategy
from services.collections.domain.templates import (
    BANNED_WORDS,
    TemplateError,
    check_template,
    count_segments,
    load_templates,
    render,
)

FIELDS = {
    "name": "张三",
    "amount": Decimal("1000"),
    "due_date": date(2026, 3, 10),
    "dpd": 12,
    "link": "https://bt.example.cn/r/x1",
}


def test_packaged_templates_cover_the_strategy() -> None:
    catalog = load_templates()
    for name in ("pre_due", "grace_first", "grace", "early", "plan_invitation", "plan_installment_reminder"):
        assert name in catalog
    assert catalog.get("grace_first").bureau_notice
    assert "征信" in catalog.get("grace_first").text


def test_render_masks_the_name_and_formats_values() -> None:
    rendered = render(load_templates().get("pre_due"), FIELDS)
    assert "张*" in rendered.text and "张三" not in rendered.text
    assert "1000.00元" in rendered.text and "3月10日" in rendered.text
    assert rendered.segments == count_segments(rendered.text)


def test_render_refuses_missing_and_unknown_fields() -> None:
    template = check_template("t", "{name}您好，应还{amount}元")
    with pytest.raises(TemplateError, match="missing fields amount"):
        render(template, {"name": "张三"})
    with pytest.raises(TemplateError, match="unknown fields phone"):
        render(template, {"name": "张三", "amount": Decimal("1"), "phone": "13812345678"})
    with pytest.raises(TemplateError, match="never floats"):
        render(template, {"name": "张三", "amount": 1.5})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{name}您好，{phone}", "unknown field \\{phone\\}"),
        ("{}您好", "positional field"),
        ("{0}您好", "positional field"),
        ("{name.upper}您好", "unknown field"),
        ("{name[0]}您好", "unknown field"),
        ("应还{amount:.2f}元", "format spec"),
        ("{name!r}您好", "format spec or conversion"),
        ("{name您好", "malformed braces"),
    ],
)
def test_unknown_or_unsafe_fields_are_rejected(text: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        check_template("bad", text)


@pytest.mark.parametrize("word", ["起诉你家人", "上门", "坐牢", "曝光", "通讯录"])
def test_banned_words_are_rejected(word: str) -> None:
    with pytest.raises(TemplateError, match="banned words"):
        check_template("threat", f"{{name}}您好，再不还款将{word}。{{link}}")


def test_the_bureau_notice_must_mention_the_bureau() -> None:
    with pytest.raises(TemplateError, match="征信"):
        check_template("grace_first", "{name}您好，请还款", bureau_notice=True)


def test_a_file_with_a_bad_template_fails_at_load(tmp_path: Path) -> None:
    path = tmp_path / "templates.yaml"
    path.write_text('templates:\n  early:\n    text: "{name}您好，{phone}"\n', encoding="utf-8")
    with pytest.raises(TemplateError, match="unknown field"):
        load_templates(path)
    path.write_text('templates:\n  early:\n    text: "{name}您好，否则上门"\n', encoding="utf-8")
    with pytest.raises(TemplateError, match="banned words: 上门"):
        load_templates(path)


def test_a_strategy_naming_a_template_missing_from_the_catalog_fails(tmp_path: Path) -> None:
    path = tmp_path / "templates.yaml"
    path.write_text('templates:\n  only_one:\n    text: "{name}您好"\n', encoding="utf-8")
    with pytest.raises(StrategyError, match="unknown templates"):
        load_strategy(None, templates=load_templates(path))


@pytest.mark.parametrize(
    ("length", "segments"),
    [(1, 1), (70, 1), (71, 2), (134, 2), (135, 3), (201, 3), (202, 4)],
)
def test_segments_70_single_then_67_per_part(length: int, segments: int) -> None:
    assert count_segments("还" * length) == segments


def test_a_character_outside_the_basic_plane_counts_twice() -> None:
    assert count_segments("还" * 69 + "😀") == 2  # 69 + 2 UTF-16 units = 71


@given(st.text(alphabet="还款您好逾期征信", min_size=1, max_size=400))
def test_segments_hold_the_whole_text(text: str) -> None:
    segments = count_segments(text)
    capacity = 70 if segments == 1 else segments * 67
    assert len(text) <= capacity
    assert segments == 1 or len(text) > (segments - 1) * 67


def test_no_packaged_template_contains_a_banned_word() -> None:
    for template in load_templates().templates.values():
        assert not [w for w in BANNED_WORDS if w in template.text]
