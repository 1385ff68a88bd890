#!/usr/bin/env bash
# Build the k-WTA Explorer's Docker image in one command, on a machine with or without a
# container registry, and say what it measured.
#
#   bash scripts/build_image.sh [--tag kwta-explorer] [--base IMAGE] [--torch-cuda cu130]
#                               [--no-cache] [--report FILE]
#
# - Engine: uses the running Docker daemon; where none answers and `dockerd` is installed
#   (and this is root), starts one for the build and stops it afterwards.
# - Base: --base IMAGE, else python:3.11.11-slim-bookworm if the engine has it, else one made
#   here by scripts/make_base_image.sh (debootstrap; no container registry).
# - Packages: the host's pip downloads the wheels (its own indexes, proxy and certificates),
#   and the build installs them offline from a wheelhouse served on 127.0.0.1 (host network).
# - Prints, and writes to --report as JSON: the tag, base, build seconds, image size.
set -euo pipefail
cd "$(dirname "$0")/.."

TAG=kwta-explorer
BASE=""
TORCH_CUDA=cu130
NO_CACHE=""
REPORT=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --tag) TAG="$2"; shift 2 ;;
    --base) BASE="$2"; shift 2 ;;
    --torch-cuda) TORCH_CUDA="$2"; shift 2 ;;
    --no-cache) NO_CACHE="--no-cache"; shift ;;
    --report) REPORT="$2"; shift 2 ;;
    -h|--help) sed -n 2,16p "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

DOCKER="${DOCKER:-docker}"
command -v "$DOCKER" >/dev/null || { echo "no docker client: apt-get install docker.io" >&2; exit 1; }
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# --- the engine --------------------------------------------------------------------------
source scripts/docker_engine.sh
ensure_engine

# --- the base image ----------------------------------------------------------------------
PUBLIC_BASE=python:3.11.11-slim-bookworm
if [[ -z "$BASE" ]]; then
  if "$DOCKER" image inspect "$PUBLIC_BASE" >/dev/null 2>&1; then
    BASE="$PUBLIC_BASE"
  else
    echo "no $PUBLIC_BASE here (no registry to pull it from): making a local base" >&2
    t0=$SECONDS
    BASE="$(DOCKER="$DOCKER" bash scripts/make_base_image.sh)"
    echo "base $BASE ready in $((SECONDS - t0)) s" >&2
  fi
fi

# --- the wheels ---------------------------------------------------------------------------
# The host's pip downloads every wheel the image needs into a wheelhouse (with the host's own
# indexes, mirrors, proxies and certificates), and the build installs from it offline, over
# 127.0.0.1. The wheelhouse is kept for the next build ($KWTA_WHEELHOUSE).
WHEELS="${KWTA_WHEELHOUSE:-$HOME/.cache/kwta-explorer/wheels-$TORCH_CUDA}"
mkdir -p "$WHEELS"
# the image's Python (3.11) and glibc (bookworm's 2.36): every manylinux tag up to 2_36
PLATFORM=(--only-binary=:all: --python-version 3.11 --implementation cp --platform any
          --platform manylinux1_x86_64 --platform manylinux2010_x86_64
          --platform manylinux2014_x86_64)
for minor in $(seq 5 36); do PLATFORM+=(--platform "manylinux_2_${minor}_x86_64"); done
t0=$SECONDS
if [[ "$TORCH_CUDA" != "cu130" ]]; then
  python3 -m pip download -q "${PLATFORM[@]}" -d "$WHEELS" "torch==2.14.1" "torchvision==0.29.1" \
    --index-url "https://download.pytorch.org/whl/${TORCH_CUDA}" >&2 \
    || { echo "the $TORCH_CUDA wheels of torch could not be downloaded here (above)" >&2; exit 1; }
fi
python3 -m pip download -q "${PLATFORM[@]}" -d "$WHEELS" -r requirements.txt \
  "ninja==1.13.0" "setuptools>=77" >&2
echo "wheelhouse: $(find "$WHEELS" -name '*.whl' | wc -l) wheels, $(du -sh "$WHEELS" | cut -f1), ready in $((SECONDS - t0)) s" >&2
# A fixed port: the URL is a build argument, and a new value each time would void the cache.
PORT="${KWTA_WHEELHOUSE_PORT:-38501}"
if python3 -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1', $PORT)) != 0)"; then
  echo "port $PORT is taken: set KWTA_WHEELHOUSE_PORT to a free one" >&2; exit 1
fi
python3 -m http.server --bind 127.0.0.1 --directory "$WHEELS" "$PORT" >/dev/null 2>&1 &
PIDS+=("$!")
sleep 1

# --- the build ---------------------------------------------------------------------------
echo "+ $DOCKER build --network host --build-arg BASE=$BASE --build-arg TORCH_CUDA=$TORCH_CUDA ${NO_CACHE} -t $TAG ." >&2
t0=$(date +%s.%N)
"$DOCKER" build --network host $NO_CACHE \
  --build-arg BASE="$BASE" \
  --build-arg TORCH_CUDA="$TORCH_CUDA" \
  --build-arg PIP_NO_INDEX=1 \
  --build-arg PIP_FIND_LINKS="http://127.0.0.1:$PORT/" \
  -t "$TAG" . >&2
t1=$(date +%s.%N)
SECONDS_BUILD=$(python3 -c "print(round($t1 - $t0, 1))")
SIZE=$("$DOCKER" image inspect --format '{{.Size}}' "$TAG")
RESULT=$(python3 - "$TAG" "$BASE" "$TORCH_CUDA" "$SECONDS_BUILD" "$SIZE" "${NO_CACHE:-cached}" <<'EOF'
import json, sys
tag, base, cuda, secs, size, cache = sys.argv[1:]
print(json.dumps({
    "tag": tag, "base": base, "torch_cuda": cuda, "build_seconds": float(secs),
    "cache": "cold" if cache == "--no-cache" else "with cache",
    "image_bytes": int(size), "image_gb": round(int(size) / 1e9, 2),
}))
EOF
)
echo "$RESULT"
[[ -n "$REPORT" ]] && echo "$RESULT" > "$REPORT"
exit 0
