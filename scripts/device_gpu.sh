#!/usr/bin/env bash
# Issue #22's GPU checks as ONE command on the accelerator machine, inside a deadline.
#
#   bash scripts/device_gpu.sh OUT_DIR            # on the GPU machine (at most ~8.5 minutes)
#   bash scripts/device_gpu.sh OUT_DIR --smoke    # anywhere, on the CPU (tested)
#
# In order, each step capped by what is left of $KWTA_DEADLINE_S (default 510 s):
#   1. tests/test_cuda.py and tests/test_triton.py on CUDA (exactness of the Triton kernel and
#      the PyTorch path, no host sync, CPU parity of the shipped models)       -> report.txt
#   2. benchmarks/tune_triton.py: block size x warps of the Triton kernel       -> tune.md
#   3. benchmarks/bench_kwta.py --device cuda: ReLU / ours (Triton) / ours (PyTorch path) /
#      the authors' formulation; train step w16 and w64; eval forward b2500     -> bench.md
#   4. scripts/device_pages.py: every page action on CUDA vs the CPU, timed     -> pages.md/json
#   5. with >= 4 minutes left: the width-32 zoo tier (scripts/device_zoo.sh with the minutes
#      left; data at $KWTA_DEVICE_DATA, default .device/cifar10-jpeg.tar.gz)    -> zoo-w32.tar.gz
# At most 8 files come back (the device tool's limit). The machine's own PyTorch is used.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: scripts/device_gpu.sh OUT_DIR [--smoke]}
MODE=${2:-full}
PY=${PYTHON:-python3}
[ -d kwta/models ] || { rm -f kwta/models; ln -s ../models kwta/models; }
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$OUT"
START=$SECONDS
DEADLINE=${KWTA_DEADLINE_S:-510}
left() { echo $((DEADLINE - (SECONDS - START))); }
cap() { local c=$1 l; l=$(left); ((l < c)) && c=$l; ((c < 1)) && c=1; echo "$c"; }

if [[ $MODE == --smoke ]]; then
  export TRITON_INTERPRET=1  # the kernel on the CPU, through Triton's interpreter
  TESTS=() TUNE=(--widths 2 --batch 2 --repeats 1 --blocks 64,128 --warps 4)
  BENCH=(--device cpu --widths 8 --repeats 1 --rows activation --no-reference)
  PAGES=(--smoke --models kwta0.1-nat --actions attack,landscape)
  ZOO_MIN_S=1000000  # never in smoke mode (device_zoo.sh has its own smoke test)
else
  export KWTA_NATIVE=0  # the CPU side of the parity checks: the (identical) PyTorch path
  TESTS=(tests/test_cuda.py tests/test_triton.py)
  TUNE=(--widths 16,64 --repeats 10)
  BENCH=(--device cuda --widths 16,64 --repeats 10)
  PAGES=()
  ZOO_MIN_S=240
fi

REPORT="$OUT/report.txt"
{
  echo "# device_gpu.sh $MODE, $(date -u +%FT%TZ), deadline ${DEADLINE} s"
  "$PY" -c 'import torch, platform; print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda, "|", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")'
  "$PY" -c 'import triton; print("triton", triton.__version__)' || echo "no triton"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
} >"$REPORT" 2>&1

step() {  # step NAME CAP_S CMD...: run under what is left of the deadline, log its time
  local name=$1 c t0 rc
  c=$(cap "$2")
  shift 2
  t0=$SECONDS
  set +e
  timeout "$c" "$@"
  rc=$?
  set -e
  echo "## $name: exit $rc, $((SECONDS - t0)) s (cap $c s)" >>"$REPORT"
}

if ((${#TESTS[@]})); then
  step "CUDA tests" 200 "$PY" -m pytest -q -p no:cacheprovider -m "" "${TESTS[@]}" >>"$REPORT" 2>&1
fi
step "tune_triton" 120 "$PY" benchmarks/tune_triton.py "${TUNE[@]}" >"$OUT/tune.md" 2>>"$REPORT"
step "bench_kwta" 150 "$PY" benchmarks/bench_kwta.py "${BENCH[@]}" >"$OUT/bench.md" 2>>"$REPORT"
step "device_pages" 150 "$PY" scripts/device_pages.py "$OUT" "${PAGES[@]}" >>"$REPORT" 2>&1

LEFT=$(left)
if ((LEFT >= ZOO_MIN_S)); then
  MIN=$(( (LEFT - 150) / 60 ))  # evaluation and packing take the rest
  ZOO_OUT=$(mktemp -d)
  step "zoo w32 ($MIN min of training)" "$LEFT" env KWTA_ZOO_MINUTES="$MIN" KWTA_ZOO_CHECKS=0 \
    bash scripts/device_zoo.sh "$ZOO_OUT" >>"$REPORT" 2>&1
  tar czf "$OUT/zoo-w32.tar.gz" -C "$ZOO_OUT" . 2>>"$REPORT" || true
else
  echo "## zoo w32: skipped, $LEFT s left (needs $ZOO_MIN_S)" >>"$REPORT"
fi
echo "## total $((SECONDS - START)) s" >>"$REPORT"
cat "$REPORT"
