"""Reports are pure functions of a hand-built Run: tables, CSV, Markdown, JSON, HTML, charts."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

from cnnbench.errors import UsageError
from cnnbench.report import charts
from cnnbench.report import files as reporting
from cnnbench.results import (
    ENVIRONMENT_COLUMNS,
    Result,
    Run,
    SchemaError,
    StageCost,
    atomic_write_text,
    load_run,
)

SVG_NS = "{http://www.w3.org/2000/svg}"


def _stages(times: list[float] | None, se: list[int] | None = None) -> list[StageCost]:
    """Four stages: MACs 1, 2, 3, 4 G; params 1, 2, 3, 4 M; optional times and SE params."""
    return [
        StageCost(
            name=f"stage{i + 1}",
            blocks=i + 1,
            out_channels=64 * 2**i,
            params=(i + 1) * 1_000_000,
            macs=(i + 1) * 1_000_000_000,
            flops=(i + 1) * 2_000_000_000,
            output_shape=[64 * 2**i, 56 >> i, 56 >> i],
            output_bytes=4 * 64 * 56 * 56,
            se_params=se[i] if se else 0,
            time_ms=times[i] if times else None,
        )
        for i in range(4)
    ]


def _result(model: str, **kw: object) -> Result:
    defaults: dict[str, object] = dict(
        family="test",
        input_size=[3, 224, 224],
        params=1_000_000,
        macs=2_000_000_000,
        flops=4_100_000_000,
        latency_ms_median=10.0,
        throughput_ips=100.0,
        peak_memory_bytes=100 * 2**20,
        effective_batch_size=kw.get("batch_size", 1),
        samples_ms=[9.9, 10.0, 10.1],
    )
    defaults.update(kw)
    return Result(model=model, **defaults)  # type: ignore[arg-type]


def _paired(latency: float, low: float, high: float) -> dict[str, object]:
    """The engine's paired ratio fields of a row (throughput: the reciprocals)."""
    return dict(
        latency_ratio=latency,
        latency_ratio_ci_low=low,
        latency_ratio_ci_high=high,
        latency_ratio_significant=not low <= 1.0 <= high,
        throughput_ratio=1 / latency,
        throughput_ratio_ci_low=1 / high,
        throughput_ratio_ci_high=1 / low,
        throughput_ratio_significant=not low <= 1.0 <= high,
    )


def _run() -> Run:
    """Model a is the baseline; b has 2x params, 1.5x MACs, 2x latency, half the throughput,
    3x memory and SE blocks; c is cheap and fast; a and b also ran at batch 8. The engine's
    paired ratios (to a) differ a little from the quotients of the medians, as they do when
    measured: b 1.96x at batch 1, 2.4x at batch 8; c 0.41x."""
    return Run(
        results=[
            _result(
                "a",
                latency_ms_ci_low=9.6,
                latency_ms_ci_high=10.5,
                stages=_stages([1.0, 2.0, 3.0, 4.0]),
            ),
            _result(
                "b",
                params=2_000_000,
                macs=3_000_000_000,
                latency_ms_median=20.0,
                latency_ms_ci_low=19.0,
                latency_ms_ci_high=21.0,
                throughput_ips=50.0,
                peak_memory_bytes=300 * 2**20,
                stages=_stages([2.0, 2.0, 2.0, 4.0], se=[10_000, 20_000, 40_000, 80_000]),
                **_paired(1.96, 1.9, 2.1),
            ),
            _result(
                "c",
                params=500_000,
                macs=200_000_000,
                latency_ms_median=4.0,
                throughput_ips=250.0,
                peak_memory_bytes=None,
                **_paired(0.41, 0.39, 0.43),
            ),
            _result("a", batch_size=8, latency_ms_median=40.0, throughput_ips=200.0),
            _result(
                "b",
                batch_size=8,
                params=2_000_000,
                macs=3_000_000_000,
                latency_ms_median=100.0,
                throughput_ips=80.0,
                **_paired(2.4, 2.3, 2.5),
            ),
        ],
        environment={"device": "cpu", "device_name": "Test CPU", "torch": "2.13.0", "threads": 2},
        config={"batches": [1, 8]},
    )


# --------------------------------------------------------------------------- data


def test_dataframe_has_fixed_columns_and_values() -> None:
    run = _run()
    df = reporting.to_dataframe(run.results)
    assert list(df.columns) == Result.flat_columns()
    assert len(df) == 5
    assert df.loc[1, "model"] == "b"
    assert df.loc[1, "params"] == 2_000_000
    assert df.loc[0, "input_size"] == "3x224x224"
    assert df.loc[3, "batch_size"] == 8
    assert pd.isna(df.loc[2, "peak_memory_bytes"])
    # columns never depend on the rows: an empty list has the same header
    assert list(reporting.to_dataframe([]).columns) == Result.flat_columns()
    rel = reporting.to_dataframe(run.results, relative=True)
    assert list(rel.columns) == Result.flat_columns() + list(reporting.RELATIVE_COLUMNS)


def test_relative_columns_hand_computed() -> None:
    results = _run().results
    rel = reporting.relative_to(results)
    assert rel[0] == dict.fromkeys(reporting.RELATIVE_COLUMNS, 1.0)
    # params, MACs, memory: quotients; latency, throughput: the engine's paired ratios
    assert rel[1] == {
        "params_x": 2.0,
        "macs_x": 1.5,
        "latency_x": 1.96,
        "throughput_x": pytest.approx(1 / 1.96),
        "memory_x": 3.0,
    }
    assert rel[2]["params_x"] == 0.5 and rel[2]["latency_x"] == 0.41
    assert rel[2]["memory_x"] is None  # c has no memory measurement
    # b at batch 8 is compared with a at batch 8, not a at batch 1
    assert rel[4]["latency_x"] == 2.4 and rel[4]["throughput_x"] == pytest.approx(1 / 2.4)
    # another baseline: counts divide by b's; the timings were paired with a, not with b,
    # so a's and c's timed ratios are not available (before: a quotient of medians)
    rel_b = reporting.relative_to(results, baseline="b")
    assert rel_b[0]["params_x"] == 0.5 and rel_b[3]["macs_x"] == pytest.approx(2 / 3)
    assert rel_b[0]["latency_x"] is None and rel_b[3]["latency_x"] is None
    assert rel_b[1]["latency_x"] == rel_b[4]["throughput_x"] == 1.0


def test_baseline_row_matches_the_whole_configuration() -> None:
    # a at 224px and 160px; b at 160px: b's MACs divide by a's at 160px, not its first row
    results = [
        _result("a", macs=400, latency_ms_median=10.0),
        _result("a", input_size=[3, 160, 160], macs=200, latency_ms_median=6.0),
        _result("b", input_size=[3, 160, 160], macs=300, **_paired(1.6, 1.5, 1.7)),
        _result("b", precision="fp16", macs=300, latency_ms_median=5.0),
    ]
    rel = reporting.relative_to(results)
    assert rel[2]["macs_x"] == 1.5 and rel[2]["latency_x"] == 1.6
    # no row of a in fp16: no ratio at all (before: a's first row, in fp32, divided)
    assert rel[3] == dict.fromkeys(reporting.RELATIVE_COLUMNS)


def test_rows_not_timed_together_show_no_timed_ratio() -> None:
    # rows of two runs (no paired ratios): counts compare, timings say n/a, never 20/10
    run = Run(results=[_result("a"), _result("b", params=2_000_000, latency_ms_median=20.0)])
    assert reporting.relative_to(run.results)[1]["latency_x"] is None
    md = reporting.render_markdown(run)
    row = next(line for line in md.splitlines() if line.startswith("| b "))
    # Params x, MACs x, Latency x, Throughput x, Memory x
    assert row.endswith("| 2.00× | 1.00× | n/a | n/a | 1.00× |")


def test_unknown_baseline_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="'zzz' is not in this run.*a, b, c"):
        reporting.relative_to(_run().results, baseline="zzz")


# --------------------------------------------------------------------------- renderers


def test_csv_parses_back_with_the_fixed_header() -> None:
    text = reporting.render_csv(_run())
    header = Result.flat_columns() + [f"env_{k}" for k in ENVIRONMENT_COLUMNS]
    assert text.splitlines()[0] == ",".join(header)
    df = pd.read_csv(io.StringIO(text))
    assert list(df.columns) == header
    assert df["params"].tolist() == [1_000_000, 2_000_000, 500_000, 1_000_000, 2_000_000]
    assert df["latency_ms_median"].tolist() == [10.0, 20.0, 4.0, 40.0, 100.0]


def test_markdown_has_table_header_and_chart_references() -> None:
    md = reporting.render_markdown(_run(), chart_paths={"latency-macs": "r-latency-macs.svg"})
    assert "| Model | Config | Params | MACs | Latency (median ±CI) |" in md
    assert "|:---|:---|---:|" in md
    assert "![Latency vs MACs with the Pareto front](r-latency-macs.svg)" in md
    assert "| **a (baseline)** | **b1** | **1.00 M** | **2.00 GMACs** |" in md
    assert "| b | b1 | 2.00 M | 3.00 GMACs | 20.0 ms ±1.0 |" in md
    assert "bias excluded" in md
    assert "### b stages" in md


def test_json_round_trips_through_load_run(tmp_path: Path) -> None:
    run = _run()
    path = tmp_path / "run.json"
    path.write_text(reporting.render_json(run), encoding="utf-8")
    back = load_run(path)
    assert back == run


def test_html_is_self_contained_with_tables_and_charts() -> None:
    html = reporting.render_html(_run())
    assert html.startswith("<!DOCTYPE html>")
    assert "<table" in html and "<svg" in html
    for text in ("2.00 M", "3.00 GMACs", "20.0 ms ±1.0", "50.0 img/s", "300 MiB", "2.00×"):
        assert text in html
    assert 'class="baseline"' in html
    assert "<script" not in html
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html)


def test_rich_table_marks_baseline_and_shows_units() -> None:
    buf = io.StringIO()
    reporting.render_table(_run(), Console(file=buf, width=120))
    out = buf.getvalue()
    assert "a (baseline)" in out
    for unit in ("M", "GMACs", "ms ±", "img/s", "MiB", "×"):
        assert unit in out
    assert "bias excluded" in out
    assert "a stages" in out and "Time %" in out  # stage share table (stages were timed)
    assert max(len(line) for line in out.splitlines()) <= 120


def test_rich_table_other_baseline_and_incomplete_run() -> None:
    run = _run()
    run.complete = False
    buf = io.StringIO()
    reporting.render_table(run, Console(file=buf, width=120), baseline="c")
    out = buf.getvalue()
    assert "c (baseline)" in out and "a (baseline)" not in out
    assert "Incomplete run" in out


# --------------------------------------------------------------------------- charts


def test_pareto_front_picks_exactly_the_non_dominated_points() -> None:
    pts = [(1.0, 10.0), (2.0, 5.0), (3.0, 6.0), (4.0, 1.0), (2.5, 5.0), (5.0, 1.0), (1.0, 12.0)]
    # (3,6) by (2,5); (2.5,5) by (2,5); (5,1) by (4,1); (1,12) by (1,10)
    assert charts.pareto_front(pts) == [0, 1, 3]
    assert charts.pareto_front([(1.0, 1.0), (1.0, 1.0)]) == [0, 1]  # ties do not dominate
    assert charts.pareto_front([]) == []


def test_charts_are_valid_svg_and_skip_when_they_do_not_apply() -> None:
    run = _run()
    made = charts.all_charts(run.results)
    assert list(made) == ["latency-macs", "stages", "se"]
    for svg in made.values():
        root = ET.fromstring(svg)
        assert root.tag == f"{SVG_NS}svg"
        assert root.find(f"{SVG_NS}title") is not None
    assert "Pareto front" in made["latency-macs"]
    assert "GMACs per image" in made["latency-macs"] and "(ms)" in made["latency-macs"]
    static = [_result("a", latency_ms_median=None, throughput_ips=None)]
    assert charts.latency_vs_macs_svg(static) is None
    assert charts.stage_bars_svg(static) is None
    assert charts.se_overhead_svg([_result("a", stages=_stages(None))]) is None
    # stages without times: MACs share only
    assert "share of time" not in (
        charts.stage_bars_svg([_result("a", stages=_stages(None))]) or ""
    )


def test_scatter_has_one_point_per_ok_row() -> None:
    results = _run().results + [_result("d", status="oom", latency_ms_median=None)]
    root = ET.fromstring(charts.latency_vs_macs_svg(results) or "")
    points = [c for c in root.iter(f"{SVG_NS}circle") if "point" in c.get("class", "")]
    assert len(points) == 5
    # per image: c (0.2 GMACs, 4 ms) beats every other row on both axes
    front = [c for c in points if "pareto" in c.get("class", "")]
    assert [c.findtext(f"{SVG_NS}title", "").split(":")[0] for c in front] == ["c (b1)"]
    # one error bar (the median's 95% CI) per point whose row has a CI
    bars = [e for e in root.iter(f"{SVG_NS}path") if e.get("class") == "errorbar"]
    with_ci = [r for r in results if r.status == "ok" and r.latency_ms_ci_low is not None]
    assert len(bars) == len(with_ci) > 0


# --------------------------------------------------------------------------- files


def _temp_files(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if p.name.startswith(".")]


def test_write_reports_writes_every_format(tmp_path: Path) -> None:
    buf = io.StringIO()
    paths = reporting.write_reports(
        _run(), tmp_path, ["table", "csv", "md", "json", "html"], "demo",
        console=Console(file=buf, width=120),
    )  # fmt: skip
    names = sorted(p.name for p in paths.values())
    assert names == [
        "demo-latency-macs.svg", "demo-se.svg", "demo-stages.svg",
        "demo.csv", "demo.html", "demo.json", "demo.md",
    ]  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == names
    md = (tmp_path / "demo.md").read_text(encoding="utf-8")
    assert "](demo-latency-macs.svg)" in md and "](demo-se.svg)" in md
    assert load_run(paths["json"]).results == _run().results
    assert "a (baseline)" in buf.getvalue()
    with pytest.raises(UsageError, match="unknown format 'pdf'"):
        reporting.write_reports(_run(), tmp_path, ["pdf"], "demo")


def test_failed_render_does_not_clobber_old_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reporting.write_reports(_run(), tmp_path, ["csv", "html"], "r")
    old_csv = (tmp_path / "r.csv").read_text(encoding="utf-8")
    old_html = (tmp_path / "r.html").read_text(encoding="utf-8")

    def boom(*_a: object, **_k: object) -> str:
        raise RuntimeError("render failed")

    monkeypatch.setattr(reporting, "render_html", boom)
    run = _run()
    run.results = run.results[:1]
    with pytest.raises(RuntimeError, match="render failed"):
        reporting.write_reports(run, tmp_path, ["csv", "html"], "r")
    assert (tmp_path / "r.csv").read_text(encoding="utf-8") == old_csv  # not half-updated
    assert (tmp_path / "r.html").read_text(encoding="utf-8") == old_html
    assert _temp_files(tmp_path) == []


def test_atomic_write_keeps_old_file_when_rename_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "r.json"
    atomic_write_text(target, "old")

    def fail_replace(*_a: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "new")
    assert target.read_text(encoding="utf-8") == "old"
    assert _temp_files(tmp_path) == []


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not a readable JSON file"),
        ('{"results": []}', "not a cnnbench run"),
        ('{"schema_version": 99, "results": []}', "schema version 99"),
        ('{"schema_version": 1, "results": [{"model": "a", "bogus": 1}]}', "unknown result"),
    ],
)
def test_load_run_bad_file_names_the_file(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SchemaError, match=re.escape(str(path))) as info:
        load_run(path)
    assert problem in str(info.value)


# --------------------------------------------------------------------------- browser


_CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--enable-logging=stderr", "--v=0",
]  # fmt: skip


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "chromium-profile"
    return subprocess.run(
        ["chromium", *_CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip


def _console_messages(stderr: str) -> list[str]:
    """Page console lines in Chromium's log. The report has no scripts, so any console
    message (console.error prints as ``INFO:CONSOLE``) or uncaught error is a failure."""
    return [line for line in stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]


# A test-only probe appended to a copy of the report (the report itself has no scripts): it
# lays the page out and writes each table's and chart's rendered size into the DOM.
_PROBE = """<script>
const sized = (sel) => [...document.querySelectorAll(sel)].map((e) => {
  const b = e.getBoundingClientRect(); return `${Math.round(b.width)}x${Math.round(b.height)}`;
});
document.body.dataset.tables = sized("table").join(" ");
document.body.dataset.charts = sized("figure svg").join(" ");
</script>"""


def _sizes(dom: str, what: str) -> list[tuple[int, int]]:
    found = re.search(rf'data-{what}="([^"]*)"', dom)
    assert found, f"the probe did not run: no data-{what} in the DOM"
    return [(int(w), int(h)) for w, h in (box.split("x") for box in found.group(1).split())]


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(
    shutil.which("chromium") is None and not os.environ.get("CI"),
    reason="needs chromium (.ci/run installs it; in CI a missing chromium fails)",
)
def test_html_report_loads_in_headless_chromium(tmp_path: Path) -> None:
    if shutil.which("chromium") is None:  # CI: the browser test must run, never skip
        pytest.fail("CI: chromium is missing; .ci/run installs Debian's chromium")
    # the detector sees a console error on a page that makes one
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><script>console.error('boom'); nope();</script>")
    assert len(_console_messages(_chromium(tmp_path, "--dump-dom", bad.as_uri()).stderr)) == 2

    paths = reporting.write_reports(_run(), tmp_path / "out", ["html"], "report")
    url = paths["html"].resolve().as_uri()
    dom = _chromium(tmp_path, "--dump-dom", url)
    assert 'class="results"' in dom.stdout and 'class="stages"' in dom.stdout
    assert dom.stdout.count("<svg") == 3
    assert 'class="baseline"' in dom.stdout and "3.00 GMACs" in dom.stdout
    assert _console_messages(dom.stderr) == []
    # laid out: every table (results, 2 stage tables, 2 environment tables) and every chart
    # (latency-macs, stages, se) has a real size on the page
    probe = tmp_path / "probe.html"
    probe.write_text(paths["html"].read_text().replace("</body>", _PROBE + "</body>"))
    laid_out = _chromium(tmp_path, "--window-size=1280,2000", "--dump-dom", probe.as_uri())
    tables, svgs = _sizes(laid_out.stdout, "tables"), _sizes(laid_out.stdout, "charts")
    assert len(tables) == 5 and all(w > 100 and h > 40 for w, h in tables), tables
    assert len(svgs) == 3 and all(w > 300 and h > 150 for w, h in svgs), svgs
    assert _console_messages(laid_out.stderr) == []
    shot = tmp_path / "shot.png"
    shown = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", url)
    assert shot.stat().st_size > 10_000
    assert _console_messages(shown.stderr) == []


def test_renderers_cope_with_static_only_failed_and_odd_rows(tmp_path: Path) -> None:
    weird = "my<net>&[bold]|x"
    run = Run(
        results=[
            _result(weird, latency_ms_median=None, throughput_ips=None, peak_memory_bytes=None),
            _result("b", status="oom", error="CUDA out of memory", latency_ms_median=None),
            _result("c", params=None, macs=None, stages=_stages(None, se=[0, 0, 5, 0])),
        ],
        complete=False,
    )
    paths = reporting.write_reports(run, tmp_path, ["csv", "md", "json", "html"], "odd")
    assert "chart:latency-macs" not in paths  # no ok row with a latency: no scatter
    for key, path in paths.items():
        if key.startswith("chart:"):
            ET.parse(path)
    html = paths["html"].read_text(encoding="utf-8")
    assert "my&lt;net&gt;&amp;[bold]|x" in html and "Incomplete run" in html
    assert "CUDA out of memory" in html
    assert "my&lt;net&gt;&amp;\\[bold\\]\\|x" in paths["md"].read_text(encoding="utf-8")
    buf = io.StringIO()
    reporting.render_table(run, Console(file=buf, width=120))
    assert weird in buf.getvalue() and "oom" in buf.getvalue()
    empty = Run(results=[])
    assert "No results" in reporting.render_html(empty)
    header = Result.flat_columns() + [f"env_{k}" for k in ENVIRONMENT_COLUMNS]
    assert reporting.render_csv(empty).strip() == ",".join(header)
    assert reporting.relative_to(run.results)[2]["params_x"] is None
