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

Modules: :mod:`.config` (``GateConfig``, ``[tool.cnnbench.gate]``), :mod:`.stats` (the latency
decision on samples), :mod:`.measure` (calibration workload, calibrated and interleaved timing),
:mod:`.modes` (save, check, compare_files, ab), :mod:`.baseline` (reading baselines, matching
rows), :mod:`.verdicts` (``Verdict``, ``GateReport``), :mod:`.report` (Markdown, JUnit).

Ratios are candidate / baseline. Nothing here prints; progress goes to a callback. Bad input
(missing or corrupt baseline, schema or environment mismatch, bad configuration) raises
:class:`~cnnbench.errors.UsageError` with one line naming the problem and what would work.
"""

from .baseline import (
    environment_mismatches,
    key_label,
    load_baseline,
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
from .measure import calibration_workload
from .modes import ab, check, compare_files, save
from .report import (
    format_change,
    format_ci,
    format_p,
    format_value,
    to_junit_xml,
    to_markdown,
    write_step_summary,
)
from .stats import (
    Decision,
    LatencySamples,
    MannWhitney,
    bootstrap_ratio_ci,
    decide_latency,
    decide_with_remeasure,
    mann_whitney_u,
)
from .verdicts import GateReport, Verdict, deterministic_verdict, latency_verdicts, memory_verdict

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
    "memory_verdict",
    "latency_verdicts",
    "GateReport",
    "result_key",
    "key_label",
    "load_baseline",
    "read_pytest_benchmark",
    "environment_mismatches",
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
