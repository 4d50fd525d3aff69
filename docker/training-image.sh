#!/usr/bin/env bash
# Builds the training image from functions/train_model/Dockerfile (CPU) with no registry and no
# network inside the build: the wheels are downloaded here first (PyPI, and torch's CPU build from
# the machine's pip find-links), then served to the build on loopback as its only package source.
#   docker/training-image.sh  ->  openlookout-train:cpu
# The build's Python is the one torch's CPU wheel exists for here (TRAIN_PYTHON, default 3.11):
# PyPI has only CUDA builds of torch for Linux, AWS's CPU index is out of reach.
set -euo pipefail
cd "$(dirname "$0")/.."
TRAIN_PYTHON="${TRAIN_PYTHON:-3.11}"
IMAGE="${TRAIN_IMAGE:-openlookout-train:cpu}"
TORCH="torch==2.13.0"  # the version the README and the Dockerfile pin
WHEELS="$PWD/.docker/cache/wheels-py$TRAIN_PYTHON"
export DOCKER_HOST="${DOCKER_HOST:-unix://$PWD/.docker/docker.sock}"
started=$(date +%s)

docker/lambda-base.sh "$TRAIN_PYTHON"
PY="$(pyenv prefix "$(pyenv versions --bare | grep -E "^${TRAIN_PYTHON//./\\.}(\.[0-9]+)?$" | tail -1)")/bin/python$TRAIN_PYTHON"

# 1. The wheels, for this Python and glibc (the image's Debian is the same as this machine's).
mkdir -p "$WHEELS"
"$PY" -m pip download -q --only-binary=:all: -d "$WHEELS" "$TORCH" -r functions/train_model/requirements.txt \
  2>&1 | grep -v -e "is ignored: it is neither" -e "running pip as the 'root' user" || true
ls "$WHEELS"/torch-2.13.0* >/dev/null

# 2. Served on loopback for the length of the build (the build shares the host's network only).
PORT="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$PY" -m http.server --bind 127.0.0.1 --directory "$WHEELS" "$PORT" >/dev/null 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/" >/dev/null && break; sleep 0.1; done

# 3. The Dockerfile as AWS builds it, with its base, torch index and pip options swapped.
docker build -q --network host -f functions/train_model/Dockerfile -t "$IMAGE" \
  --build-arg PYTHON_VERSION="$TRAIN_PYTHON" \
  --build-arg PIP_OPTIONS="--no-index --find-links http://127.0.0.1:$PORT/" . >/dev/null
echo "$IMAGE built in $(( $(date +%s) - started )) s, $(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}')"
