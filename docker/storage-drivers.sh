#!/usr/bin/env bash
# Compares Docker storage drivers here, for the README's choice (docker/daemon.sh takes overlay2):
# for each driver, a throw-away daemon (no bridge) loads the training image, then starts and
# removes 3 containers of it; prints the load time, the mean start time and the disk used by the
# image and by one container. Needs root and `make lambda-images`; takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE="${TRAIN_IMAGE:-openlookout-train:cpu}"
SOURCE="${DOCKER_HOST:-unix://$PWD/.docker/docker.sock}"
WORK="$(mktemp -d -p "$PWD/.docker" storage-XXXX)"
trap 'rm -rf "$WORK"' EXIT
DOCKER_HOST="$SOURCE" docker save "$IMAGE" -o "$WORK/image.tar"
printf "%-15s %8s %12s %10s %14s\n" driver load_s start_ms image_MB container_MB
for driver in ${DRIVERS:-overlay2 fuse-overlayfs vfs}; do
  root="$WORK/$driver"
  mkdir -p "$root"
  # Its own bridge: with --bridge none a daemon deletes docker0, which the project's daemon uses.
  ip link add ol-storage0 type bridge && ip addr add 172.31.254.1/24 dev ol-storage0
  dockerd --storage-driver="$driver" --data-root "$root/data" --exec-root "$root/exec" --pidfile "$root/pid" \
    --host "unix://$root/sock" --bridge ol-storage0 --iptables=false --ip-masq=false >"$root/log" 2>&1 &
  pid=$!
  export DOCKER_HOST="unix://$root/sock"
  for _ in $(seq 60); do docker version >/dev/null 2>&1 && break; sleep 0.5; done
  started=$(date +%s%N)
  docker load -q -i "$WORK/image.tar" >/dev/null
  load=$(( ($(date +%s%N) - started) / 100000000 ))  # tenths of a second
  image_mb=$(du -smx "$root/data" | cut -f1)  # -x: not the containers' mounted views
  total=0
  for _ in 1 2 3; do
    t0=$(date +%s%N)
    id=$(docker run -d --network none --entrypoint /bin/sleep "$IMAGE" 60)
    t1=$(date +%s%N)
    total=$((total + (t1 - t0) / 1000000))
    with_container=$(du -smx "$root/data" | cut -f1)
    docker rm -f "$id" >/dev/null
  done
  printf "%-15s %6d.%d %12d %10d %14d\n" "$driver" $((load / 10)) $((load % 10)) $((total / 3)) "$image_mb" \
    $((with_container - image_mb))
  kill "$pid"; wait "$pid" 2>/dev/null || true
  ip link delete ol-storage0
done
