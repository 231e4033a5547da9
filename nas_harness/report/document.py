"""A tiny document model rendered to both Markdown and self-contained HTML.

Reports are built once as blocks and rendered twice, so the Markdown and HTML versions cannot drift apart and
no Markdown-to-HTML dependency is needed.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from nas_harness._config import write_output


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Para:
    text: str  # plain text; `code` spans are the only inline markup


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    code_columns: set[int] = field(default_factory=set)  # rendered as code (arch strings)
    right: set[int] = field(default_factory=set)  # right-aligned columns (numbers); the others are left-aligned

    def __post_init__(self) -> None:
        width = len(self.header)
        bad = [i for i in (*self.code_columns, *self.right) if not 0 <= i < width]
        if bad:
            raise ValueError(f"Table: column {bad[0]} out of range for {width} columns")


@dataclass
class Code:
    text: str
    lang: str = ""


@dataclass
class Image:
    path: str  # relative to the report
    alt: str


Block = Heading | Para | Bullets | Table | Code | Image


def _md_cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: list[Block]) -> str:
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"{'#' * b.level} {b.text}")
        elif isinstance(b, Para):
            out.append(b.text)
        elif isinstance(b, Bullets):
            out.append("\n".join(f"- {i}" for i in b.items))
        elif isinstance(b, Table):
            lines = ["| " + " | ".join(_md_cell(h) for h in b.header) + " |",
                     "|" + "|".join("---:" if i in b.right else "---" for i in range(len(b.header))) + "|"]
            for row in b.rows:
                cells = [f"`{c}`" if i in b.code_columns and c else _md_cell(c) for i, c in enumerate(row)]
                lines.append("| " + " | ".join(cells) + " |")
            out.append("\n".join(lines))
        elif isinstance(b, Code):
            out.append(f"```{b.lang}\n{b.text.rstrip()}\n```")
        elif isinstance(b, Image):
            out.append(f"![{b.alt}]({b.path})")
    return "\n\n".join(out) + "\n"


def code_html(s: str) -> str:
    """Escaped code whose lines may wrap only after commas: each comma-separated piece of a line is one
    unbreakable span followed by a <wbr> (an arch string wraps between its blocks, never inside one; copying
    the text gives it back unchanged)."""
    out = []
    for line in s.split("\n"):
        pieces = line.split(",")
        spans = [f"<span class='nb'>{html.escape(p)}{',' if i < len(pieces) - 1 else ''}</span>"
                 for i, p in enumerate(pieces)]
        out.append("<wbr>".join(spans))
    return "\n".join(out)


def _inline(s: str) -> str:
    """Escape, then turn `code` spans into <code>."""
    parts = s.split("`")
    return "".join(f"<code>{code_html(p)}</code>" if i % 2 else html.escape(p) for i, p in enumerate(parts))


# Code never breaks inside a piece (.nb), only at the <wbr> after a comma; pre blocks wrap instead of scrolling.
_CSS = """body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.25rem .5rem;
text-align:left;vertical-align:top}th{background:#f3f3f3}td.r,th.r{text-align:right}
code{font-size:.8rem;overflow-wrap:normal;word-break:keep-all}.nb{white-space:nowrap}
pre{background:#f6f6f6;padding:.6rem;white-space:pre-wrap;overflow-wrap:normal;word-break:keep-all}
pre{overflow-x:auto}pre .nb{white-space:pre}img{max-width:32rem;margin:.5rem 1rem .5rem 0}"""


def _cell(tag: str, right: bool, inner: str) -> str:
    return f"<{tag} class='r'>{inner}</{tag}>" if right else f"<{tag}>{inner}</{tag}>"


def to_html(blocks: list[Block], title: str) -> str:
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
           f"<style>{_CSS}</style></head><body>"]
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"<h{b.level}>{_inline(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            out.append(f"<p>{_inline(b.text)}</p>")
        elif isinstance(b, Bullets):
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            head = "".join(_cell("th", i in b.right, html.escape(h)) for i, h in enumerate(b.header))
            body = "".join(
                "<tr>" + "".join(_cell("td", i in b.right, f"<code>{code_html(c)}</code>" if i in b.code_columns and c
                                      else html.escape(c)) for i, c in enumerate(row)) + "</tr>"
                for row in b.rows)
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(b, Code):
            out.append(f"<pre><code>{code_html(b.text.rstrip())}</code></pre>")
        elif isinstance(b, Image):
            out.append(f"<img src='{html.escape(b.path)}' alt='{html.escape(b.alt)}'>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_csv(path: Any, rows: list[dict[str, Any]]) -> None:
    """``rows`` as a CSV file (columns in first-seen order, its folder created): the tables beside a report."""
    import csv
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with write_output(path) as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
