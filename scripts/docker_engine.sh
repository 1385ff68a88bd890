# Sourced by scripts/build_image.sh and scripts/check_image.py's shell steps: make sure a Docker
# engine answers. Where none does and `dockerd` is installed and this is root, start one (its
# log in $DOCKERD_LOG, default /tmp/kwta-dockerd.log) and append its pid to PIDS, so that the
# caller's exit trap stops it again.

ensure_engine() {
  local docker="${DOCKER:-docker}"
  if "$docker" info >/dev/null 2>&1; then
    return 0
  fi
  if ! command -v dockerd >/dev/null 2>&1 || [[ $EUID -ne 0 ]]; then
    echo "no Docker engine answers, and none can be started here (needs dockerd and root):" >&2
    echo "  apt-get install docker.io, or start the daemon, then run this again" >&2
    return 1
  fi
  local log="${DOCKERD_LOG:-/tmp/kwta-dockerd.log}"
  echo "starting dockerd for this run (log: $log)" >&2
  dockerd >"$log" 2>&1 &
  PIDS+=("$!")
  for _ in $(seq 1 60); do
    if "$docker" info >/dev/null 2>&1; then
      return 0
    fi
    sleep 1
  done
  echo "dockerd did not answer within 60 s; its log:" >&2
  tail -n 20 "$log" >&2
  return 1
}
