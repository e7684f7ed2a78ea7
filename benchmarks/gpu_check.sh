#!/usr/bin/env bash
# The first run of cnnbench's CUDA paths on a GPU, in about 6 minutes of wall time (issue 16).
#
# On a machine with an NVIDIA GPU and a CUDA build of torch already installed (never replaced):
# install cnnbench without touching torch, then, each step under `timeout` and bounded by one
# overall deadline (a failed or hung step is recorded and the script goes on):
#   fingerprint  nvidia-smi + torch/CUDA/cuDNN versions                          (~5 s,  cap 30)
#   pytest-gpu   pytest -m gpu tests/                                           (~30 s, cap 75)
#   events       CUDA events vs perf_counter over a block of forwards           (~15 s, cap 45)
#   compare-P    cnnbench compare MODELS -p P --memory-format both -b 1,64,
#                one process per precision P in fp32, fp16, bf16                (~35 s, cap 70 each)
#   calibrate    extra matmuls sized to +10% of the model's CUDA time           (~20 s, cap 45)
#   gate-aa-i    cnnbench gate ab A/A                  } REPS times, interleaved  (~12 s, cap 35 each)
#   gate-slow10-i  cnnbench gate ab, injected +10%    }
#   compare-compile  one --compile row, only if enough time is left             (cap 120)
#   report       sanity checks (PASS/FAIL/EXPLAIN), OUT_DIR/NAME.md, summary    (~3 s)
#
# Usage: benchmarks/gpu_check.sh [--device cuda|cpu] [--quick] [--models a,b,c] [--out DIR]
#          [--pack] [--total-s S] [--no-install] [--compile|--no-compile] [--reps N]
#          [--only STEP,STEP]   (run only the steps whose names start so, e.g. events,gate)
# Environment equivalents: GPU_CHECK_DEVICE, GPU_CHECK_QUICK=1, GPU_CHECK_MODELS, OUT_DIR,
#   GPU_CHECK_PACK=1, GPU_CHECK_TOTAL_S, GPU_CHECK_INSTALL=0, GPU_CHECK_COMPILE=yes|no|auto,
#   GPU_CHECK_REPS, GPU_CHECK_ONLY, PYTHON (the interpreter with torch; default python3).
#
# Output, all under OUT_DIR (default benchmarks/results for CUDA, /tmp/cnnbench-gpu-check-cpu
# for a CPU dry run): NAME.md (the summary; NAME is cuda, or cpu-dryrun with --device cpu),
# NAME/ (env.json, steps.tsv, events.json, calibrate.json, checks.json, compare-*/ run JSON and
# Markdown, gate/ verdict JSON and Markdown, logs/), gpu_check.log (this console). --pack
# replaces NAME/ by NAME.tar.gz (for the device tool: at most 8 files, 2 folders deep):
#   OUT_DIR=$OUT benchmarks/gpu_check.sh --pack
# CPU dry run (here, no GPU): PYTHON=.venv/bin/python benchmarks/gpu_check.sh --device cpu
#   --quick --models lenet5,resnet18 --no-install
# Wheels for a machine without a package index: `python benchmarks/gpu_check.py wheelhouse
#   .whl` where the dependencies are installed, then carry `.whl` along.
#
# Exit: 0 every step ok and no FAIL, 1 otherwise, 2 when it could not start.

set -uo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }
die() { echo "gpu_check: $*" >&2; exit 2; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd) || die "cannot find the repository root"
cd "$ROOT" || die "cannot cd to $ROOT"
START=$(date +%s)
SCRIPT_CMD="benchmarks/gpu_check.sh $*"

DEVICE=${GPU_CHECK_DEVICE:-cuda}
QUICK=${GPU_CHECK_QUICK:-0}
MODELS=${GPU_CHECK_MODELS:-resnet50,se_resnet50,ghostnet}
OUT_DIR=${OUT_DIR:-}
PACK=${GPU_CHECK_PACK:-0}
TOTAL_S=${GPU_CHECK_TOTAL_S:-360}
INSTALL=${GPU_CHECK_INSTALL:-1}
COMPILE=${GPU_CHECK_COMPILE:-auto}
REPS=${GPU_CHECK_REPS:-}
ONLY=${GPU_CHECK_ONLY:-}
PY=${PYTHON:-}

while (($#)); do
    case $1 in
        --device) DEVICE=${2:?--device needs a value}; shift ;;
        --device=*) DEVICE=${1#*=} ;;
        --quick) QUICK=1 ;;
        --models) MODELS=${2:?--models needs a value}; shift ;;
        --models=*) MODELS=${1#*=} ;;
        --out) OUT_DIR=${2:?--out needs a value}; shift ;;
        --out=*) OUT_DIR=${1#*=} ;;
        --pack) PACK=1 ;;
        --total-s) TOTAL_S=${2:?--total-s needs a value}; shift ;;
        --no-install) INSTALL=0 ;;
        --compile) COMPILE=yes ;;
        --no-compile) COMPILE=no ;;
        --reps) REPS=${2:?--reps needs a value}; shift ;;
        --only) ONLY=${2:?--only needs a value}; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done

case $DEVICE in
    cuda | cuda:[0-9]*) KIND=cuda; NAME=cuda ;;
    cpu) KIND=cpu; NAME=cpu-dryrun ;;
    *) die "--device $DEVICE: use cuda, cuda:N or cpu" ;;
esac
[[ $TOTAL_S =~ ^[0-9]+$ ]] || die "--total-s $TOTAL_S: not a whole number of seconds"
if [[ -z $OUT_DIR ]]; then
    if [[ $KIND == cuda ]]; then OUT_DIR=$ROOT/benchmarks/results; else OUT_DIR=${TMPDIR:-/tmp}/cnnbench-gpu-check-cpu; fi
fi
mkdir -p "$OUT_DIR" || die "cannot create $OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
RES=$OUT_DIR/$NAME
LOGS=$RES/logs
if [[ -e $RES ]]; then
    if [[ -f $RES/steps.tsv || -z $(ls -A "$RES") ]]; then rm -rf "$RES"; else die "$RES exists and is not a previous gpu_check output; move it away"; fi
fi
rm -f "$OUT_DIR/$NAME.tar.gz"
mkdir -p "$LOGS" "$RES/gate" || die "cannot create $RES"
exec > >(tee "$OUT_DIR/gpu_check.log") 2>&1

# Sizes: full (the GPU run) or --quick (a dry run in a few minutes on 2 CPU cores).
if [[ $QUICK == 1 ]]; then
    BATCHES=1,2; BUDGET=0.3; EV_BATCH=1,2; EV_BLOCK=0.2; EV_HARNESS=0.3
    GATE_BATCH=1; GATE_BUDGET=1.0; GATE_ROUNDS=4; GATE_REMEASURE=1; INJ_N=192
    CAL_ARGS=(--steps 1 --seconds 1.5 --probe-s 0.5); REPS=${REPS:-1}
else
    BATCHES=1,64; BUDGET=1.0; EV_BATCH=1,64; EV_BLOCK=0.5; EV_HARNESS=1.0
    GATE_BATCH=32; GATE_BUDGET=3.0; GATE_ROUNDS=6; GATE_REMEASURE=1; INJ_N=1024
    CAL_ARGS=(--steps 2 --seconds 4 --probe-s 1.5); REPS=${REPS:-2}
fi
[[ $KIND == cpu ]] && INJ_N=192
CHECK_BATCH=${BATCHES##*,}
REF=${MODELS%%,*}
IFS=, read -r -a MODEL_LIST <<<"$MODELS"
COMPILE_PREC=fp16; COMPILE_FMT=channels_last; [[ $KIND == cpu ]] && { COMPILE_PREC=fp32; COMPILE_FMT=contiguous; }
COMPILE_CAP=120
REPORT_RESERVE=20
MIN_STEP_S=5
COMPARE_CAP=70; [[ $KIND == cpu ]] && COMPARE_CAP=150  # CPU: a memory child process per row
FORMATS=json,md

remaining() { echo $((START + TOTAL_S - $(date +%s))); }
elapsed() { echo $(($(date +%s) - START)); }

# --- preflight: torch (never replaced), CUDA, nvidia-smi -------------------------------------
if [[ -z $PY ]]; then
    if command -v python3 >/dev/null 2>&1; then PY=python3; else PY=python; fi
fi
command -v "$PY" >/dev/null 2>&1 || die "no Python interpreter '$PY' (set PYTHON=...)"
echo "gpu_check: device $DEVICE, models $MODELS, batches $BATCHES, out $OUT_DIR/$NAME, total ${TOTAL_S}s"
TORCH_LINE=$(timeout 120 "$PY" -c "import torch; print(torch.__version__, torch.cuda.is_available())" 2>"$LOGS/torch-import.log") \
    || die "torch cannot be imported by $PY ($(tail -n 1 "$LOGS/torch-import.log")); install a CUDA build of torch first"
echo "torch: $TORCH_LINE (python: $PY)"
TORCH_VERSION=${TORCH_LINE%% *}
if ! "$PY" -c "import sys, torch; v = tuple(int(x) for x in torch.__version__.split('+')[0].split('.')[:2]); sys.exit(v < (2, 5))" 2>/dev/null; then
    echo "warning: torch $TORCH_VERSION is older than 2.5; cnnbench's AMP check (torch.is_autocast_enabled(device_type), torch.get_autocast_dtype) needs >= 2.4 and is_oom uses torch.OutOfMemoryError; AMP rows may fail"
fi
if [[ $KIND == cuda && ${TORCH_LINE##* } != True ]]; then
    die "torch $TORCH_VERSION sees no CUDA device (torch.cuda.is_available() is False); this is a CPU build or no GPU is visible; use --device cpu for a dry run"
fi
if [[ $KIND == cuda ]]; then
    if command -v nvidia-smi >/dev/null 2>&1; then
        timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$RES/nvidia-smi.csv" 2>"$LOGS/nvidia-smi.log" \
            || echo "warning: nvidia-smi query failed (see logs/nvidia-smi.log)"
        cat "$RES/nvidia-smi.csv"
    else
        echo "warning: nvidia-smi not on PATH; the driver version is not recorded"
    fi
fi

# --- install cnnbench (never torch) ----------------------------------------------------------
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}  # this checkout's cnnbench, installed or not
missing_deps() {
    "$PY" - <<'EOF'
import importlib.util
deps = {"fvcore": "fvcore", "thop": "thop", "pandas": "pandas", "rich": "rich", "typer": "typer",
        "pytest": "pytest", "pytest-benchmark": "pytest_benchmark"}
print(" ".join(d for d, mod in deps.items() if importlib.util.find_spec(mod) is None))
EOF
}
pip_install() {  # pip_install ARGS...: plain, then (PEP 668 system Python) --user; 180 s each
    timeout 180 "$PY" -m pip install --disable-pip-version-check "$@" && return 0
    PIP_BREAK_SYSTEM_PACKAGES=1 timeout 180 "$PY" -m pip install --disable-pip-version-check --user "$@"
}
if [[ $INSTALL == 1 ]]; then
    echo "== install (torch $TORCH_VERSION is kept: pip runs with --no-deps / a torch==$TORCH_VERSION constraint)"
    CONSTRAINTS=$RES/constraints.txt
    echo "torch==$TORCH_VERSION" >"$CONSTRAINTS"
    MISSING=$(missing_deps)
    if [[ -n $MISSING ]]; then
        read -r -a MISSING_LIST <<<"$MISSING"
        echo "missing: $MISSING"
        if [[ -d $ROOT/.whl ]] && pip_install --no-index --find-links "$ROOT/.whl" -c "$CONSTRAINTS" "${MISSING_LIST[@]}" >"$LOGS/install-deps.log" 2>&1; then
            echo "installed from .whl/: $MISSING"
        elif pip_install --timeout 15 --retries 0 -c "$CONSTRAINTS" "${MISSING_LIST[@]}" >>"$LOGS/install-deps.log" 2>&1; then
            echo "installed from the package index: $MISSING"
        else
            tail -n 5 "$LOGS/install-deps.log"
            die "missing Python packages ($MISSING) and neither a package index nor wheels in .whl/ could supply them (build wheels with 'python benchmarks/gpu_check.py wheelhouse .whl' where they are installed, and carry .whl)"
        fi
    fi
    if (cd / && "$PY" -c "import sys, cnnbench; from pathlib import Path; sys.exit(Path(cnnbench.__file__).resolve().parents[1] != Path(sys.argv[1]).resolve())" "$ROOT") 2>/dev/null \
        && "$PY" -c "from importlib.metadata import distribution; distribution('cnnbench')" 2>/dev/null; then
        echo "cnnbench: already installed from this checkout"
    elif pip_install --no-deps --no-build-isolation -e "$ROOT" >"$LOGS/install-cnnbench.log" 2>&1; then
        echo "cnnbench: pip install --no-deps --no-build-isolation -e . done"
    else
        tail -n 3 "$LOGS/install-cnnbench.log"
        echo "warning: editable install failed; running from PYTHONPATH=$ROOT (the pytest plugin entry point is then not registered)"
    fi
    AFTER=$("$PY" -c "import torch; print(torch.__version__)" 2>/dev/null)
    [[ $AFTER == "$TORCH_VERSION" ]] || die "torch changed from $TORCH_VERSION to ${AFTER:-nothing} during the install; this must not happen (see $LOGS/install-*.log)"
else
    echo "== install skipped (--no-install); cnnbench from PYTHONPATH=$ROOT"
    MISSING=$(missing_deps)
    [[ -z $MISSING ]] || echo "warning: missing Python packages: $MISSING"
fi

# --- steps -------------------------------------------------------------------------------------
# Python commands go through `gpu_check.py exec` so that the timeout's SIGTERM reaches them as
# KeyboardInterrupt (cnnbench then keeps an -incomplete.json; pytest prints its summary).
LAUNCH=("$PY" "$ROOT/benchmarks/gpu_check.py" exec)
FAILED_STEPS=0
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RES/steps.tsv"; }
shown() {  # the command as a person would type it
    local text="$*"
    text=${text//"${LAUNCH[*]} cnnbench"/cnnbench}
    text=${text//"${LAUNCH[*]} pytest"/pytest}
    text=${text//"$PY $ROOT/benchmarks/"/python benchmarks/}
    text=${text//"$RES/"/"$NAME/"}
    echo "${text//"$ROOT/"/}"
}
selected() {  # selected NAME: no --only, or NAME starts with one of its entries
    local sel s
    [[ -z $ONLY ]] && return 0
    IFS=, read -r -a sel <<<"$ONLY"
    for s in "${sel[@]}"; do [[ $1 == "$s"* ]] && return 0; done
    return 1
}
run_step() {  # run_step NAME CAP_S EXPECTED_RC CMD...
    local name=$1 cap=$2 expect=$3
    shift 3
    local left t t0 rc status secs
    if ! selected "$name"; then
        record "$name" skipped - 0 "$expect" "not selected (--only $ONLY)"
        return 0
    fi
    left=$(($(remaining) - REPORT_RESERVE))
    t=$((cap < left ? cap : left))
    if ((t < MIN_STEP_S)); then
        echo "== [$name] skipped: ${left}s left in the ${TOTAL_S}s budget"
        record "$name" skipped - 0 "$expect" "$(shown "$@")"
        return 0
    fi
    echo "== [$name] timeout ${t}s (${left}s left, $(elapsed)s elapsed): $(shown "$@")"
    t0=$(date +%s)
    timeout -k 10 "$t" "$@" >"$LOGS/$name.log" 2>&1
    rc=$?
    secs=$(($(date +%s) - t0))
    if ((rc == 124 || rc == 137)); then status=timeout
    elif ((rc == expect)); then status=ok
    else status=fail; fi
    [[ $status == ok ]] || FAILED_STEPS=$((FAILED_STEPS + 1))
    tail -n 4 "$LOGS/$name.log" | cut -c1-200 | sed 's/^/   | /'
    echo "   -> $status (rc $rc, expected $expect, ${secs}s)"
    record "$name" "$status" "$rc" "$secs" "$expect" "$(shown "$@")"
}

run_step fingerprint 30 0 "$PY" "$ROOT/benchmarks/gpu_check.py" fingerprint "$RES/env.json" --nvidia-smi "$RES/nvidia-smi.csv"

run_step pytest-gpu 75 0 "${LAUNCH[@]}" pytest -m gpu tests/ -q -p no:cacheprovider --continue-on-collection-errors -rs

run_step events 45 0 "$PY" "$ROOT/benchmarks/gpu_check.py" events "$RES/events.json" --device "$DEVICE" \
    --model "$REF" --batch "$EV_BATCH" --block-s "$EV_BLOCK" --harness-s "$EV_HARNESS"

# One process per precision: cnnbench reuses one model instance across a model's configurations
# and prepare() converts it to channels_last in place without converting it back, so in a single
# run the fp16/bf16 "contiguous" rows would run channels_last weights (see the report's notes).
for prec in fp32 fp16 bf16; do
    run_step "compare-$prec" "$COMPARE_CAP" 0 "${LAUNCH[@]}" cnnbench compare "${MODEL_LIST[@]}" --device "$DEVICE" \
        -p "$prec" --memory-format both --batch "$BATCHES" --budget "$BUDGET" \
        --out "$RES/compare-$prec" --format "$FORMATS"
done

run_step calibrate 45 0 "$PY" "$ROOT/benchmarks/gpu_check.py" calibrate "$RES/calibrate.json" --device "$DEVICE" \
    --model "$REF" --batch "$GATE_BATCH" --fraction 0.10 --n "$INJ_N" "${CAL_ARGS[@]}"
UNITS=$("$PY" -c "import json, sys; print(json.load(open(sys.argv[1]))['units'])" "$RES/calibrate.json" 2>/dev/null)
INJ_N=$("$PY" -c "import json, sys; print(json.load(open(sys.argv[1]))['n'])" "$RES/calibrate.json" 2>/dev/null || echo "$INJ_N")

gate_toml() {  # gate_toml FILE METRICS MEMORY
    cat >"$1" <<EOF
[tool.cnnbench.gate]
device = "$DEVICE"
batch_size = $GATE_BATCH
precision = "fp32"
budget_s = $GATE_BUDGET
rounds = $GATE_ROUNDS
max_remeasure = $GATE_REMEASURE
min_effect = 0.05
memory = $3
metrics = $2
EOF
}
gate_toml "$RES/gate/aa.toml" '["params", "macs", "flops", "activation_bytes", "latency_ms", "throughput_ips", "peak_memory_bytes"]' true
gate_toml "$RES/gate/slow10.toml" '["latency_ms", "throughput_ips"]' false
for ((i = 1; i <= REPS; i++)); do
    run_step "gate-aa-$i" 35 0 "${LAUNCH[@]}" cnnbench gate ab --baseline "$REF" --candidate "$REF" \
        --config "$RES/gate/aa.toml" --json "$RES/gate/aa-$i.json" --markdown "$RES/gate/aa-$i.md"
    if [[ -n $UNITS ]]; then
        run_step "gate-slow10-$i" 35 1 env GPU_INJECT_MODEL="$REF" GPU_INJECT_UNITS="$UNITS" GPU_INJECT_N="$INJ_N" \
            "${LAUNCH[@]}" cnnbench gate ab --baseline "$REF" --candidate "$ROOT/benchmarks/gpu_inject.py:slowed" \
            --config "$RES/gate/slow10.toml" --json "$RES/gate/slow10-$i.json" --markdown "$RES/gate/slow10-$i.md"
    else
        echo "== [gate-slow10-$i] skipped: calibration produced no units"
        record "gate-slow10-$i" skipped - 0 1 "calibration failed"
    fi
done

compile_cmd=("${LAUNCH[@]}" cnnbench compare "$REF" --device "$DEVICE" -p "$COMPILE_PREC" --memory-format "$COMPILE_FMT"
    --batch "$CHECK_BATCH" --budget "$BUDGET" --compile --out "$RES/compare-compile" --format "$FORMATS")
LEFT=$(($(remaining) - REPORT_RESERVE))
if [[ $COMPILE == yes || ($COMPILE == auto && $LEFT -ge $COMPILE_CAP) ]]; then
    run_step compare-compile "$COMPILE_CAP" 0 "${compile_cmd[@]}"
else
    echo "== [compare-compile] skipped (--compile ${COMPILE}, ${LEFT}s left, needs ${COMPILE_CAP}s)"
    record compare-compile skipped - 0 0 "$(shown "${compile_cmd[@]}")"
fi

# --- report ------------------------------------------------------------------------------------
echo "== [report] ($(elapsed)s elapsed)"
timeout -k 5 60 "$PY" "$ROOT/benchmarks/gpu_check.py" report "$OUT_DIR" --name "$NAME" --device "$KIND" \
    --model "$REF" --batch "$CHECK_BATCH" --script-command "$SCRIPT_CMD"
REPORT_RC=$?
FAILS=$("$PY" -c "import json, sys; print(sum(c['verdict'] == 'FAIL' for c in json.load(open(sys.argv[1]))))" "$RES/checks.json" 2>/dev/null || echo "?")

if [[ $PACK == 1 ]]; then
    if tar -czf "$OUT_DIR/$NAME.tar.gz" -C "$OUT_DIR" "$NAME"; then
        rm -rf "$RES"
        echo "packed $OUT_DIR/$NAME.tar.gz (extract with: tar -xzf $NAME.tar.gz -C benchmarks/results)"
    else
        echo "warning: tar failed; $RES left as it is"
    fi
fi
echo "gpu_check: done in $(elapsed)s; $FAILED_STEPS step(s) not ok, ${FAILS} FAIL check(s), report rc $REPORT_RC; files in $OUT_DIR"
[[ $REPORT_RC == 0 && $FAILED_STEPS == 0 && $FAILS == 0 ]] && exit 0
exit 1
