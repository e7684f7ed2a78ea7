"""The one table model every human renderer consumes.

A :class:`Table` holds already-formatted cells (through :mod:`cnnbench.report.format`), which
columns are numeric, and which rows are marked (a baseline, a total). The terminal (rich),
Markdown and HTML renderers below are the only places that turn a table into text, so the
zoo listing, stage tables, counter comparisons, claims, run reports and the gate's verdicts
all look alike. CSV and JSON are written from the result records, not from display tables.

Text from files (model names, claim texts, notes) is data: :func:`clean_text` removes
control characters and terminal escape sequences from every cell, title and caption, and cuts
a cell to :data:`MAX_CELL_CHARS`. Markdown cells are escaped (``|``, ``[``/``]``, HTML special
characters and line breaks), so text from user files cannot inject markup, links or images;
HTML cells are escaped the same way.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "Table",
    "to_rich",
    "to_markdown",
    "to_html",
    "md_escape",
    "clean_text",
    "MAX_CELL_CHARS",
    "MAX_LINE_CHARS",
    "MAX_TITLE_CHARS",
]

#: The longest text a table cell shows; a longer one (a 100 KB model name) is cut with "…".
MAX_CELL_CHARS = 200
#: The same for a table's title, and for a line of text (caption, note, Markdown line).
MAX_TITLE_CHARS = 300
MAX_LINE_CHARS = 2000

# An escape sequence (CSI, OSC, ...) as a whole, then any remaining C0/C1 control character
# (tab and line breaks included: a cell is one line), DEL, and the bidirectional overrides
# that make text read differently from what it is.
_ESCAPE_SEQUENCE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, clear screen, cursor moves
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: window title, clipboard, hyperlinks
    r"|\x1b[P^_X][^\x1b]*(?:\x1b\\)?"  # DCS, PM, APC, SOS strings
    r"|\x1b."  # any other two-character escape
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def clean_text(text: object, limit: int | None = None) -> str:
    """``text`` safe to show: escape sequences removed whole, other control characters
    replaced by a space (``\\t``, ``\\n`` too), and cut to ``limit`` characters with "…"."""
    out = str(text)
    if any(ch < " " or "\x7f" <= ch <= "\x9f" or "\u202a" <= ch <= "\u2069" for ch in out):
        out = _CONTROL.sub(" ", _ESCAPE_SEQUENCE.sub("", out))
    if limit is not None and len(out) > limit:
        out = out[: limit - 1] + "…"
    return out


@dataclass
class Table:
    """A display table: ``headers``, ``numeric`` (right-aligned) flags, rows of text cells,
    a per-row mark (``"baseline"``, ``"total"`` or ``""``) and a per-row style for terminals
    (a rich style such as ``"red"``), with an optional title and caption."""

    headers: list[str]
    numeric: list[bool]
    title: str = ""
    caption: str = ""
    rows: list[list[str]] = field(default_factory=list)
    marks: list[str] = field(default_factory=list)
    styles: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.title = clean_text(self.title, MAX_TITLE_CHARS)
        self.caption = clean_text(self.caption, MAX_LINE_CHARS)

    @classmethod
    def of(cls, title: str, *columns: str, text: Sequence[int] = (0,), caption: str = "") -> Table:
        """A table whose columns are numeric except those at the indices in ``text``."""
        return cls(list(columns), [i not in text for i in range(len(columns))], title, caption)

    def add(self, cells: Sequence[str], *, mark: str = "", style: str = "") -> None:
        if len(cells) != len(self.headers):
            raise ValueError(f"row has {len(cells)} cells, the table {len(self.headers)} columns")
        self.rows.append([clean_text(c, MAX_CELL_CHARS) for c in cells])
        self.marks.append(mark)
        self.styles.append(style)

    def select(self, columns: Sequence[int], title: str | None = None) -> Table:
        """A copy with only the given columns (and optionally another title)."""
        out = Table(
            [self.headers[i] for i in columns],
            [self.numeric[i] for i in columns],
            self.title if title is None else title,
            self.caption,
        )
        for cells, mark, style in zip(self.rows, self.marks, self.styles, strict=True):
            out.add([cells[i] for i in columns], mark=mark, style=style)
        return out


_RICH_MARK_STYLE = {"baseline": "bold cyan", "total": "bold"}


def to_rich(table: Table):  # -> rich.table.Table (rich is imported on first use)
    """A rich Table: numbers right-aligned, marked rows bold; cell text is never markup."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table as RichTable
    from rich.text import Text

    out = RichTable(
        title=escape(table.title) if table.title else None,
        caption=escape(table.caption) if table.caption else None,
        box=box.SIMPLE_HEAD,
        title_justify="left",
        caption_justify="left",
        pad_edge=False,
    )
    for header, num in zip(table.headers, table.numeric, strict=True):
        out.add_column(escape(header), justify="right" if num else "left", overflow="fold")
    for cells, mark, style in zip(table.rows, table.marks, table.styles, strict=True):
        out.add_row(*map(Text, cells), style=style or _RICH_MARK_STYLE.get(mark))
    return out


def md_escape(text: str) -> str:
    """Text safe inside a Markdown table cell or line: no control characters, pipes, tags,
    line breaks, links or images (``[`` and ``]`` escaped, so ``[x](url)`` and ``![x](url)``
    stay text)."""
    escaped = html.escape(clean_text(text, MAX_LINE_CHARS), quote=False)
    return escaped.replace("|", "\\|").replace("[", "\\[").replace("]", "\\]")


def to_markdown(table: Table) -> list[str]:
    """GitHub-flavoured Markdown lines (title as a bold line, caption in italics below)."""
    lines = [f"**{md_escape(table.title)}**", ""] if table.title else []
    lines += [
        "| " + " | ".join(md_escape(h) for h in table.headers) + " |",
        "|" + "|".join("---:" if n else ":---" for n in table.numeric) + "|",
    ]
    for cells, mark in zip(table.rows, table.marks, strict=True):
        text = [md_escape(c) for c in cells]
        if mark:
            text = [f"**{c}**" if c and c != "—" else c for c in text]
        lines.append("| " + " | ".join(text) + " |")
    if table.caption:
        lines += ["", f"_{md_escape(table.caption)}_"]
    return lines


def to_html(table: Table, css_class: str = "") -> str:
    """An HTML table; marked rows get the mark as their class."""
    head = "".join(
        f'<th class="num">{html.escape(h)}</th>' if n else f"<th>{html.escape(h)}</th>"
        for h, n in zip(table.headers, table.numeric, strict=True)
    )
    body = []
    for cells, mark in zip(table.rows, table.marks, strict=True):
        tds = "".join(
            f'<td class="num">{html.escape(c)}</td>' if n else f"<td>{html.escape(c)}</td>"
            for c, n in zip(cells, table.numeric, strict=True)
        )
        body.append(f'<tr class="{mark}">{tds}</tr>' if mark else f"<tr>{tds}</tr>")
    caption = f"<caption>{html.escape(table.caption)}</caption>" if table.caption else ""
    return (
        f'<table class="{css_class}">{caption}<thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )
