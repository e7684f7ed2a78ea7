"""Charts of a run as hand-written SVG strings (no plotting library).

Each chart is a pure function of a list of :class:`~cnnbench.results.Result` and returns a
standalone SVG document (``xmlns`` set, so it can be written to a ``.svg`` file or inlined in
HTML), or ``None`` when the chart does not apply (no runtime data, no stages, no SE blocks).

* ``latency-macs``: median latency per image (ms) against GMACs per image, one point per
  ``ok`` row, with the Pareto front (fewer MACs and lower latency are both better).
* ``stages``: for each model, each stage's share of the stages' MACs next to its share of
  the stages' time (MACs only when no stage was timed).
* ``se``: parameters inside SE blocks per stage, for the models that have SE blocks.
* ``accuracy-cost``: cited top-1 (from the zoo's metadata) against measured latency (CI error
  bars) and against MACs, Pareto front marked, for rows of zoo models that have a cited value.
* ``roofline``: per-layer intensity against achieved GFLOP/s with the measured roofs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any, NamedTuple

from cnnbench.report import format as fmt
from cnnbench.report.format import config_label, varying_config
from cnnbench.report.time_goes import partition
from cnnbench.results import LayerCost, Result

__all__ = [
    "CHARTS",
    "ChartSpec",
    "accuracy_vs_cost_svg",
    "PALETTE",
    "all_charts",
    "latency_vs_macs_svg",
    "pareto_front",
    "roofline_svg",
    "se_overhead_svg",
    "stage_bars_svg",
    "stage_results",
]

#: Okabe-Ito colours (colour-blind safe), one per model in order of appearance.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
_FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
_INK, _GRID, _MUTED = "#1f2328", "#e5e7eb", "#6b7280"
_MACS_COLOR, _TIME_COLOR = "#0072B2", "#E69F00"


def _model_colors(results: Sequence[Result]) -> dict[str, str]:
    models = list(dict.fromkeys(r.model for r in results))
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(models)}


def stage_results(results: Sequence[Result]) -> list[Result]:
    """One result per model that has stages: its first row with stage times, else its first
    row with stages. Models keep their order of appearance."""
    chosen: dict[str, Result] = {}
    for r in results:
        if not r.stages:
            continue
        timed = any(s.time_ms is not None for s in r.stages)
        old = chosen.get(r.model)
        if old is None or (timed and not any(s.time_ms is not None for s in old.stages)):
            chosen[r.model] = r
    return list(chosen.values())


# --------------------------------------------------------------------------- pareto


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated points when both coordinates are to be minimised, sorted
    by x then y. A point is dominated when another is no worse in both and better in one;
    identical points do not dominate each other."""
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any(
            qx <= x and qy <= y and (qx < x or qy < y)
            for j, (qx, qy) in enumerate(points)
            if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (points[i][0], points[i][1]))


# --------------------------------------------------------------------------- svg helpers


def _num(v: float) -> str:
    """A tick label: 3 significant digits, no trailing zeros."""
    if v == 0:
        return "0"
    return f"{v:.3g}" if abs(v) < 1e3 else f"{v:,.0f}"


def _nice_step(span: float, target: int = 5) -> float:
    raw = span / max(target, 1)
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


@dataclass
class _Axis:
    """Maps data values in [lo, hi] (linear or log10) to pixels in [p0, p1]."""

    lo: float
    hi: float
    log: bool
    p0: float
    p1: float

    def pos(self, v: float) -> float:
        if self.log:
            t = (math.log10(v) - math.log10(self.lo)) / (math.log10(self.hi) - math.log10(self.lo))
        else:
            t = (v - self.lo) / (self.hi - self.lo)
        return self.p0 + t * (self.p1 - self.p0)

    def ticks(self) -> list[float]:
        if not self.log:
            step = _nice_step(self.hi - self.lo)
            n = int(round((self.hi - self.lo) / step))
            return [self.lo + k * step for k in range(n + 1)]
        for mantissas in ((1,), (1, 2, 5), (1, 2, 3, 4, 5, 6, 7, 8, 9)):
            ticks = [
                m * 10.0**e
                for e in range(math.floor(math.log10(self.lo)), math.ceil(math.log10(self.hi)) + 1)
                for m in mantissas
                if self.lo <= m * 10.0**e <= self.hi
            ]
            if len(ticks) >= 3:
                return ticks
        return ticks


def _axis(values: Sequence[float], p0: float, p1: float, *, log_ok: bool = True) -> _Axis:
    """A log axis when allowed and all values are positive and span more than 20x, else a
    linear axis from 0 to a round number above the largest value."""
    lo, hi = min(values), max(values)
    if log_ok and lo > 0 and hi / lo > 20:
        return _Axis(lo / 1.6, hi * 1.6, True, p0, p1)
    if hi <= 0:
        hi = 1.0
    step = _nice_step(hi * 1.05)
    return _Axis(0.0, math.ceil(hi * 1.05 / step) * step, False, p0, p1)


def _svg(width: int, height: int, title: str, body: list[str]) -> str:
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="{_FONT}" font-size="12" '
            f'fill="{_INK}" role="img">',
            f"<title>{escape(title)}</title>",
            f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
            f'<text x="{width / 2:.1f}" y="24" text-anchor="middle" font-size="16" '
            f'font-weight="600">{escape(title)}</text>',
            *body,
            "</svg>",
            "",
        ]
    )


def _text(x: float, y: float, s: str, **attrs: str | float) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{v}"' for k, v in attrs.items())
    return f'<text x="{x:.1f}" y="{y:.1f}"{extra}>{escape(s)}</text>'


def _frame(xa: _Axis, ya: _Axis, xlabel: str, ylabel: str, *, xticks: bool = True) -> list[str]:
    """Grid lines, tick labels and axis titles of a plot area."""
    out = []
    left, right, bottom, top = xa.p0, xa.p1, ya.p0, ya.p1
    for t in ya.ticks():
        y = ya.pos(t)
        out.append(
            f'<line x1="{left:.1f}" y1="{y:.1f}" x2="{right:.1f}" y2="{y:.1f}" stroke="{_GRID}"/>'
        )
        out.append(_text(left - 6, y + 4, _num(t), text_anchor="end", fill=_MUTED))
    if xticks:
        for t in xa.ticks():
            x = xa.pos(t)
            out.append(
                f'<line x1="{x:.1f}" y1="{top:.1f}" x2="{x:.1f}" y2="{bottom:.1f}" '
                f'stroke="{_GRID}"/>'
            )
            out.append(_text(x, bottom + 16, _num(t), text_anchor="middle", fill=_MUTED))
    out.append(
        f'<rect x="{left:.1f}" y="{top:.1f}" width="{right - left:.1f}" '
        f'height="{bottom - top:.1f}" fill="none" stroke="#9ca3af"/>'
    )
    out.append(_text((left + right) / 2, bottom + 36, xlabel, text_anchor="middle", font_size=13))
    cy = (top + bottom) / 2
    out.append(
        f'<text x="{left - 48:.1f}" y="{cy:.1f}" text-anchor="middle" font-size="13" '
        f'transform="rotate(-90 {left - 48:.1f} {cy:.1f})">{escape(ylabel)}</text>'
    )
    return out


def _legend(x: float, y: float, items: Sequence[tuple[str, str]]) -> list[str]:
    """A one-line legend of (colour, label) swatches starting at (x, y)."""
    out = []
    for color, label in items:
        out.append(
            f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="11" height="11" rx="2" fill="{color}"/>'
        )
        out.append(_text(x + 16, y, label))
        x += 30 + 6.8 * len(label)
    return out


# --------------------------------------------------------------------------- charts


def _per_image_ms(r: Result) -> float | None:
    if r.latency_ms_median is None:
        return None
    return r.latency_ms_median / (r.effective_batch_size or r.batch_size or 1)


def _point_label(
    px: float,
    ty: float,
    label: str,
    right_edge: float,
    placed: list[tuple[float, float, float]],
    *,
    bold: bool,
    char_w: float = 7.0,
    line: float = 14,
    font_size: float | None = None,
) -> str:
    """A point's label: right of the point when it fits before ``right_edge``, else left of
    it, nudged down past the labels already ``placed`` (which it joins)."""
    w = char_w * len(label)
    right = px + 10 + w < right_edge
    x0 = px + 10 if right else px - 10 - w
    for _ in range(8):
        if not any(x0 < b1 and b0 < x0 + w and abs(ty - by) < line for b0, b1, by in placed):
            break
        ty += line
    placed.append((x0, x0 + w, ty))
    extra: dict[str, str | float] = {} if font_size is None else {"font_size": font_size}
    return _text(
        px + 10 if right else px - 10,
        ty,
        label,
        text_anchor="start" if right else "end",
        font_weight="600" if bold else "400",
        **extra,
    )


def latency_vs_macs_svg(results: Sequence[Result]) -> str | None:
    """Scatter of median latency per image (ms) against GMACs per image, with the Pareto
    front highlighted; None when no ``ok`` row has both MACs and a latency."""
    rows = [r for r in results if r.status == "ok" and r.macs and _per_image_ms(r)]
    if not rows:
        return None
    xs = [(r.macs or 0) / 1e9 for r in rows]
    ys = [_per_image_ms(r) or 0.0 for r in rows]
    width, height = 880, 500
    xa = _axis(xs, 80, width - 30)
    ya = _axis(ys, height - 70, 70)
    body = _frame(
        xa,
        ya,
        "GMACs per image" + (" (log scale)" if xa.log else ""),
        "Latency per image (ms)" + (" (log)" if ya.log else ""),
    )
    body.append(
        _text(
            width / 2,
            44,
            "median batch latency / batch size, bars: its 95% CI; lower-left is better",
            text_anchor="middle",
            fill=_MUTED,
        )
    )
    front = pareto_front(list(zip(xs, ys, strict=True)))
    pts = [(xa.pos(x), ya.pos(y)) for x, y in zip(xs, ys, strict=True)]
    if len(front) > 1:
        d = f"M{pts[front[0]][0]:.1f},{pts[front[0]][1]:.1f}"
        for i in front[1:]:
            d += f" H{pts[i][0]:.1f} V{pts[i][1]:.1f}"
        body.append(
            f'<path d="{d}" fill="none" stroke="#D55E00" stroke-width="2" stroke-dasharray="6 4"/>'
        )
    colors = _model_colors(rows)
    vary = varying_config(rows)
    placed: list[tuple[float, float, float]] = []  # label boxes: x0, x1, baseline y
    order = sorted(range(len(rows)), key=lambda i: pts[i][1])
    for i in order:
        r, (px, py) = rows[i], pts[i]
        on_front = i in front
        label = r.model + (f" ({config_label(r, vary)})" if vary else "")
        if r.latency_ms_ci_low is not None and r.latency_ms_ci_high is not None:
            # error bar: the 95% CI of the median, per image like the point
            per = r.effective_batch_size or r.batch_size or 1
            lo = ya.pos(max(r.latency_ms_ci_low / per, 1e-12))
            hi = ya.pos(r.latency_ms_ci_high / per)
            body.append(
                f'<path class="errorbar" d="M{px:.1f},{lo:.1f} V{hi:.1f} M{px - 4:.1f},{lo:.1f} '
                f'H{px + 4:.1f} M{px - 4:.1f},{hi:.1f} H{px + 4:.1f}" stroke="{_INK}" '
                'stroke-width="1.2" fill="none"/>'
            )
        body.append(
            f'<circle class="{"point pareto" if on_front else "point"}" '
            f'cx="{px:.1f}" cy="{py:.1f}" r="{7 if on_front else 5}" '
            f'fill="{colors[r.model]}" stroke="{"#D55E00" if on_front else "#ffffff"}" '
            f'stroke-width="{2.5 if on_front else 1}"><title>{escape(label)}: '
            f"{fmt.macs(xs[i] * 1e9)}, {fmt.ms(ys[i])}/image</title></circle>"
        )
        body.append(_point_label(px, py + 4, label, xa.p1, placed, bold=on_front))
    lx = xa.p1 - 250
    body += [
        f'<line x1="{lx:.1f}" y1="58" x2="{lx + 26:.1f}" y2="58" stroke="#D55E00" '
        'stroke-width="2" stroke-dasharray="6 4"/>',
        f'<circle cx="{lx + 13:.1f}" cy="58" r="5" fill="#ffffff" stroke="#D55E00" '
        'stroke-width="2.5"/>',
        _text(lx + 34, 62, "Pareto front (non-dominated)"),
    ]
    return _svg(width, height, "Latency vs MACs", body)


def _bar_panel(
    x0: float,
    y0: float,
    w: float,
    h: float,
    title: str,
    groups: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    ylabel: str,
    *,
    bar_labels: Sequence[Sequence[str]] | None = None,
) -> list[str]:
    """Grouped vertical bars: one group per name in ``groups``, one bar per series."""
    values = [v for _, vs in series for v in vs if v is not None]
    xa = _Axis(0, len(groups), False, x0 + 70, x0 + w - 10)
    slot = (w - 80) / max(len(groups), 1)  # pixels per group
    rotate = len(groups) > 6 or max((len(g) for g in groups), default=0) * 6.5 > slot
    ya = _axis(values or [1.0], y0 + h - (60 if rotate else 30), y0 + 30, log_ok=False)
    body = [
        _text(x0 + w / 2, y0 + 16, title, text_anchor="middle", font_size=13, font_weight="600")
    ]
    body += _frame(xa, ya, "", ylabel, xticks=False)
    gw = (xa.p1 - xa.p0) / max(len(groups), 1)
    bw = min(gw * 0.8 / max(len(series), 1), 28)
    for gi, name in enumerate(groups):
        gx = xa.p0 + gi * gw + gw / 2
        start = gx - bw * len(series) / 2
        for si, (color, vs) in enumerate(series):
            v = vs[gi]
            if v is None:
                continue
            bx, by = start + si * bw, ya.pos(v)
            body.append(
                f'<rect x="{bx + 1:.1f}" y="{by:.1f}" width="{bw - 2:.1f}" '
                f'height="{ya.p0 - by:.1f}" fill="{color}"><title>{escape(name)}: '
                f"{v:.3g}</title></rect>"
            )
            if bar_labels and bar_labels[si][gi]:
                body.append(
                    _text(
                        bx + bw / 2,
                        by - 4,
                        bar_labels[si][gi],
                        text_anchor="middle",
                        font_size=10,
                        fill=_MUTED,
                    )
                )
        short = name if len(name) <= 14 else name[:13] + "…"
        if rotate:
            ty = ya.p0 + 12
            body.append(
                f'<text x="{gx:.1f}" y="{ty:.1f}" text-anchor="end" '
                f'transform="rotate(-35 {gx:.1f} {ty:.1f})">{escape(short)}</text>'
            )
        else:
            body.append(_text(gx, ya.p0 + 16, short, text_anchor="middle"))
    return body


def _share(values: Sequence[float | None]) -> list[float | None]:
    total = math.fsum(v for v in values if v is not None)
    return [None if v is None or total <= 0 else 100.0 * v / total for v in values]


@dataclass
class _Panel:
    """One small grouped-bar plot: a title, group names, (colour, values) series, y label."""

    title: str
    groups: list[str]
    series: Sequence[tuple[str, Sequence[float | None]]]
    ylabel: str
    bar_labels: list[list[str]] | None = None


def _panel_grid(title: str, legend: Sequence[tuple[str, str]], panels: Sequence[_Panel]) -> str:
    """Panels in a grid (one column for one panel, else two) under a title and a legend."""
    cols = 1 if len(panels) == 1 else 2
    pw, ph = (760 if cols == 1 else 480), 270
    width, height = pw * cols, 64 + ph * math.ceil(len(panels) / cols)
    legend_w = sum(30 + 6.8 * len(label) for _, label in legend)
    body = _legend((width - legend_w) / 2, 48, legend)
    for k, p in enumerate(panels):
        x0, y0 = (k % cols) * pw, 60 + (k // cols) * ph
        body += _bar_panel(
            x0, y0, pw, ph, p.title, p.groups, p.series, p.ylabel, bar_labels=p.bar_labels
        )
    return _svg(width, height, title, body)


def _panel_title(r: Result, vary: Sequence[str]) -> str:
    return r.model + (f" ({config_label(r, vary)})" if vary else "")


def stage_bars_svg(results: Sequence[Result]) -> str | None:
    """Per model, each stage's share of MACs (%) next to its share of time (%); None when no
    result has stages. Shares are of the listed stages' totals."""
    chosen = stage_results(results)
    if not chosen:
        return None
    timed_any = any(s.time_ms is not None for r in chosen for s in r.stages)
    legend = [(_MACS_COLOR, "share of MACs")]
    if timed_any:
        legend.append((_TIME_COLOR, "share of time"))
    vary = varying_config(chosen)
    panels = []
    for r in chosen:
        series: list[tuple[str, Sequence[float | None]]] = [
            (_MACS_COLOR, _share([s.macs for s in r.stages]))
        ]
        if timed_any:
            series.append((_TIME_COLOR, _share([s.time_ms for s in r.stages])))
        names = [s.name for s in r.stages]
        panels.append(_Panel(_panel_title(r, vary), names, series, "share of stages (%)"))
    what = "MACs and time" if timed_any else "MACs"
    return _panel_grid(f"Per-stage share of {what}", legend, panels)


def se_overhead_svg(results: Sequence[Result]) -> str | None:
    """Per model with SE blocks, the parameters inside SE blocks per stage (K or M), each bar
    labelled with its percentage of the stage's parameters; None when no model has SE."""
    chosen = [r for r in stage_results(results) if any(s.se_params for s in r.stages)]
    if not chosen:
        return None
    colors = _model_colors(results)
    vary = varying_config(chosen)
    panels = []
    for r in chosen:
        scale, unit = (1e6, "M") if max(s.se_params for s in r.stages) >= 1e6 else (1e3, "K")
        values = [s.se_params / scale for s in r.stages]
        labels = [
            fmt.pct(s.se_params / s.params) if s.se_params and s.params else "" for s in r.stages
        ]
        panels.append(
            _Panel(
                _panel_title(r, vary),
                [s.name for s in r.stages],
                [(colors[r.model], values)],
                f"SE parameters ({unit})",
                [labels],
            )
        )
    legend = [(_MUTED, "bar labels: SE share of the stage's parameters")]
    return _panel_grid("SE overhead per stage", legend, panels)


def machines_svg(results: Sequence[Result]) -> str | None:
    """Median latency per image of each model on each machine (grouped bars, one colour per
    machine); None unless the results come from several machines."""
    machines = list(dict.fromkeys(r.machine for r in results if r.machine))
    rows = [r for r in results if r.status == "ok" and _per_image_ms(r) and r.machine]
    if len(machines) < 2 or not rows:
        return None
    vary = [f for f in varying_config(rows) if f != "machine"]
    groups = list(
        dict.fromkeys(r.model + (f" ({config_label(r, vary)})" if vary else "") for r in rows)
    )

    def value(group: str, machine: str) -> float | None:
        for r in rows:
            label = r.model + (f" ({config_label(r, vary)})" if vary else "")
            if label == group and r.machine == machine:
                return _per_image_ms(r)
        return None

    series = [
        (PALETTE[i % len(PALETTE)], [value(g, m) for g in groups]) for i, m in enumerate(machines)
    ]
    legend = [(PALETTE[i % len(PALETTE)], m) for i, m in enumerate(machines)]
    panel = _Panel("median latency per image", groups, series, "ms per image")
    return _panel_grid("Latency per model per machine", legend, [panel])


# --------------------------------------------------------------------------- accuracy vs cost


def _cited_top1(r: Result) -> tuple[float, str] | None:
    """(top-1 %, point label) of a row whose model is a zoo model built as registered (its
    parameter count equals the stored one); the cited value evaluated at the row's resolution
    is preferred, else the model's chosen top-1, labelled with the resolution it was
    evaluated at. None for other rows. Accuracy is looked up in the zoo's metadata."""
    from cnnbench.models import UnknownModelError, chosen_top1, get_model_info

    try:
        info = get_model_info(r.model)
    except UnknownModelError:
        return None
    if info.params is None or r.params != info.params:
        return None  # another architecture than the registered one: no cited value applies
    res = r.input_size[-1] if r.input_size else info.input_size[1]
    cited = chosen_top1(info.cited, res)
    if cited is None:
        return None
    at = "" if cited.resolution == res else f" @{cited.resolution}px"
    return cited.value, f"{r.model} ({cited.weights}{at})"


def _accuracy_panel(
    x0: float,
    width: float,
    height: float,
    points: Sequence[tuple[float, float, str, tuple[float, float] | None]],
    xlabel: str,
) -> list[str]:
    """One scatter: cost on x (lower is better), top-1 on y (higher is better), optional
    x error bars, the Pareto front dashed and ringed, each point labelled."""
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    xa = _axis(xs + [hi for p in points if p[3] for hi in p[3]], x0 + 70, x0 + width - 20)
    lo_y, hi_y = min(ys), max(ys)
    pad = max((hi_y - lo_y) * 0.15, 1.0)
    step = _nice_step(hi_y - lo_y + 2 * pad)
    lo_t, hi_t = math.floor((lo_y - pad) / step) * step, math.ceil((hi_y + pad) / step) * step
    ya = _Axis(lo_t, hi_t, False, height - 70, 70)
    body = _frame(xa, ya, xlabel + (" (log scale)" if xa.log else ""), "ImageNet top-1 (%), cited")
    front = pareto_front([(x, -y) for x, y in zip(xs, ys, strict=True)])
    pts = [(xa.pos(x), ya.pos(y)) for x, y in zip(xs, ys, strict=True)]
    if len(front) > 1:
        d = f"M{pts[front[0]][0]:.1f},{pts[front[0]][1]:.1f}"
        for i in front[1:]:
            d += f" H{pts[i][0]:.1f} V{pts[i][1]:.1f}"
        body.append(
            f'<path d="{d}" fill="none" stroke="#D55E00" stroke-width="2" stroke-dasharray="6 4"/>'
        )
    placed: list[tuple[float, float, float]] = []
    for i, (_x, y, label, ci) in enumerate(points):
        px, py = pts[i]
        on_front = i in front
        if ci is not None:
            lo, hi = xa.pos(max(ci[0], 1e-12)), xa.pos(ci[1])
            body.append(
                f'<path class="errorbar" d="M{lo:.1f},{py:.1f} H{hi:.1f} M{lo:.1f},{py - 4:.1f} '
                f'V{py + 4:.1f} M{hi:.1f},{py - 4:.1f} V{py + 4:.1f}" stroke="{_INK}" '
                'stroke-width="1.2" fill="none"/>'
            )
        body.append(
            f'<circle class="{"point pareto" if on_front else "point"}" cx="{px:.1f}" '
            f'cy="{py:.1f}" r="{7 if on_front else 5}" fill="{PALETTE[i % len(PALETTE)]}" '
            f'stroke="{"#D55E00" if on_front else "#ffffff"}" '
            f'stroke-width="{2.5 if on_front else 1}"><title>{escape(label)}: {y:g}% top-1'
            "</title></circle>"
        )
        body.append(
            _point_label(
                px, py - 8, label, xa.p1, placed, bold=on_front, char_w=6.2, line=13, font_size=11
            )
        )
    return body


def accuracy_vs_cost_svg(results: Sequence[Result]) -> str | None:
    """Cited top-1 against median latency per image (with its 95% CI as error bars) and
    against GMACs per image, one point per ``ok`` row of a zoo model with a cited value, each
    labelled with the weights the accuracy belongs to; the Pareto front (less cost, more
    accuracy) is marked. None when fewer than two rows have a cited top-1."""
    rows = [(r, c) for r in results if r.status == "ok" and (c := _cited_top1(r))]
    if len(rows) < 2:
        return None
    macs_pts = [(r.macs / 1e9, c[0], c[1], None) for r, c in rows if r.macs]
    lat_pts = []
    for r, c in rows:
        per_image = _per_image_ms(r)
        if per_image is None:
            continue
        per = r.effective_batch_size or r.batch_size or 1
        ci = None
        if r.latency_ms_ci_low is not None and r.latency_ms_ci_high is not None:
            ci = (r.latency_ms_ci_low / per, r.latency_ms_ci_high / per)
        lat_pts.append((per_image, c[0], c[1], ci))
    panels = [(p, label) for p, label in ((lat_pts, "Latency per image (ms)"),
                                          (macs_pts, "GMACs per image")) if len(p) >= 2]  # fmt: skip
    if not panels:
        return None
    pw, height = 560, 520
    body = [
        _text(
            pw * len(panels) / 2,
            44,
            "top-1: cited (weights and evaluation size in the label), never measured; "
            "upper-left is better; dashed: Pareto front",
            text_anchor="middle",
            fill=_MUTED,
        )
    ]
    for k, (points, label) in enumerate(panels):
        body += _accuracy_panel(k * pw, pw, height, points, label)
    return _svg(pw * len(panels), height, "Cited accuracy vs measured cost", body)


# --------------------------------------------------------------------------- roofline


def _roofline_rows(r: Result) -> list[LayerCost]:
    return [
        layer
        for layer in partition(r.layers)
        if layer.intensity and layer.gflops_achieved and layer.time_ms and layer.time_ms > 0
    ]


def _roofline_xy(layer: LayerCost) -> tuple[float, float]:
    """(intensity, achieved GFLOP/s) of a row from :func:`_roofline_rows` (both set)."""
    assert layer.intensity is not None and layer.gflops_achieved is not None
    return layer.intensity, layer.gflops_achieved


def roofline_svg(results: Sequence[Result], roofs: Mapping[str, Any] | None = None) -> str | None:
    """Log-log arithmetic intensity (FLOP/byte) against achieved GFLOP/s, one point per layer
    row of the finest partition (area proportional to its time), with the measured roofs:
    ``roofs`` is a run's environment (``peak_gflops`` per dtype, ``bandwidth_gbps`` per
    working-set size); without it only the rows' ``peak_gflops`` is drawn. None when no row
    has per-layer time."""
    chosen = [(r, rows) for r in results if (rows := _roofline_rows(r))]
    if not chosen:
        return None
    peaks: dict[str, float] = {}
    bandwidth: dict[int, float] = {}
    if roofs is not None:
        peaks = {str(k): float(v) for k, v in roofs.get("peak_gflops", {}).items()}
        bandwidth = {int(k): float(v) for k, v in roofs.get("bandwidth_gbps", {}).items()}
    for r, _ in chosen:
        if r.peak_gflops and not peaks:
            peaks[r.autocast_dtype or r.precision] = r.peak_gflops
    points = [_roofline_xy(layer) for _, rows in chosen for layer in rows]
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    top = max([*ys, *peaks.values()])
    width, height = 880, 540
    xa = _Axis(min(xs) / 3, max(xs) * 3, True, 80, width - 170)
    ya = _Axis(min(ys) / 3, top * 3, True, height - 70, 70)
    body = _frame(xa, ya, "Arithmetic intensity (FLOP per byte, log)", "Achieved GFLOP/s (log)")
    body.append(
        _text(
            width / 2,
            44,
            "one point per layer, area ~ its time; lines: this machine's measured roofs",
            text_anchor="middle",
            fill=_MUTED,
        )
    )
    peak_top = max(peaks.values()) if peaks else top
    for name, gflops in sorted(peaks.items(), key=lambda kv: -kv[1]):
        y = ya.pos(gflops)
        body.append(
            f'<line class="roof compute" x1="{xa.p0:.1f}" y1="{y:.1f}" x2="{xa.p1:.1f}" '
            f'y2="{y:.1f}" stroke="{_INK}" stroke-width="1.5"/>'
        )
        body.append(_text(xa.p1 + 6, y + 4, f"{name} peak {_num(gflops)}", font_size=11))
    for k, (size, gbps) in enumerate(sorted(bandwidth.items())):
        # y = gbps * x, from the left edge until it meets the highest compute roof
        x0, x1 = xa.lo, min(xa.hi, peak_top / gbps)
        if x1 <= x0:
            continue
        y0, y1 = gbps * x0, gbps * x1
        if y1 < ya.lo:
            continue
        if y0 < ya.lo:
            x0, y0 = ya.lo / gbps, ya.lo
        color = PALETTE[(k + 4) % len(PALETTE)]
        body.append(
            f'<line class="roof bandwidth" x1="{xa.pos(x0):.1f}" y1="{ya.pos(y0):.1f}" '
            f'x2="{xa.pos(x1):.1f}" y2="{ya.pos(y1):.1f}" stroke="{color}" '
            'stroke-width="1.2" stroke-dasharray="5 3"/>'
        )
        body.append(
            _text(
                xa.p1 + 6,
                ya.pos(min(y1, ya.hi)) + 16 + 12 * k,
                f"{fmt.nbytes(size)}: {_num(gbps)} GB/s",
                font_size=11,
                fill=color,
            )
        )
    colors = _model_colors([r for r, _ in chosen])
    total = max(sum(layer.time_ms or 0.0 for layer in rows) for _, rows in chosen)
    for r, rows in chosen:
        for rank, layer in enumerate(sorted(rows, key=lambda layer: -(layer.time_ms or 0.0))):
            radius = 3 + 22 * math.sqrt((layer.time_ms or 0.0) / total)
            intensity, achieved = _roofline_xy(layer)
            if rank < 6:  # name the slowest rows
                body.append(
                    _text(
                        xa.pos(intensity) + radius + 3,
                        ya.pos(achieved) + 4,
                        layer.name,
                        font_size=11,
                    )
                )
            body.append(
                f'<circle class="point" cx="{xa.pos(intensity):.1f}" '
                f'cy="{ya.pos(achieved):.1f}" r="{radius:.1f}" '
                f'fill="{colors[r.model]}" fill-opacity="0.55" stroke="#ffffff">'
                f"<title>{escape(r.model)} {escape(layer.name)} ({escape(layer.type)}): "
                f"{fmt.ms(layer.time_ms)}, {_num(intensity)} FLOP/B, "
                f"{_num(achieved)} GFLOP/s, {escape(layer.bound or '')}"
                "</title></circle>"
            )
    if len(colors) > 1:
        body += _legend(xa.p0, height - 14, [(c, m) for m, c in colors.items()])
    return _svg(width, height, "Roofline", body)


class ChartSpec(NamedTuple):
    """A chart: short title (image alt text), one-paragraph description, renderer; with
    ``environment``, the renderer also receives the run's environment (e.g. its roofs)."""

    title: str
    description: str
    render: Callable[..., str | None]
    environment: bool = False


#: Chart name (used in file names: ``<run>-<name>.svg``) -> spec, in report order.
CHARTS: dict[str, ChartSpec] = {
    "latency-macs": ChartSpec(
        "Latency vs MACs with the Pareto front",
        "One point per successful row: GMACs per image against median latency per image "
        "(batch latency / batch size); lower-left is better. Ringed points joined by the "
        "dashed line form the Pareto front: no other row has both fewer MACs and lower latency.",
        latency_vs_macs_svg,
    ),
    "stages": ChartSpec(
        "Per-stage share of MACs and time",
        "Each stage's share of the stages' MACs next to its share of their measured time. A "
        "stage whose time share exceeds its MAC share runs below the model's average "
        "efficiency.",
        stage_bars_svg,
    ),
    "machines": ChartSpec(
        "Latency per model per machine",
        "Median latency per image of each model on each machine of a merged run; compare "
        "machines per model, and models only within one machine.",
        machines_svg,
    ),
    "accuracy-cost": ChartSpec(
        "Cited top-1 vs measured latency and MACs",
        "Each zoo model's cited ImageNet top-1 (published, not measured; the label names the "
        "weights, and the evaluation size when it differs from the measured one) against its "
        "measured median latency per image, with the 95% CI as error bars, and against GMACs "
        "per image. Ringed points on the dashed line form the Pareto front: no other model is "
        "both cheaper and more accurate.",
        accuracy_vs_cost_svg,
    ),
    "roofline": ChartSpec(
        "Roofline",
        "Each layer's arithmetic intensity (FLOPs per byte of its traffic lower bound) against "
        "the GFLOP/s it reached, on log scales; point area is its time. Horizontal lines are "
        "the measured compute peaks, dashed diagonals the measured bandwidth per working-set "
        "size: a point far below both roofs is held back by neither compute nor bandwidth "
        "(overhead, a poor kernel).",
        roofline_svg,
        environment=True,
    ),
    "se": ChartSpec(
        "SE overhead per stage",
        "Parameters inside squeeze-and-excitation blocks per stage; the label above each bar "
        "is their share of that stage's parameters.",
        se_overhead_svg,
    ),
}


def all_charts(
    results: Sequence[Result], environment: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """Every chart that applies to ``results``: name -> SVG text, in :data:`CHARTS` order;
    ``environment`` is the run's (the roofline draws its measured roofs)."""
    out = {}
    for name, spec in CHARTS.items():
        svg = spec.render(results, environment) if spec.environment else spec.render(results)
        if svg:
            out[name] = svg
    return out
