"""Runtime measurement: configuration, preparation, the timing harness, the engine that times
the models of one configuration interleaved (with ratios, CIs and noise flags), per-stage
time, CPU/CUDA peak memory and the machine's peak."""

from cnnbench.runtime.config import MEMORY_FORMATS, MODES, PRECISIONS, RuntimeConfig, resolve_device
from cnnbench.runtime.engine import (
    Entry,
    Measurement,
    Schedule,
    interrupted_rows,
    measure_config,
    paired_ratio,
)
from cnnbench.runtime.measure import (
    measure_model,
    stage_times,
    stats_into,
    time_vs_macs,
    with_stage_times,
)
from cnnbench.runtime.prepare import (
    Prepared,
    check_input_size,
    is_oom,
    measurement_settings,
    prepare,
)
from cnnbench.runtime.sandbox import StateChanges, torch_state

__all__ = [
    "PRECISIONS",
    "MEMORY_FORMATS",
    "MODES",
    "RuntimeConfig",
    "Prepared",
    "resolve_device",
    "prepare",
    "check_input_size",
    "measure_model",
    "stats_into",
    "stage_times",
    "with_stage_times",
    "time_vs_macs",
    "is_oom",
    "measurement_settings",
    "Entry",
    "Measurement",
    "Schedule",
    "measure_config",
    "paired_ratio",
    "interrupted_rows",
    "StateChanges",
    "torch_state",
]
