"""Reporting: every renderer (terminal, CSV, Markdown, JSON, HTML) is a pure function of a
:class:`~cnnbench.results.Run`; charts and terminal tables live beside them. Reporters never
measure."""

from cnnbench.report.files import (
    CONVENTIONS,
    FORMATS,
    RELATIVE_COLUMNS,
    relative_to,
    render,
    render_csv,
    render_html,
    render_json,
    render_markdown,
    render_table,
    to_dataframe,
    write_reports,
)

__all__ = [
    "CONVENTIONS",
    "FORMATS",
    "RELATIVE_COLUMNS",
    "relative_to",
    "render",
    "render_csv",
    "render_html",
    "render_json",
    "render_markdown",
    "render_table",
    "to_dataframe",
    "write_reports",
]
