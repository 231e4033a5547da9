"""The document model's tables: right-aligned columns render alike in Markdown and HTML."""

from __future__ import annotations

import pytest

from nas_harness.report.document import Table, to_html, to_markdown


def test_right_aligned_columns_in_markdown_and_html() -> None:
    t = Table(["variant", "acc %", "arch"], [["base", "91.20", "stem_c8"], ["no_se", "90.05", ""]],
              code_columns={2}, right={1})
    md = to_markdown([t]).splitlines()
    assert md[:2] == ["| variant | acc % | arch |", "|---|---:|---|"]
    assert md[2] == "| base | 91.20 | `stem_c8` |"
    page = to_html([t], "t")
    assert "<th>variant</th><th class='r'>acc %</th><th>arch</th>" in page
    assert "<td>base</td><td class='r'>91.20</td>" in page and "td.r,th.r{text-align:right}" in page


def test_a_column_index_outside_the_table_is_refused() -> None:
    with pytest.raises(ValueError, match="column 3 out of range for 2 columns"):
        Table(["a", "b"], [], right={3})
