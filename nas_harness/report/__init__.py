"""Markdown + HTML study reports: settings, Pareto table, reference comparison, figures, reproduction."""

from nas_harness.report.document import to_html, to_markdown
from nas_harness.report.study_report import ReportPaths, build_report, pareto_table, reference_table, write_report

__all__ = ["ReportPaths", "build_report", "pareto_table", "reference_table", "to_html", "to_markdown", "write_report"]
