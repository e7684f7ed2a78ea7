"""The CI performance regression gate: catch real slowdowns, do not cry wolf.

Three modes, one decision procedure:

* :func:`save` measures the configured models and configurations and writes a baseline run
  (a :class:`~cnnbench.results.Run`: schema version, environment fingerprint, static counts,
  raw latency samples, peak memory, plus one calibration row per model configuration, named
  ``__calibration__/<model>``: the samples of a fixed workload timed in blocks alternating
  with the model's, so that both see the same machine state).
* :func:`check` measures the same set now and compares it with a baseline file (a cnnbench run
  or a pytest-benchmark JSON); :func:`compare_files` compares two saved files without
  measuring.
* :func:`ab` builds a baseline and a candidate model in the same process and times them
  interleaved in rounds (A B, B A, A B, ...): the most robust mode on a shared machine, since
  both see the same noise.

Per metric (rows of :class:`Verdict`):

* deterministic (``params``, ``macs``, ``flops``, ``activation_bytes``): the candidate may exceed
  the baseline by at most the configured relative tolerance (0: exact). These need no timing, so
  they are decided first; a model whose structure regressed is not timed (a different network's
  latency says nothing new), which makes an extra conv layer fail the gate in seconds.
* ``latency_ms`` (median per batch): the ratio candidate/baseline of medians, with
  (a) a one-sided Mann-Whitney U test on the raw samples (exact for small samples without
  ties, else the normal approximation with tie and continuity corrections) at level ``alpha``
  and (b) a seeded percentile-bootstrap CI of the median ratio at confidence ``1 - alpha``
  (in ``ab`` mode whole rounds are resampled, so the CI honours the correlation of samples
  taken close together). A regression needs BOTH a significant test AND an effect of at least
  ``min_effect`` (ratio >= 1 + min_effect). Ambiguous results (significant but the CI
  straddles the effect threshold, or a large effect that is not significant) are re-measured
  up to ``max_remeasure`` times, pooling samples, before the verdict. In ``check`` mode the
  candidate's samples are divided by the calibration ratio (candidate calibration median /
  baseline calibration median, each calibration timed interleaved with its model), so a
  uniformly slower or faster machine does not read as a change; the bootstrap resamples the
  calibration samples too.
* ``throughput_ips`` mirrors the latency decision (throughput = batch / median latency).
* ``peak_memory_bytes``: the candidate may exceed the baseline by the memory tolerance.

Trust and failure (issue 13):

* A baseline, saved run or pytest-benchmark file is data: nothing it names is imported or
  called. Models come from the command line or the user's own configuration file; a check
  without one takes only zoo names from the baseline (:func:`baseline_config`).
* Files are parsed against a schema (regular files of at most 64 MiB, read with a cap; types,
  finite numbers, positive timings, a well-formed stored configuration) and refused in one
  line naming the file and the field. The environment fingerprint must hold torch, device,
  CPU and threads on both sides (or ``--allow-env-mismatch``).
* The gate fails closed: everything is validated (configuration types, every model spec,
  output paths) before the first model is timed; whatever model code raises, ``SystemExit``
  and its own ``KeyboardInterrupt`` included, becomes an ``error`` verdict (exit 2), and so
  does a call that does not return within the call timeout, out of memory or a NaN/inf
  output (the engine's ``timeout``, ``oom``, ``nonfinite`` statuses); a real
  Ctrl-C stays an interrupt; a calibration ratio outside 0.7-1.4 is an ``error``, never a
  regression; a check that compared nothing exits 2. A report file that cannot be written
  is a warning and leaves the verdict's exit code alone.

Modules: :mod:`.config` (``GateConfig``, ``[tool.cnnbench.gate]``), :mod:`.stats` (the latency
decision on samples), :mod:`.measure` (calibration workload; calibrated and interleaved timing
through the engine, :func:`cnnbench.runtime.measure_config`),
:mod:`.modes` (save, check, compare_files, ab), :mod:`.baseline` (reading and validating
baselines, matching rows, the environment check, what a baseline may supply),
:mod:`.guard` (running model code), :mod:`.outputs` (output paths and writes),
:mod:`.verdicts` (``Verdict``, ``GateReport``), :mod:`.report` (verdict table, Markdown,
JUnit; numbers through :mod:`cnnbench.report.format`, tables through
:mod:`cnnbench.report.table`).

Ratios are candidate / baseline. Nothing here prints; progress goes to a callback. Bad input
(missing or corrupt baseline, schema or environment mismatch, bad configuration) raises
:class:`~cnnbench.errors.UsageError` with one line naming the problem and what would work.
"""

from .baseline import (
    baseline_config,
    environment_mismatches,
    key_label,
    load_baseline,
    missing_environment,
    read_pytest_benchmark,
    result_key,
)
from .config import (
    CALIBRATION_MODEL,
    DETERMINISTIC_METRICS,
    METRICS,
    GateConfig,
    config_from_dict,
    config_from_mapping,
    load_config,
)
from .guard import ModelCodeError
from .measure import calibration_workload
from .modes import ab, check, compare_files, save
from .outputs import check_writable
from .report import (
    format_change,
    format_ci,
    format_p,
    format_value,
    to_junit_xml,
    to_markdown,
    verdict_table,
    write_step_summary,
)
from .stats import (
    CALIBRATION_BOUNDS,
    CalibrationError,
    Decision,
    LatencySamples,
    MannWhitney,
    bootstrap_ratio_ci,
    decide_latency,
    decide_with_remeasure,
    mann_whitney_u,
)
from .verdicts import (
    GateReport,
    Verdict,
    deterministic_verdict,
    error_verdict,
    latency_verdicts,
    memory_verdict,
)

__all__ = [
    "CALIBRATION_MODEL",
    "DETERMINISTIC_METRICS",
    "METRICS",
    "GateConfig",
    "load_config",
    "config_from_mapping",
    "config_from_dict",
    "MannWhitney",
    "mann_whitney_u",
    "bootstrap_ratio_ci",
    "LatencySamples",
    "Decision",
    "decide_latency",
    "decide_with_remeasure",
    "Verdict",
    "deterministic_verdict",
    "error_verdict",
    "memory_verdict",
    "latency_verdicts",
    "GateReport",
    "result_key",
    "key_label",
    "load_baseline",
    "read_pytest_benchmark",
    "environment_mismatches",
    "missing_environment",
    "baseline_config",
    "ModelCodeError",
    "CALIBRATION_BOUNDS",
    "CalibrationError",
    "check_writable",
    "verdict_table",
    "calibration_workload",
    "save",
    "check",
    "compare_files",
    "ab",
    "format_value",
    "format_change",
    "format_ci",
    "format_p",
    "to_markdown",
    "to_junit_xml",
    "write_step_summary",
]
