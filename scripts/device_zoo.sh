#!/usr/bin/env bash
# The zoo's GPU tier and the CUDA checks, as ONE command on the accelerator machine.
#
#   bash scripts/device_zoo.sh OUT_DIR            # on the GPU machine (about 9 minutes)
#   bash scripts/device_zoo.sh OUT_DIR --smoke    # anywhere, on the CPU, in seconds (tested)
#
# Full mode: `kwta zoo build --device cuda --width 32 --minutes 8` (all six models,
# schedules sized to the budget from timed first steps), each evaluated on 1 000 test
# images (+ PGD-40 with 5 restarts) and on all 10 000 for clean accuracy; then the CUDA
# tests (tests/test_cuda.py: exactness, no host sync, CPU parity) and the GPU rows of
# benchmarks/bench_kwta.py. The data set must be at $KWTA_DEVICE_DATA, default
# .device/cifar10-jpeg.tar.gz (a git-ignored folder: copy it there and carry `.device`).
# The machine's own PyTorch is used (the library supports 2.2 and newer); nothing is
# installed. Results, at most 8 files (what the device tool brings back): one tarball
# per model (weights + card), report.txt (environment, zoo log, tests) and bench.md.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: scripts/device_zoo.sh OUT_DIR [--smoke]}
MODE=${2:-full}
PY=${PYTHON:-python3}
# kwta.models is the top-level models/ folder: a link in a checkout, which a copy may lose
[ -d kwta/models ] || { rm -f kwta/models; ln -s ../models kwta/models; }
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export KWTA_NATIVE=0  # CUDA work; the CPU comparisons take the (identical) PyTorch path
mkdir -p "$OUT"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

if [[ $MODE == --smoke ]]; then
  DEVICE=cpu WIDTH=8 MINUTES=0.2 EVAL_N=10 CLEAN_N=100 RESTARTS=1
  DATA_ARGS=() EXTRA=(--subset 128 --only relu-nat,kwta0.2-nat --attacks pgd)
  [[ -n ${KWTA_DEVICE_DATA:-} ]] && DATA_ARGS=(--data "$KWTA_DEVICE_DATA")
  BENCH=(--widths 8 --repeats 1 --rows train --no-reference)
  TESTS=()
else
  DEVICE=cuda WIDTH=32 MINUTES=${KWTA_ZOO_MINUTES:-8} EVAL_N=1000 CLEAN_N=all RESTARTS=5
  DATA_ARGS=(--data "${KWTA_DEVICE_DATA:-.device/cifar10-jpeg.tar.gz}") EXTRA=()
  BENCH=(--widths 16,32,64 --repeats 10)
  TESTS=(tests/test_cuda.py)
fi

REPORT="$OUT/report.txt"
{
  echo "# device_zoo.sh $MODE, $(date -u +%FT%TZ)"
  "$PY" -c 'import torch, platform; print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda, "|", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")'
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
} >"$REPORT" 2>&1

set +e
"$PY" -m kwta zoo build --device "$DEVICE" --width "$WIDTH" --minutes "$MINUTES" \
  --eval-n "$EVAL_N" --clean-n "$CLEAN_N" --restarts "$RESTARTS" "${DATA_ARGS[@]}" "${EXTRA[@]}" \
  --out "$WORK/pretrained" --work "$WORK/runs" >>"$REPORT" 2>&1
ZOO=$?
set -e
echo "zoo build exit $ZOO" >>"$REPORT"
for card in "$WORK"/pretrained/*.json; do
  [[ -e $card ]] || continue
  name=$(basename "$card" .json)
  tar czf "$OUT/$name-w$WIDTH.tar.gz" -C "$WORK/pretrained" "$name.json" "$name.safetensors"
done

if [[ ${KWTA_ZOO_CHECKS:-1} == 0 ]]; then  # the CUDA checks ran already (scripts/device_gpu.sh)
  cat "$REPORT"
  exit "$ZOO"
fi
if ((${#TESTS[@]})); then
  "$PY" -m pytest -q -p no:cacheprovider -m "" "${TESTS[@]}" >>"$REPORT" 2>&1 || echo "CUDA tests FAILED" >>"$REPORT"
fi
"$PY" benchmarks/bench_kwta.py --device "$DEVICE" "${BENCH[@]}" >"$OUT/bench.md" 2>>"$REPORT" || true
cat "$REPORT"
exit "$ZOO"
