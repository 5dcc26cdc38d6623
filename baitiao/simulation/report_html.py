"""report.html: the sections of report.md as one self-contained page.

The charts are embedded as base64 PNG and the style is inline, so the file opens
anywhere with no internet and no folder beside it.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from typing import Any

from baitiao.simulation.report_markdown import engineering, sections, title

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; color: #212121; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ddd; padding: .3em .6em; text-align: left; vertical-align: top; }
td:nth-child(2) { text-align: right; white-space: nowrap; }
th { background: #f5f5f5; } img { max-width: 100%; margin: .5em 0; }
.story { font-size: 1.1em; background: #f5f9ff; border-left: 4px solid #1e88e5; padding: .6em 1em; }
.fail { color: #c62828; font-weight: bold; }
"""


def _inline(text: str) -> str:
    escaped = html.escape(text)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*([^*]+)\*\*", r'<span class="fail">\1</span>', escaped)


def _block(block: str, css: str = "") -> str:
    """A Markdown block of report_markdown (a table or a paragraph) as HTML."""
    if not block.startswith("| "):
        return f"<p{css}>{_inline(block)}</p>"
    lines = block.splitlines()
    cells = [[c.strip() for c in line.strip().strip("|").split(" | ")] for line in lines if not line.startswith("|---")]
    head = "".join(f"<th>{_inline(c)}</th>" for c in cells[0])
    body = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in cells[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _image(out_dir: Path, path: str, name: str) -> str:
    data = base64.b64encode((out_dir / path).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(name)}" src="data:image/png;base64,{data}">'


def html_page(report: dict[str, Any], out_dir: Path, images: dict[str, str]) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title(report))}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title(report))}</h1>",
    ]
    for number, (heading, charts, blocks) in enumerate(sections(report)):
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        for index, block in enumerate(blocks):
            parts.append(_block(block, ' class="story"' if number == 0 and index == 0 else ""))
        parts += [_image(out_dir, images[name], name) for name in charts]
    parts.append("<h2>Engineering checks</h2>")
    parts += [_block(block) for block in engineering(report)]
    parts.append("</body></html>")
    return "\n".join(parts)
