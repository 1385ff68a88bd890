#!/usr/bin/env bash
# Make the Dockerfile's base image locally, for a machine that reaches Debian's mirror but no
# container registry: Debian bookworm (debootstrap, minbase) with Debian's Python 3.11, pip and
# headers, as `python`/`pip` on PATH like the public python:3.11-slim-bookworm image.
#
#   bash scripts/make_base_image.sh [TAG]        (default kwta-base:bookworm-py311; needs root)
#
# debootstrap uses its own default mirror; set DEBIAN_MIRROR to name another.
#
# Prints the tag. An image of that tag that already exists is kept (delete it to remake it).
set -euo pipefail

TAG="${1:-kwta-base:bookworm-py311}"
MIRROR=()  # debootstrap's default unless DEBIAN_MIRROR names one
[[ -n "${DEBIAN_MIRROR:-}" ]] && MIRROR=("$DEBIAN_MIRROR")
DOCKER="${DOCKER:-docker}"

if "$DOCKER" image inspect "$TAG" >/dev/null 2>&1; then
  echo "$TAG"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap is needed: apt-get install debootstrap" >&2; exit 1; }
[[ $EUID -eq 0 ]] || { echo "debootstrap needs root" >&2; exit 1; }

ROOT="$(mktemp -d)"
trap 'rm -rf "$ROOT"' EXIT
echo "base: debootstrap bookworm into $ROOT" >&2
debootstrap --variant=minbase \
  --include=python3,python3-pip,python3-venv,python3-dev,ca-certificates \
  bookworm "$ROOT" "${MIRROR[@]}" >&2
# As in the python:*-slim images: `python` and `pip` are the interpreter's, and pip installs
# into it (PEP 668's marker is Debian's, for a shared system; a container has one user).
rm -f "$ROOT"/usr/lib/python3*/EXTERNALLY-MANAGED
ln -sf python3 "$ROOT/usr/bin/python"
ln -sf pip3 "$ROOT/usr/bin/pip"
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/cache/apt/archives/*.deb
tar -C "$ROOT" -c . | "$DOCKER" import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  - "$TAG" >&2
echo "$TAG"
