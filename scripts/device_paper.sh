#!/usr/bin/env bash
# The paper's remaining figures and the adaptive evaluations, as ONE command on the
# accelerator machine: everything issue #13 (and the zoo's adaptive table) needs that
# costs CPU-hours, run side by side on one GPU.
#
#   bash scripts/device_paper.sh OUT_DIR            # on the GPU machine (about 8 minutes)
#   bash scripts/device_paper.sh OUT_DIR --smoke    # anywhere, on the CPU, in minutes (tested)
#
# Jobs, started together (each a process of its own; the GPU is shared):
#   1. `kwta zoo build --only lwta0.1-nat`     Table 2's LWTA model (recipe: 24 passes)
#   2. `kwta zoo build --only kwta0.1-direct`  Fig. 6's direct arm (33 passes)
#   3. `kwta sweep --model kwta0.2-nat`        Fig. 4 (γ 0.2 → 0.025, 2 passes per step)
#   4. `kwta evaluate --adaptive` on kwta0.2-nat, relu-at, kwta0.1-at (500 images each)
#   5. benchmarks/fd_tramer.py                 FD-PGD at Tramèr et al.'s full settings
#   6. tests/test_cuda.py                      exactness, no host sync, CPU parity
# Unfinished jobs are stopped at $KWTA_DEVICE_DEADLINE seconds (default 470); the GPU
# rows of benchmarks/bench_kwta.py run after the jobs if time is left. Trainings keep a
# checkpoint per pass, so what did not finish resumes anywhere (`kwta zoo build --work`).
# Models use the bundled pretrained/ (copied; the checkout is not written). The data set
# must be at $KWTA_DEVICE_DATA, default .device/cifar10-jpeg.tar.gz (a git-ignored folder:
# copy it there and carry `.device`). The machine's own PyTorch is used; nothing is
# installed. Results (at most 8 files, what the device tool brings back): models.tar.gz
# (weights + cards), results.tar.gz (sweep.json, adaptive and FD JSON, every job's log),
# ckpt-zoo.tar.gz, ckpt-sweep.tar.gz (checkpoints to resume from), report.txt and bench.md.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: scripts/device_paper.sh OUT_DIR [--smoke]}
MODE=${2:-full}
PY=${PYTHON:-python3}
START=$SECONDS
# kwta.models is the top-level models/ folder: a link in a checkout, which a copy may lose
[ -d kwta/models ] || { rm -f kwta/models; ln -s ../models kwta/models; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/logs" "$WORK/results"
cp -r pretrained "$WORK/pretrained"
rm -f "$WORK/pretrained/sweep.json"  # only this run's sweep, once published, comes back
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 KWTA_NATIVE=0
export KWTA_PRETRAINED="$WORK/pretrained" OMP_NUM_THREADS=2

if [[ $MODE == --smoke ]]; then
  DEVICE=cpu DEADLINE=${KWTA_DEVICE_DEADLINE:-900}
  DATA=() && [[ -n ${KWTA_DEVICE_DATA:-} ]] && DATA=(--data "$KWTA_DEVICE_DATA")
  ZOO=(--width 8 --epochs 1 --subset 128 --eval-n 8 --clean-n 100 --restarts 1 --attacks pgd)
  SWEEP=(--to 0.15 --delta 0.05 --passes 1 --subset 128 --eval-n 100 --robust-n 8)
  ADAPT=(--adaptive-n 8 --clean-n 100 --adaptive-attacks apgd-ce,eot-pgd)
  FD=(--n 4 --steps 2)
  BENCH=(--widths 8 --repeats 1 --rows train --no-reference)
  TESTS=()
else
  DEVICE=cuda DEADLINE=${KWTA_DEVICE_DEADLINE:-470}
  ((DEADLINE <= 500)) || DEADLINE=500  # the device tool stops a command at 600 s
  DATA=(--data "${KWTA_DEVICE_DATA:-.device/cifar10-jpeg.tar.gz}")
  ZOO=(--eval-n 1000 --clean-n all --restarts 5)
  SWEEP=(--eval-n 10000 --robust-n 1000)
  ADAPT=(--adaptive-n 500 --clean-n 1000 --batch-size 1000)
  FD=(--n 100 --models kwta0.1-nat,kwta0.1-at)
  BENCH=(--widths 16,32,64 --repeats 10)
  TESTS=(tests/test_cuda.py)
fi

left() {  # seconds to the deadline, at least 1 (`timeout 0` would mean no limit)
  local s=$((DEADLINE - (SECONDS - START)))
  echo $((s > 1 ? s : 1))
}
job() {  # job NAME CMD...: run in the background, stopped at the deadline
  local name=$1
  shift
  (timeout --signal=INT --kill-after=15 "$(left)" "$@" >"$WORK/logs/$name.log" 2>&1
    echo "$name: exit $? at $((SECONDS - START)) s" >>"$WORK/logs/status.txt") &
}

REPORT="$OUT/report.txt"
{
  echo "# device_paper.sh $MODE, $(date -u +%FT%TZ)"
  "$PY" -c 'import torch, platform; print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda, "|", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")'
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
} >"$REPORT" 2>&1

K=("$PY" -m kwta)
for name in lwta0.1-nat kwta0.1-direct; do
  job "zoo-$name" "${K[@]}" zoo build --only "$name" --device "$DEVICE" "${ZOO[@]}" "${DATA[@]}" \
    --out "$WORK/zoo/pretrained" --work "$WORK/zoo/$name"
done
job sweep "${K[@]}" sweep --model kwta0.2-nat --device "$DEVICE" "${SWEEP[@]}" "${DATA[@]}" \
  --work "$WORK/sweep"
for name in kwta0.2-nat relu-at kwta0.1-at; do
  job "adaptive-$name" "${K[@]}" evaluate --model "$name" --attacks none --adaptive "${ADAPT[@]}" \
    --device "$DEVICE" "${DATA[@]}" --json "$WORK/results/adaptive-$name.json" -q
done
job fd-tramer "$PY" benchmarks/fd_tramer.py "${FD[@]}" --device "$DEVICE" "${DATA[@]}" \
  --json "$WORK/results/fd-tramer.json"
if ((${#TESTS[@]})); then
  job tests-cuda "$PY" -m pytest -q -p no:cacheprovider -m "" "${TESTS[@]}"
fi
while (($(jobs -rp | wc -l) > 0)); do  # progress: one line a minute
  sleep 5
  (((SECONDS - START) % 60 < 5)) && echo "t=$((SECONDS - START))s running: $(jobs -rp | wc -l)"
done
wait
cat "$WORK/logs/status.txt" >>"$REPORT"

cp "$WORK/pretrained/sweep.json" "$WORK/results/" 2>/dev/null
cp -r "$WORK/logs" "$WORK/results/"
tar czf "$OUT/results.tar.gz" -C "$WORK" results
[[ -d $WORK/zoo/pretrained ]] && tar czf "$OUT/models.tar.gz" -C "$WORK/zoo" pretrained
# checkpoints to resume from: each training's, and the sweep's newest step with its sweep.json
(cd "$WORK" && find zoo -name '*.ckpt' | tar czf "$OUT/ckpt-zoo.tar.gz" -T -)
# (the finished steps' weights and cards too: a resumed sweep starts from them)
last=$(cd "$WORK" && ls -d sweep/sweep-*.ckpt 2>/dev/null | sort -t- -k2 -g | head -n 1)
[[ -n $last ]] && (cd "$WORK" && tar czf "$OUT/ckpt-sweep.tar.gz" "$last" sweep/sweep.json \
  sweep/sweep-*.json sweep/sweep-*.safetensors 2>/dev/null)
if (($(left) > 40)); then  # the GPU rows, alone on the GPU, if time is left before the deadline
  timeout --kill-after=5 "$(left)" "$PY" benchmarks/bench_kwta.py --device "$DEVICE" \
    "${BENCH[@]}" >"$OUT/bench.md" 2>>"$REPORT" || echo "bench stopped: exit $?" >>"$REPORT"
fi

for log in "$WORK"/logs/*.log; do  # the end of every job's log, for the reply
  echo "== $(basename "$log")" >>"$REPORT"
  grep -v 'it/s]\|s/it]' "$log" | tail -n 8 >>"$REPORT"
done
echo "total $((SECONDS - START)) s" >>"$REPORT"
cat "$REPORT"
