"""The three renderers of a :class:`~cnnbench.report.document.Document`: terminal (rich),
Markdown and one self-contained HTML page. Each walks the sections in order and decides
nothing about what a report contains, only how its medium shows it:

* the terminal prints tables (a table too wide for the console is split into its absolute
  and its ``×`` columns), failure lines in red, and leaves out charts (SVG) and the
  appendix (its header line names the machine);
* Markdown writes headings one level below the document's, charts as image references to
  the files in ``chart_paths`` (none without files);
* HTML inlines the charts' SVG and CSS: no scripts, no external resources.

All text from the document is escaped for its medium (rich markup, Markdown, HTML).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from html import escape
from typing import TYPE_CHECKING

from cnnbench.report.charts import CHARTS
from cnnbench.report.document import Document
from cnnbench.report.table import (
    MAX_LINE_CHARS,
    MAX_TITLE_CHARS,
    Table,
    clean_text,
    md_escape,
    to_rich,
)
from cnnbench.report.table import to_html as table_html
from cnnbench.report.table import to_markdown as table_markdown

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["to_html", "to_markdown", "to_terminal"]


def _framed(doc: Document) -> list[tuple[str, list[Table]]]:
    """Each section's key and its tables, the section's subtitle as the first table's title
    (when it has none) and its note as the last table's caption."""
    out = []
    for s in doc.sections:
        tables = list(s.tables)
        if tables and s.subtitle and not tables[0].title:
            tables[0] = dataclasses.replace(tables[0], title=s.subtitle)
        if tables and s.note:
            tables[-1] = dataclasses.replace(tables[-1], caption=s.note)
        out.append((s.key, tables))
    return out


# --------------------------------------------------------------------------- terminal


def _print_fitted(console: Console, table: Table) -> None:
    """Print ``table``; when it is wider than the console and has ``×`` columns, print its
    absolute columns, then the key columns with the ``×`` columns."""
    shown = to_rich(table)
    natural = console.measure(shown, options=console.options.update_width(10**4)).maximum
    relative = [i for i, h in enumerate(table.headers) if h.endswith(" ×")]
    if natural <= console.width or not relative:
        console.print(shown)
        return
    keys = [i for i, numeric in enumerate(table.numeric) if not numeric and i < relative[0]]
    absolute = [i for i in range(len(table.headers)) if i not in relative]
    first = table.select(absolute)
    first.caption = ""
    console.print(to_rich(first))
    console.print(to_rich(table.select(keys + relative, title="Relative (×) columns")))


def to_terminal(doc: Document, console: Console) -> None:
    """Print the document: title and machine line, conventions, banner, then each section's
    tables and lines (charts and the appendix are for files)."""
    from rich.markup import escape

    def rich_escape(text: str, limit: int = MAX_LINE_CHARS) -> str:
        return escape(clean_text(text, limit))  # text from files: no controls, no markup

    console.print(
        f"[bold]{rich_escape(doc.title, MAX_TITLE_CHARS)}[/]  [dim]{rich_escape(doc.meta)}[/]"
    )
    if doc.roofs:
        console.print(f"[dim]{rich_escape(doc.roofs)}[/]")
    if doc.conventions:
        console.print(f"[dim]{rich_escape(doc.conventions)}[/]")
    if doc.banner:
        head, text = doc.banner
        console.print(f"[bold red]{rich_escape(head)}:[/] {rich_escape(text)}")
    if doc.empty:
        console.print("No results.")
    for s, (_, tables) in zip(doc.sections, _framed(doc), strict=True):
        if s.appendix:
            continue
        for table in tables:
            _print_fitted(console, table)
        for line in s.lines:
            console.print(f"[red]{rich_escape(line)}[/]")


# --------------------------------------------------------------------------- Markdown


def to_markdown(
    doc: Document, chart_paths: Mapping[str, str] | None = None, *, level: int = 1
) -> str:
    """GitHub-flavoured Markdown: the title at heading ``level``, sections one level below,
    titled tables one more; ``chart_paths`` (chart name -> path relative to the Markdown
    file) are referenced as images, other charts left out."""
    h = "#" * level
    paths: Mapping[str, str] = chart_paths or {}
    out = [f"{h} {md_escape(doc.title)}", ""]
    if doc.meta:
        out += [md_escape(doc.meta), ""]
    if doc.roofs:
        out += [md_escape(doc.roofs), ""]
    if doc.conventions:
        out += [f"_{md_escape(doc.conventions)}_", ""]
    if doc.banner:
        out += [f"> **{md_escape(doc.banner[0])}**: {md_escape(doc.banner[1])}", ""]
    if doc.empty:
        out += ["No results.", ""]
    for s in doc.sections:
        charts = [n for n in s.charts if n in paths]
        if not (s.tables or s.lines or charts):
            continue
        if s.title:
            out += [f"{h}# {md_escape(s.title)}", ""]
        if s.subtitle:
            out += [md_escape(s.subtitle), ""]
        for table in s.tables:
            if table.title:
                out += [f"{h}## {md_escape(table.title)}", ""]
            out += table_markdown(dataclasses.replace(table, title="")) + [""]
        for name in charts:
            spec = CHARTS.get(name)
            out += [f"![{md_escape(spec.title if spec else name)}]({paths[name]})", ""]
            out += [md_escape(spec.description), ""] if spec else []
        if s.note:
            out += [md_escape(s.note), ""]
        if s.lines:
            out += [f"- {md_escape(line)}" for line in s.lines] + [""]
    if doc.footer:
        out += [f"_{md_escape(doc.footer)}_", ""]
    return "\n".join(out)


# --------------------------------------------------------------------------- HTML


_CSS = """
:root{--ink:#1f2328;--muted:#6b7280;--line:#e5e7eb;--base:#fff7dc}
*{box-sizing:border-box}
body{margin:0;background:#f4f5f7;color:var(--ink);
font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1240px;margin:0 auto;padding:24px 24px 48px}
h1{font-size:24px;margin:0 0 4px}
h2{font-size:18px;margin:28px 0 10px}
h3{font-size:14px;margin:0 0 8px}
.meta,.conv,.note{color:var(--muted);margin:2px 0}
.conv{font-size:13px}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:14px 16px;
overflow-x:auto}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;font-size:13px}
th,td{padding:5px 9px;border-bottom:1px solid var(--line);white-space:nowrap;text-align:left}
th{font-size:12px;color:var(--muted);font-weight:600;border-bottom:2px solid var(--line);
white-space:normal;vertical-align:bottom}
caption{caption-side:bottom;text-align:left;color:var(--muted);font-size:13px;padding-top:8px}
table.environment td{white-space:normal;overflow-wrap:anywhere;max-width:70ch}
.num{text-align:right}
tr.baseline td{background:var(--base);font-weight:600}
.banner{background:#fef2f2;border:1px solid #fecaca;color:#991b1b;padding:8px 12px;
border-radius:6px;margin:12px 0}
.fail{color:#b91c1c}
.charts{display:flex;flex-direction:column;gap:16px}
figure{margin:0}
figure svg{display:block;max-width:100%;height:auto;margin:0 auto}
figcaption{color:var(--muted);font-size:13px;max-width:90ch;margin:6px auto 0}
.grid{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
.grid>.card{flex:0 1 auto}
footer{color:var(--muted);font-size:12px;margin-top:32px}
"""


def _card(table: Table, css_class: str) -> str:
    title = f"<h3>{escape(table.title)}</h3>" if table.title else ""
    return f'<div class="card">{title}{table_html(table, css_class)}</div>'


def to_html(doc: Document) -> str:
    """One self-contained HTML page: inline CSS, tables, the charts' inline SVG; no scripts
    and no external resources. One ``<section id=KEY>`` per section; a section's tables
    carry its key as their class (``<table class="results">``)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',
        f"<title>{escape(doc.title)}</title><style>{_CSS}</style></head><body><main>",
        f"<header><h1>{escape(doc.title)}</h1>",
        f'<p class="meta">{escape(doc.meta)}</p>' if doc.meta else "",
        f'<p class="meta roofs">{escape(doc.roofs)}</p>' if doc.roofs else "",
        f'<p class="conv">{escape(doc.conventions)}</p></header>',
    ]
    if doc.banner:
        head, text = doc.banner
        parts.append(f'<p class="banner"><b>{escape(head)}</b>: {escape(text)}</p>')
    if doc.empty:
        parts.append("<p>No results.</p>")
    for s in doc.sections:
        parts.append(f'<section id="{escape(s.key)}"><h2>{escape(s.title)}</h2>')
        if s.subtitle:
            parts.append(f'<p class="note">{escape(s.subtitle)}</p>')
        if len(s.tables) > 1:
            parts.append('<div class="grid">')
            parts += [_card(t, s.key) for t in s.tables]
            parts.append("</div>")
        elif s.tables:
            parts.append(_card(s.tables[0], s.key))
        if s.charts:
            parts.append('<div class="charts">')
            for name in s.charts:
                spec = CHARTS.get(name)
                caption = spec.description if spec else name
                parts.append(
                    f'<figure class="card" id="chart-{escape(name)}">{doc.svgs.get(name, "")}'
                    f"<figcaption>{escape(caption)}</figcaption></figure>"
                )
            parts.append("</div>")
        if s.note:
            parts.append(f'<p class="note">{escape(s.note)}</p>')
        parts += [f'<p class="fail">{escape(line)}</p>' for line in s.lines]
        parts.append("</section>")
    if doc.footer:
        parts.append(f"<footer>{escape(doc.footer)}</footer>")
    parts.append("</main></body></html>\n")
    return "\n".join(p for p in parts if p)
