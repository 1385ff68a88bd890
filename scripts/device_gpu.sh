#!/usr/bin/env bash
# The GPU checks of issues #22 and #36 as ONE command on the accelerator machine, ordered by
# value inside a deadline: a call may be cut short, so the most valuable numbers come first
# and every step writes its own file in OUT_DIR as it goes.
#
#   bash scripts/device_gpu.sh OUT_DIR            # on the GPU machine (at most ~8.5 minutes)
#   bash scripts/device_gpu.sh OUT_DIR --smoke    # anywhere, on the CPU: the dry run (tested)
#
# In order, each step capped (and stopped with SIGINT, so pytest and the scripts print what
# they have) by what is left of $KWTA_DEADLINE_S (default 510 s):
#   1. CUDA exactness: tests/test_cuda.py, tests/test_triton.py, -x     -> tests.txt   (150 s)
#   2. the Triton kernel's first launch (compile) per dtype             -> launch.md   (40 s)
#   3. benchmark rows: activation; train step w16/w64; eval forward b2500 — ReLU, ours
#      (Triton, PyTorch path), the authors' formulation                  -> bench.md    (120 s)
#   4. every page action on CUDA vs the CPU, rows written as they finish -> pages.json/md (150 s)
#   5. launch tuning (block size x warps) with what is left              -> tune.md
# report.txt: the environment, then one line per step (exit, seconds, cap) as it ends.
# 7 files (the device tool brings back 8). The width-32 zoo is its own call:
# scripts/device_zoo.sh. The machine's own PyTorch is used.
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
GRACE=10  # after SIGINT, a step has this long to write its summary before SIGKILL
left() { echo $((DEADLINE - (SECONDS - START))); }
cap() { local c=$1 l; l=$(($(left) - GRACE)); ((l < c)) && c=$l; ((c < 1)) && c=1; echo "$c"; }

if [[ $MODE == --smoke ]]; then
  export TRITON_INTERPRET=1  # the kernel on the CPU, through Triton's interpreter
  TESTS=(tests/test_triton.py -k "nan or per_channel or falls_back or refuses or longer")
  LAUNCH=(--device cpu --shape 2,8,4,4)
  BENCH=(--device cpu --widths 8 --repeats 1 --rows activation --no-reference)
  PAGES=(--smoke --models kwta0.1-nat --actions attack,landscape)
  TUNE=(--widths 2 --batch 2 --repeats 1 --blocks 64,128 --warps 4)
else
  TESTS=(tests/test_cuda.py tests/test_triton.py)
  LAUNCH=(--device cuda)
  BENCH=(--device cuda --widths 16,64 --repeats 10)
  PAGES=()
  TUNE=(--widths 16,64 --repeats 10)
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
  timeout -s INT -k "$GRACE" "$c" "$@"
  rc=$?
  set -e
  echo "## $name: exit $rc, $((SECONDS - t0)) s (cap $c s)" >>"$REPORT"
}

RUN=("$PY" scripts/sigint.py)  # SIGINT raises KeyboardInterrupt even if the job ignores it
step "tests" 150 "${RUN[@]}" -m pytest -x -q -p no:cacheprovider -m "" "${TESTS[@]}" >"$OUT/tests.txt" 2>&1
step "launch" 40 "${RUN[@]}" benchmarks/triton_launch.py "${LAUNCH[@]}" >"$OUT/launch.md" 2>>"$REPORT"
step "bench_kwta" 120 "${RUN[@]}" benchmarks/bench_kwta.py "${BENCH[@]}" >"$OUT/bench.md" 2>>"$REPORT"
step "device_pages" 150 "${RUN[@]}" scripts/device_pages.py "$OUT" "${PAGES[@]}" >>"$REPORT" 2>&1
if (($(left) - GRACE >= 20)); then
  step "tune_triton" "$(left)" "${RUN[@]}" benchmarks/tune_triton.py "${TUNE[@]}" >"$OUT/tune.md" 2>>"$REPORT"
else
  echo "## tune_triton: skipped, $(left) s left" >>"$REPORT"
fi
echo "## total $((SECONDS - START)) s" >>"$REPORT"
cat "$REPORT"
