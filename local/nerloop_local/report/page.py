"""The pieces every `nerloop report` page is made of: escaped text, numbers as the pages show them, tables,
image links, the page's head and its style sheet. No script: the pages are static HTML."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

MISSING = "n/a"  # a figure the data has nothing for

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 62rem; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }
caption { text-align: left; font-weight: 600; padding-bottom: 0.3rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; }
th { background: #f3f3f3; }
td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; height: auto; }
.meta { color: #555; }
"""


def escape(value: Any) -> str:
    """`value` as text safe in an HTML element or a quoted attribute."""
    return html.escape(str(value), quote=True)


def score_text(value: float | None) -> str:
    """A score (precision, recall, F1 ...) to four places, or MISSING."""
    return MISSING if value is None else f"{value:.4f}"


def share_text(value: float | None) -> str:
    """A share as a percentage to one place, or MISSING."""
    return MISSING if value is None else f"{100 * value:.1f}%"


def html_table(table_id: str, caption: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A table with a caption, a header row and escaped cells."""
    head = "".join(f"<th scope=\"col\">{escape(h)}</th>" for h in header)
    body = "\n".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return (f"<table id=\"{escape(table_id)}\"><caption>{escape(caption)}</caption>\n<thead><tr>{head}</tr></thead>\n"
            f"<tbody>\n{body}\n</tbody></table>")


def html_image(name: str, alt: str) -> str:
    """A paragraph holding the image `name` (relative to the page)."""
    return f"<p><img src=\"{escape(name)}\" alt=\"{escape(alt)}\"></p>"


def page_head(title: str) -> list[str]:
    """The page's opening lines, up to and including <body>."""
    return ["<!DOCTYPE html>", "<html lang=\"en\">", "<head>", "<meta charset=\"utf-8\">",
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
            f"<title>{title}</title>", f"<style>{STYLE}</style>", "</head>", "<body>"]


PAGE_END = ["</body>", "</html>", ""]
