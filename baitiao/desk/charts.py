"""KPI charts drawn on the server as inline SVG: no script, no CDN, readable on a phone.

A horizontal bar chart scales to its container (``viewBox``); each bar carries its
label and value as text, so the chart reads without colour and copies as text.
"""

from __future__ import annotations

from decimal import Decimal
from html import escape

_ROW = 26
_LABEL = 190
_WIDTH = 640


def bar_chart(title: str, bars: list[tuple[str, Decimal | int | None]], *, percent: bool = False) -> str:
    """An SVG of one bar per (label, value); None is drawn as "n/a" with no bar."""
    values = [float(v) for _label, v in bars if v is not None]  # drawing only: pixels, not money
    top = max(values + ([1.0] if percent else [0.0])) or 1.0
    height = _ROW * len(bars) + 34
    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {_WIDTH} {height}" '
        f'xmlns="http://www.w3.org/2000/svg">',
        f'<text x="0" y="16" class="chart-title">{escape(title)}</text>',
    ]
    span = _WIDTH - _LABEL - 80
    for i, (label, value) in enumerate(bars):
        y = 28 + i * _ROW
        parts.append(f'<text x="0" y="{y + 15}" class="chart-label">{escape(label)}</text>')
        if value is None:
            parts.append(f'<text x="{_LABEL}" y="{y + 15}" class="chart-value">n/a</text>')
            continue
        width = max(1.0, span * float(value) / top)
        shown = f"{Decimal(value) * 100:.1f}%" if percent else str(value)
        parts.append(f'<rect x="{_LABEL}" y="{y + 3}" width="{width:.1f}" height="{_ROW - 8}" class="chart-bar"/>')
        parts.append(f'<text x="{_LABEL + width + 6:.1f}" y="{y + 15}" class="chart-value">{escape(shown)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def kpi_charts(report: dict[str, object]) -> list[str]:
    """The KPI page's charts: cohort rates, cure rate by stage, contacts by outcome."""
    cohort: dict[str, dict[str, str | None]] = report["cohort"]  # type: ignore[assignment]
    stock: dict[str, dict[str, dict[str, str | None]]] = report["open_on_from"]  # type: ignore[assignment]
    contacts: list[dict[str, object]] = report["contacts"]  # type: ignore[assignment]

    def rate(r: dict[str, str | None]) -> Decimal | None:
        return Decimal(r["value"]) if r["value"] is not None else None

    rates = [
        ("cure rate", rate(cohort["cure_rate"])),
        ("contact rate", rate(cohort["contact_rate"])),
        ("promise kept rate", rate(cohort["promise_kept_rate"])),
    ]
    by_stage = [(stage, rate(r)) for stage, r in stock["cure_rate_by_stage"].items()]
    counts = [(f"{c['channel']} {c['outcome']}", int(c["count"])) for c in contacts]  # type: ignore[call-overload]
    charts = [
        bar_chart("Cohort rates", rates, percent=True),
        bar_chart("Cure rate by stage (cases open on the first day)", by_stage, percent=True),
    ]
    if counts:
        charts.append(bar_chart("Contacts made", counts))
    return charts
